"""Criterion 2, sensitivity to model-weight randomization (Adebayo et al. 2018; Arun et al. 2021).

For each cascading-randomization state (:mod:`.randomization`), the maps of the randomized model
are compared with the trained model's maps of the same images: SSIM (the study's similarity, on
the 2D/3D grid, ``preset="paper"`` unless ``ssim_options`` say otherwise) and, beside it, the
Spearman rank correlation (Binder et al. 2023 showed that SSIM-based randomization tests can be
passed by uninformative maps). The explained class is the trained model's predicted class at
every state, so that all states explain the same logit.

Baseline (:func:`different_image_baseline`): the mean SSIM between the trained model's maps of
**different** images, ``n_pairs`` partners per image drawn with ``numpy.random.default_rng(seed)``
without replacement (all other images when fewer than ``n_pairs``).

Pass rule (:data:`SENSITIVITY_RULE`, the study's "the curve falls below the baseline"): with
``rule="any"`` (default) a method passes when the mean SSIM over images (NaN items dropped and
counted) at **at least one** randomized state is lower than the different-image baseline's mean
SSIM; ``rule="final"``: at the fully randomized (last) state. With several replicates
(``replicates``: randomization seeds ``seed, seed + 1, ...``), the curve is the mean over them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from ..metrics import SpearmanReference, SSIMReference, spearman_pairs, ssim_pairs
from ._common import (SaliencyFn, as_maps_dict, compute_maps, method_name, mean_or_nan,
                      predicted_classes, versions)
from .randomization import CascadingRandomization, IndependentRandomization

__all__ = ["different_image_baseline", "randomization_sensitivity", "SensitivityResult",
           "SENSITIVITY_RULES", "DifferentImageBaseline"]

SENSITIVITY_RULES = {
    "any": ("pass when the mean SSIM (over images) between the randomized and the original maps "
            "falls below the different-image baseline (mean SSIM between maps of different images "
            "from the trained model) at at least one cascading-randomization state"),
    "final": ("pass when the mean SSIM (over images) between the fully randomized model's maps and "
              "the original maps is below the different-image baseline (mean SSIM between maps of "
              "different images from the trained model)"),
}


@dataclass
class DifferentImageBaseline:
    """Mean SSIM between maps of different images.

    Attributes:
        mean: mean over all pairs (NaN pairs dropped, counted in ``n_undefined``).
        per_image: ``(B,)`` mean over each image's pairs.
        pairs: ``(M, 2)`` int indices of the pairs used; values: ``(M,)`` SSIM per pair.
        n_pairs: partners per image requested; seed: the RNG seed; ssim_options: SSIM settings.
    """

    mean: float
    per_image: np.ndarray
    pairs: np.ndarray
    values: np.ndarray
    n_undefined: int
    n_pairs: int
    seed: int
    ssim_options: Dict[str, Any]
    spearman_mean: float = float("nan")

    def to_dict(self) -> Dict[str, Any]:
        return {"mean": self.mean, "spearman_mean": self.spearman_mean, "n_pairs": self.n_pairs,
                "n_pair_values": int(self.values.size), "n_undefined": self.n_undefined,
                "seed": self.seed, "ssim_options": self.ssim_options}


def _draw_pairs(n_items: int, n_pairs: int, seed: int) -> np.ndarray:
    if n_items < 2:
        raise ValueError("the different-image baseline needs at least 2 images")
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_items):
        others = np.delete(np.arange(n_items), i)
        if others.size <= n_pairs:
            partners = others
        else:
            partners = rng.choice(others, size=n_pairs, replace=False)
        rows.append(np.stack([np.full(partners.size, i), partners], 1))
    return np.concatenate(rows).astype(np.int64)


def different_image_baseline(maps: Any, n_pairs: int = 50, seed: int = 0,
                             ssim_options: Optional[Dict[str, Any]] = None,
                             with_spearman: bool = False,
                             data_range: Optional[float] = None) -> DifferentImageBaseline:
    """Mean SSIM between maps of different images (the sensitivity and consistency baseline).

    Args:
        maps: ``(B, *spatial)`` maps of one method from the trained model.
        n_pairs: partners per image (50 in the study), drawn without replacement by
            ``numpy.random.default_rng(seed)``; all other images when ``B - 1 <= n_pairs``.
        seed: RNG seed (same seed and maps, same pairs and value).
        ssim_options: keyword arguments of :func:`SaliencyTrustLib.metrics.ssim`
            (default ``{"preset": "paper"}``).
        with_spearman: also compute the mean Spearman correlation over the same pairs.
        data_range: shortcut for ``ssim_options={"data_range": ...}`` (overrides the preset's 2).

    Returns:
        :class:`DifferentImageBaseline`.
    """
    options = dict(ssim_options or {"preset": "paper"})
    if data_range is not None:
        options["data_range"] = float(data_range)
    maps_np = as_maps_dict(maps, "maps")["map"]
    pairs = _draw_pairs(maps_np.shape[0], n_pairs, seed)
    values = ssim_pairs(maps_np, maps_np, pairs, **options)
    per_image = np.array([mean_or_nan(values[pairs[:, 0] == i]) for i in range(maps_np.shape[0])])
    rho = float("nan")
    if with_spearman:
        rho = mean_or_nan(spearman_pairs(maps_np, maps_np, pairs))
    return DifferentImageBaseline(mean=mean_or_nan(values), per_image=per_image, pairs=pairs,
                                  values=values, n_undefined=int(np.isnan(values).sum()),
                                  n_pairs=n_pairs, seed=seed, ssim_options=options,
                                  spearman_mean=rho)


@dataclass
class SensitivityResult:
    """Curves of one method under cascading (or independent) randomization.

    Attributes:
        method: method name; states: state names (``"original"`` first).
        ssim: ``(replicates, states, B)`` per-image SSIM to the original maps.
        spearman: the same for the Spearman rank correlation.
        ssim_curve / spearman_curve: ``(states,)`` mean over replicates and images (NaN dropped).
        n_undefined: ``(states,)`` NaN items per state (over replicates).
        baseline: the :class:`DifferentImageBaseline`.
        passed: verdict by ``rule``; first_below: first state whose mean SSIM is below the
            baseline (None if none); rule: the rule text.
    """

    method: str
    states: List[str]
    ssim: np.ndarray
    spearman: np.ndarray
    ssim_curve: np.ndarray
    spearman_curve: np.ndarray
    n_undefined: np.ndarray
    baseline: DifferentImageBaseline
    passed: bool
    first_below: Optional[str]
    rule: str
    params: Dict[str, Any] = field(default_factory=dict)
    timings: Dict[str, float] = field(default_factory=dict)
    versions: Dict[str, str] = field(default_factory=dict)

    @property
    def value(self) -> float:
        """The number compared with the baseline: the minimum (``rule="any"``) or the last
        (``rule="final"``) mean SSIM over the randomized states."""
        randomized = self.ssim_curve[1:] if self.states[0] == "original" else self.ssim_curve
        if self.params.get("rule") == "final":
            return float(randomized[-1])
        return float(np.nanmin(randomized)) if np.isfinite(randomized).any() else float("nan")

    def to_dict(self) -> Dict[str, Any]:
        return {"criterion": "randomization", "method": self.method, "states": self.states,
                "ssim_curve": [float(x) for x in self.ssim_curve],
                "spearman_curve": [float(x) for x in self.spearman_curve],
                "n_undefined": [int(x) for x in self.n_undefined],
                "baseline": self.baseline.to_dict(), "value": self.value, "passed": self.passed,
                "first_below": self.first_below, "rule": self.rule, "params": self.params,
                "timings": self.timings, "versions": self.versions}


def _verdict(curve: np.ndarray, states: List[str], baseline: float, rule: str):
    start = 1 if states and states[0] == "original" else 0
    below = [i for i in range(start, len(states)) if np.isfinite(curve[i]) and curve[i] < baseline]
    first = states[below[0]] if below else None
    if rule == "final":
        return bool(np.isfinite(curve[-1]) and curve[-1] < baseline), first
    return bool(below), first


def randomization_sensitivity(model, images, methods: Sequence[Any], *,
                              saliency_fn: Optional[SaliencyFn] = None,
                              granularity: str = "blocks", seed: int = 0, bn_policy: str = "reset",
                              replicates: int = 1, mode: str = "cascading",
                              blocks: Optional[Sequence[str]] = None, n_pairs: int = 50,
                              ssim_options: Optional[Dict[str, Any]] = None, rule: str = "any",
                              target: Any = None, batch_size: int = 16,
                              original_maps: Optional[Mapping[str, Any]] = None,
                              baseline_seed: int = 0) -> Dict[str, SensitivityResult]:
    """Criterion 2 for several methods at once (each state's model is built once for all methods).

    Args:
        model: the trained classifier (never modified).
        images: ``(B, C, *spatial)`` test images (the study: 100 positive images).
        methods: method names for ``saliency_fn`` or callables ``(model, images, target) -> maps``.
        saliency_fn: ``(model, images, method, target) -> (B, *spatial)`` maps; default
            ``compute_saliency(..., postprocess="paper")``.
        granularity, bn_policy, blocks: see :mod:`.randomization`.
        seed: randomization seed of the first replicate (replicate r uses ``seed + r``).
        replicates: number of randomization replicates (3 in the study).
        mode: ``"cascading"`` (the study) or ``"independent"``.
        n_pairs, baseline_seed: the different-image baseline's pairs per image and seed.
        ssim_options: keyword arguments of :func:`SaliencyTrustLib.metrics.ssim`
            (default ``{"preset": "paper"}``: data_range 2).
        rule: ``"any"`` (default) or ``"final"``; see :data:`SENSITIVITY_RULES`.
        target: explained class(es); default the trained model's predicted class per image.
        batch_size: images per saliency call.
        original_maps: ``{method: maps}`` of the trained model if already computed.

    Returns:
        ``{method_name: SensitivityResult}``.
    """
    if rule not in SENSITIVITY_RULES:
        raise ValueError(f"rule must be one of {sorted(SENSITIVITY_RULES)}, got {rule!r}")
    if mode not in ("cascading", "independent"):
        raise ValueError(f"mode must be 'cascading' or 'independent', got {mode!r}")
    if replicates < 1:
        raise ValueError(f"replicates must be >= 1, got {replicates}")
    options = dict(ssim_options or {"preset": "paper"})
    names = [method_name(m) for m in methods]
    target_given = target is not None
    if target is None:
        target = predicted_classes(model, images, batch_size)
    timings = {"maps_s": 0.0, "randomize_s": 0.0, "similarity_s": 0.0}
    originals = {}
    for method, name in zip(methods, names):
        if original_maps is not None and name in original_maps:
            originals[name] = as_maps_dict(original_maps[name], f"original_maps[{name!r}]")["map"]
        else:
            start = time.perf_counter()
            originals[name] = compute_maps(model, images, method, target=target,
                                           saliency_fn=saliency_fn, batch_size=batch_size)
            timings["maps_s"] += time.perf_counter() - start
    kind = CascadingRandomization if mode == "cascading" else IndependentRandomization
    example = images[:1]
    if not hasattr(example, "detach"):
        import torch
        example = torch.as_tensor(np.asarray(example))
    param = next(model.parameters())
    example = example.to(device=param.device, dtype=param.dtype)
    # the original maps are converted (SSIM) and ranked (Spearman) once, not once per state
    references = {n: SSIMReference(originals[n], **options) for n in names}
    rank_references = {n: SpearmanReference(originals[n]) for n in names}
    per_ssim = {n: [] for n in names}
    per_rho = {n: [] for n in names}
    states: List[str] = []
    settings = None
    for r in range(replicates):
        cascade = kind(model, granularity, seed + r, bn_policy, example_input=example, blocks=blocks)
        settings = settings or cascade.settings()
        states = cascade.state_names
        rows_ssim = {n: [] for n in names}
        rows_rho = {n: [] for n in names}
        iterator = iter(cascade)
        while True:
            start = time.perf_counter()
            try:
                state, randomized = next(iterator)
            except StopIteration:
                break
            timings["randomize_s"] += time.perf_counter() - start
            for method, name in zip(methods, names):
                if state == "original":
                    maps = originals[name]
                else:
                    start = time.perf_counter()
                    maps = compute_maps(randomized, images, method, target=target,
                                        saliency_fn=saliency_fn, batch_size=batch_size)
                    timings["maps_s"] += time.perf_counter() - start
                start = time.perf_counter()
                rows_ssim[name].append(references[name](maps))
                rows_rho[name].append(rank_references[name](maps))
                timings["similarity_s"] += time.perf_counter() - start
        for name in names:
            per_ssim[name].append(np.stack(rows_ssim[name]))
            per_rho[name].append(np.stack(rows_rho[name]))
    results = {}
    for method, name in zip(methods, names):
        start = time.perf_counter()
        baseline = different_image_baseline(originals[name], n_pairs=n_pairs, seed=baseline_seed,
                                            ssim_options=options, with_spearman=True)
        timings["similarity_s"] += time.perf_counter() - start
        values = np.stack(per_ssim[name])                    # (R, S, B)
        rhos = np.stack(per_rho[name])
        with np.errstate(invalid="ignore"):
            curve = np.array([mean_or_nan(values[:, s].ravel()) for s in range(values.shape[1])])
            rho_curve = np.array([mean_or_nan(rhos[:, s].ravel()) for s in range(rhos.shape[1])])
        passed, first = _verdict(curve, states, baseline.mean, rule)
        rule_text = SENSITIVITY_RULES[rule]
        if mode == "independent":
            rule_text = rule_text.replace("cascading-randomization state", "randomization state") + (
                " (independent randomization: each state re-initializes one unit only)")
        results[name] = SensitivityResult(
            method=name, states=list(states), ssim=values, spearman=rhos, ssim_curve=curve,
            spearman_curve=rho_curve, n_undefined=np.isnan(values).sum(axis=(0, 2)),
            baseline=baseline, passed=passed, first_below=first, rule=rule_text,
            params={"mode": mode, "granularity": granularity, "seed": seed,
                    "replicates": replicates, "bn_policy": bn_policy, "rule": rule,
                    "n_pairs": n_pairs, "baseline_seed": baseline_seed, "ssim_options": options,
                    "target": "given" if target_given else
                    "predicted class of the trained model", "n_images": int(images.shape[0]), "randomization": settings},
            timings=dict(timings), versions=versions())
    return results
