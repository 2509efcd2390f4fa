"""The parameters of a cohort evaluation (every one that changes a number) and the model files.

:class:`EvaluationSettings` is a plain dataclass of plain types, so a bundle config can build it with
``_target_`` and the results store can fingerprint it (:mod:`.fingerprint`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, Optional, Tuple

#: The four criteria of Arun et al. 2021.
CRITERIA = ("localization", "randomization", "repeatability", "reproducibility")

#: The study's eight methods, in the paper's order.
PAPER_METHODS = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam",
                 "guided_backprop", "guided_gradcam", "xrai")


@dataclass
class EvaluationSettings:
    """What to compute for each study and how (all defaults follow the study, PROTOCOL.md).

    Attributes:
        methods: saliency method names (``SaliencyTrustLib.saliency.available_methods()``).
        preset: method preset (``"paper"``: the study's settings).
        method_params: per-method overrides of the preset, ``{"smoothgrad": {"n_samples": 8}}``.
        criteria: subset of :data:`CRITERIA`.
        seed: decides the randomization of weights, the evaluated sample, noise of stochastic
            methods (per batch, identical across model states) and the baseline's image pairs.
        batch_size: studies per computed batch (a fixed grouping, see :mod:`.units`).
        sample_size: positive studies in the randomization / repeatability / reproducibility
            sample (the study: 100); localization uses every positive study.
        input_size: model input edge in pixels (images are resampled to it; maps are on this grid).
        cascade_granularity: ``"blocks"`` or ``"layers"``
            (:func:`SaliencyTrustLib.criteria.cascading_randomization`).
        bn_policy: what randomizing a BatchNorm layer means (``"reset"`` ...).
        ssim_data_range: SSIM ``data_range`` (the study silently used 2 for maps in [0, 1]).
        n_pairs: image pairs per image of the different-image baseline (the study: 50).
        max_studies: evaluate only the first N positive studies (sorted by id); None = all.
    """

    methods: Tuple[str, ...] = PAPER_METHODS
    preset: str = "paper"
    method_params: Dict[str, Dict[str, Any]] = field(default_factory=dict)
    criteria: Tuple[str, ...] = CRITERIA
    seed: int = 0
    batch_size: int = 8
    sample_size: int = 100
    input_size: int = 224
    cascade_granularity: str = "blocks"
    bn_policy: str = "reset"
    ssim_data_range: float = 2.0
    n_pairs: int = 50
    max_studies: Optional[int] = None

    def __post_init__(self) -> None:
        self.methods = tuple(self.methods)
        self.criteria = tuple(self.criteria)
        unknown = sorted(set(self.criteria) - set(CRITERIA))
        if unknown:
            raise ValueError(f"unknown criteria {unknown}; choose among {list(CRITERIA)}.")
        if not self.methods:
            raise ValueError("methods is empty; name at least one saliency method.")
        if len(set(self.methods)) != len(self.methods):
            raise ValueError(f"methods repeat: {list(self.methods)}.")
        for name, value in (("batch_size", self.batch_size), ("sample_size", self.sample_size),
                            ("input_size", self.input_size), ("n_pairs", self.n_pairs)):
            if int(value) < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")

    def to_dict(self) -> Dict[str, Any]:
        """Plain-JSON form (tuples as lists)."""
        out = asdict(self)
        out["methods"], out["criteria"] = list(self.methods), list(self.criteria)
        return out


@dataclass
class ModelFiles:
    """Weight files (or bundle folders) of the model states, with optional architecture names.

    ``original`` is required; ``replicate`` (same architecture, trained apart) enables the
    repeatability criterion and ``second_arch`` (another architecture) reproducibility.
    """

    original: str
    replicate: Optional[str] = None
    second_arch: Optional[str] = None
    original_name: Optional[str] = None
    replicate_name: Optional[str] = None
    second_arch_name: Optional[str] = None

    @classmethod
    def from_bundle(cls, bundle_dir: str) -> "ModelFiles":
        """The bundle's three weight files (``models/model.pt``, ``model_replicate.pt``,
        ``model_second_arch.pt``); the last two only when present."""
        from pathlib import Path

        models = Path(bundle_dir) / "models"
        if not (models / "model.pt").is_file():
            from ..io.errors import InputError

            raise InputError(models / "model.pt", "the bundle has no trained model.",
                             "train it (MonaiBundle/configs/train.json) or pass --model WEIGHTS.")
        optional = {name: str(models / f"model_{name}.pt") for name in ("replicate", "second_arch")
                    if (models / f"model_{name}.pt").is_file()}
        return cls(original=str(models / "model.pt"), **optional)
