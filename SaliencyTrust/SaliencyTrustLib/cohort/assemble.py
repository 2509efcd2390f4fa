"""Assembly (rank 0, after every rank is done): the stored units -> the criteria -> files.

Writes, in the results folder:

* ``results.json`` - everything the report shows (per-study values, summaries, verdicts, settings,
  versions, seeds); deterministic: an interrupted-and-resumed run writes the same file;
* ``units.csv`` - one row per unit (study, method, model state, its numbers, its map file);
* ``scorecard.json`` / ``scorecard.csv`` - the verdict table;
* ``timing.json`` - seconds per stage and method (the only file that differs between runs).
"""

from __future__ import annotations

import csv
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .settings import EvaluationSettings
from .compute import make_methods, native_relpath
from .store import (_safe_name, iter_records_sorted, load_map, map_relpath, read_failures, read_run_file,
                    write_json_atomic)
from .settings import ALL_CRITERIA
from .units import CASCADE_PREFIX, LOCALIZER, ORIGINAL, REPLICATE, SECOND_ARCH, Unit

#: Repeatability / reproducibility references of the study: SSIM between two independently trained
#: localization networks (U-Net on masks, RetinaNet on boxes), shown for scale. Without localization
#: networks of our own, the verdict compares with the different-image baseline (criteria's rule).
REFERENCE_SSIM = {"U-Net (study, masks)": 0.975, "RetinaNet (study, boxes)": 0.80}


def rules(localization_baseline: str = "average_mask") -> Dict[str, str]:
    """The pass rules, worded by :mod:`SaliencyTrustLib.criteria` (one wording project-wide)."""
    from ..criteria.consistency import CONSISTENCY_RULES
    from ..criteria.localization import LOCALIZATION_RULE
    from ..criteria.sensitivity import SENSITIVITY_RULES

    from .assemble_beyond import BEYOND_RULES

    baseline = "average mask" if localization_baseline == "average_mask" else "fully randomized model"
    return {"localization": LOCALIZATION_RULE.format(baseline=baseline),
            "randomization": SENSITIVITY_RULES["final"],
            "repeatability": CONSISTENCY_RULES["different_image"],
            "reproducibility": CONSISTENCY_RULES["different_image"], **BEYOND_RULES}


METRIC_COLUMNS = ("auprc", "auprc_mean_mask", "ssim_vs_original", "spearman_vs_original", "target", "predicted",
                  "probability", "ssim_localizers", "auprc_localizer_replicate", "auprc_shortcut", "shortcut_present",
                  "deletion_auc", "insertion_auc", "deletion_auc_random", "insertion_auc_random", "noise_sigma")


def _clean(value: Optional[float]) -> Optional[float]:
    """JSON-safe float: None for missing or NaN."""
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class UnitIndex:
    """Every stored unit's numbers, compactly (one tuple of :data:`METRIC_COLUMNS` per unit key; map
    paths are derived, :func:`~SaliencyTrustLib.cohort.store.map_relpath`), filled in one streaming
    pass that also sums the seconds per model state and method."""

    def __init__(self, root: Path) -> None:
        self.values: Dict[str, tuple] = {}
        self.seconds_by_state: Dict[str, float] = {}
        self.seconds_by_method: Dict[str, float] = {}
        for record in iter_records_sorted(root):
            self.values[record.unit.key] = tuple(record.metrics.get(c) for c in METRIC_COLUMNS)
            state = record.unit.model_state
            state = "cascade" if state.startswith(CASCADE_PREFIX) else state
            self.seconds_by_state[state] = self.seconds_by_state.get(state, 0.0) + record.seconds
            self.seconds_by_method[record.unit.method] = self.seconds_by_method.get(record.unit.method, 0.0) + record.seconds

    def __contains__(self, unit: Unit) -> bool:
        return unit.key in self.values

    def __len__(self) -> int:
        return len(self.values)

    def metric(self, unit: Unit, name: str) -> Optional[float]:
        row = self.values.get(unit.key)
        return None if row is None else _clean(row[METRIC_COLUMNS.index(name)])


def _different_image_baseline(root: Path, records: UnitIndex, images: List[str], sample: List[str], method: str,
                              settings: EvaluationSettings) -> Dict[str, Any]:
    """SSIM and Spearman between the trained model's maps of different images (``n_pairs`` per
    image): means, and per image of the sample (the paired baseline of its verdicts)."""
    from ..criteria import different_image_baseline
    from ..metrics.similarity import spearman_pairs

    kept = [s for s in images if Unit(s, method, ORIGINAL) in records]
    if len(kept) < 2:
        return {"ssim": None, "reason": "fewer than 2 images (add baseline images)"}
    maps = np.stack([load_map(root, map_relpath(Unit(s, method, ORIGINAL))) for s in kept])
    value = different_image_baseline(maps, n_pairs=settings.n_pairs, seed=settings.seed,
                                     data_range=settings.ssim_data_range)
    rho = spearman_pairs(maps, maps, value.pairs)
    rho_per_image = [float(np.nanmean(rho[value.pairs[:, 0] == i])) if np.isfinite(rho[value.pairs[:, 0] == i]).any()
                     else None for i in range(len(kept))]
    numbers = {k: v for k, v in value.to_dict().items() if isinstance(v, (int, float))
               and not isinstance(v, bool) and k not in ("mean", "seed", "spearman_mean")}
    position = {s: i for i, s in enumerate(kept)}
    return {"ssim": _clean(value.mean),
            "spearman": _clean(float(np.nanmean(rho))) if np.isfinite(rho).any() else None,
            **{k: _clean(v) for k, v in numbers.items()},
            "ssim_per_study": [_clean(value.per_image[position[s]]) if s in position else None for s in sample],
            "spearman_per_study": [rho_per_image[position[s]] if s in position else None for s in sample]}


def summarize(values: Sequence[Optional[float]]) -> Dict[str, Optional[float]]:
    """Mean, standard deviation, median, quartiles and count of the defined values."""
    array = np.array([v for v in values if v is not None and not math.isnan(v)], dtype=np.float64)
    if array.size == 0:
        return {"mean": None, "std": None, "median": None, "q1": None, "q3": None, "n": 0,
                "n_undefined": len(values)}
    return {"mean": float(array.mean()), "std": float(array.std(ddof=1)) if array.size > 1 else 0.0,
            "median": float(np.median(array)), "q1": float(np.percentile(array, 25)),
            "q3": float(np.percentile(array, 75)), "n": int(array.size),
            "n_undefined": int(len(values) - array.size)}


def assemble_results(root, plan, settings: EvaluationSettings, progress: bool = True,
                     run_stats: Optional[Dict[str, Any]] = None,
                     mean_mask_name: str = "average training mask") -> Dict[str, Any]:
    """Read every rank's units and write the files listed in the module docstring.

    Returns:
        The ``results.json`` content (a dict; see the module docstring of the report for its use).
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    root = Path(root)
    records = UnitIndex(root)
    failures = read_failures(root)
    methods = list(plan.methods)
    scored = plan.scored                    # the methods, then the negative controls
    studies = sorted(plan.studies)
    sample = list(plan.sample)

    def metric(study: str, method: str, state: str, name: str) -> Optional[float]:
        return records.metric(Unit(study, method, state), name)

    criteria = [c for c in settings.criteria if c not in plan.skipped_criteria]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    results: Dict[str, Any] = {
        "fingerprint": read_run_file(root)["fingerprint"],
        "settings": settings.to_dict(),
        "criteria": criteria,
        "skipped_criteria": dict(plan.skipped_criteria),
        "skipped_methods": dict(plan.skipped_methods),
        "methods": methods,
        "controls": list(plan.controls),
        "min_images": settings.min_images,
        "preprocessing": plan.config["settings"]["preprocessing"],
        "versions": plan.config["versions"],
        "models": plan.config["models"],
        "cohort": {"source": plan.config["cohort"]["source"], "n_studies": len(studies), "study_ids": studies,
                   "sample": sample, "n_sample": len(sample),
                   "n_units_planned": sum(len(plan.states[s]) for s in studies) * len(scored),
                   "n_units_stored": len(records)},
        "failures": {k: failures[k] for k in sorted(failures)},
        "ssim_data_range": settings.ssim_data_range,
        "method_settings": {m: _method_settings(method) for m, method in make_methods(settings, methods).items()},
        "predictions": {s: {key: metric(s, methods[0], ORIGINAL, key) for key in ("predicted", "probability", "target")}
                        for s in studies} if methods else {},
        "native_maps": {s: {m: native_relpath(s, m) for m in methods if (root / native_relpath(s, m)).is_file()}
                        for s in studies},
        "seeds": {"seed": settings.seed, "sample": "numpy default_rng(sha256(seed, 'sample'))",
                  "stochastic methods": "torch/numpy seeded per (seed, batch group, method)",
                  "weight randomization": settings.seed, "different-image pairs": settings.seed},
    }

    if "localization" in criteria:
        per_method = {m: [metric(s, m, ORIGINAL, "auprc") for s in studies] for m in scored}
        randomized = {m: [metric(s, m, final_state, "auprc") for s in studies] for m in scored} if final_state else {}
        mean_mask = [next((v for v in (metric(s, m, ORIGINAL, "auprc_mean_mask") for m in methods) if v is not None), None)
                     for s in studies]
        results["localization"] = {
            "study_ids": studies,
            "auprc": per_method,
            "auprc_randomized_model": randomized,
            "auprc_mean_mask": mean_mask,
            "summary": {m: summarize(v) for m, v in per_method.items()},
            "baseline": settings.localization_baseline,
            "mean_mask_name": mean_mask_name,
            "baselines": {"mean_mask": summarize(mean_mask),
                          "randomized_model": {m: summarize(v) for m, v in randomized.items()},
                          "reference": {"U-Net (study, SIIM)": 0.404, "RetinaNet (study, RSNA)": 0.596}},
        }

    if plan.localizer:
        first = [metric(s, LOCALIZER, ORIGINAL, "auprc") for s in studies]
        second = [metric(s, LOCALIZER, ORIGINAL, "auprc_localizer_replicate") for s in studies]
        similar = [metric(s, LOCALIZER, ORIGINAL, "ssim_localizers") for s in studies]
        results["localization_networks"] = {
            "study_ids": studies, "auprc": first, "auprc_replicate": second, "ssim": similar,
            "ssim_per_sample_study": [similar[studies.index(s)] for s in sample],
            "summary": {"auprc": summarize(first), "auprc_replicate": summarize(second), "ssim": summarize(similar)},
            "models": {k: plan.config["models"].get(k) for k in ("localizer", "localizer_replicate")}}

    baseline: Dict[str, Any] = {}
    if set(criteria) & {"randomization", "repeatability", "reproducibility", "data_randomization", "robustness"}:
        images = sample + sorted(plan.references)
        for m in tqdm(scored, desc="different-image baseline", disable=not progress, leave=False):
            baseline[m] = _different_image_baseline(root, records, images, sample, m, settings)
        results["different_image_baseline"] = baseline

    if "randomization" in criteria and plan.cascade_states:
        curves: Dict[str, Any] = {}
        for m in scored:
            ssim_rows = [[metric(s, m, state, "ssim_vs_original") for s in sample] for state in plan.cascade_states]
            rho_rows = [[metric(s, m, state, "spearman_vs_original") for s in sample] for state in plan.cascade_states]
            curves[m] = {"ssim": [summarize(r) for r in ssim_rows], "spearman": [summarize(r) for r in rho_rows],
                         "ssim_final_per_study": ssim_rows[-1], "ssim_per_study": ssim_rows,
                         "spearman_per_study": rho_rows}
        results["randomization"] = {
            "states": ["original"] + list(plan.cascade_states),
            "state_labels": ["original"] + [s[len(CASCADE_PREFIX):] for s in plan.cascade_states],
            "curves": curves, "different_image_baseline": baseline,
            "rule": rules()["randomization"],
            "note": "Binder et al. (CVPR 2023): top-down randomization can be passed by uninformative maps; "
                    "read the Spearman rank correlation beside SSIM. Gaps in a curve: every map of that state "
                    "was constant (SSIM undefined, dropped as in the study).",
        }

    for criterion, state in (("repeatability", REPLICATE), ("reproducibility", SECOND_ARCH)):
        if criterion not in criteria:
            continue
        ssim = {m: [metric(s, m, state, "ssim_vs_original") for s in sample] for m in scored}
        rho = {m: [metric(s, m, state, "spearman_vs_original") for s in sample] for m in scored}
        auprc = {m: [metric(s, m, state, "auprc") for s in sample] for m in scored}
        results[criterion] = {"study_ids": sample, "ssim": ssim, "spearman": rho, "auprc_other_model": auprc,
                              "summary": {m: summarize(v) for m, v in ssim.items()},
                              "spearman_summary": {m: summarize(v) for m, v in rho.items()},
                              "reference": REFERENCE_SSIM, "different_image_baseline": baseline,
                              "rule": rules()[criterion]}

    from .assemble_beyond import beyond_blocks

    beyond_blocks(results, plan, settings, metric, summarize)
    card = build_scorecard(results)
    results["scorecard"] = card.to_dict()
    results["gallery"] = _gallery(root, plan, methods, records)
    _write_outputs(root, results, card)
    timing = _timing(records, run_stats, time.perf_counter() - started)
    write_json_atomic(root / "timing.json", timing)
    return results


def _criterion_numbers(results: Dict[str, Any], criterion: str, method: str):
    """``(value, baseline, per-image values, per-image baseline, higher_is_better, details)`` of one
    scorecard row; None when the criterion has no block."""
    baseline = dict(results.get("different_image_baseline", {}).get(method, {}))
    n_sample = results["cohort"]["n_sample"]
    for key in ("ssim_per_study", "spearman_per_study"):      # no baseline (one image): undefined pairs
        baseline[key] = baseline.get(key) or [None] * n_sample
    if criterion not in ("localization", "randomization", "repeatability", "reproducibility"):
        from .assemble_beyond import beyond_criterion_numbers

        return beyond_criterion_numbers(results, criterion, method, baseline)
    if criterion == "localization":
        loc = results.get("localization")
        if not loc:
            return None
        randomized = loc["auprc_randomized_model"].get(method, [None] * len(loc["study_ids"]))
        if loc["baseline"] == "average_mask":
            reference, name = loc["auprc_mean_mask"], loc["mean_mask_name"]
            base_value = loc["baselines"]["mean_mask"]["mean"]
        else:
            reference, name = randomized, "same method on the fully randomized model"
            base_value = loc["baselines"]["randomized_model"].get(method, {}).get("mean")
        value = loc["summary"][method]["mean"]
        randomized_mean = loc["baselines"]["randomized_model"].get(method, {}).get("mean")
        details = {"value_name": "mean AUPRC", "baseline_name": name,
                   "mean_mask_auprc": loc["baselines"]["mean_mask"]["mean"], "randomized_model_auprc": randomized_mean,
                   "study_localization_networks": {"U-Net (study, SIIM)": 0.404, "RetinaNet (study, RSNA)": 0.596}}
        networks = results.get("localization_networks")
        if networks:
            details["localization_network_auprc"] = networks["summary"]["auprc"]["mean"]
            details["_localization_network_per_image"] = networks["auprc"]
        return value, base_value, loc["auprc"][method], reference, True, details
    if criterion == "randomization":
        ran = results.get("randomization")
        if not ran:
            return None
        curve = ran["curves"][method]
        means = [state["mean"] for state in curve["ssim"]]
        defined = [(v, i) for i, v in enumerate(means) if v is not None]
        if not defined:
            return None, baseline.get("ssim"), [], [], False, {"value_name": "mean SSIM at the fully randomized state",
                                                               "baseline_name": "different-image mean SSIM"}
        lowest, index = min(defined)
        details = {"value_name": "mean SSIM at the fully randomized state", "baseline_name": "different-image mean SSIM",
                   "min_over_states": lowest, "min_state": ran["state_labels"][index + 1],
                   "states": ran["state_labels"][1:],
                   "ssim_curve": means, "spearman_curve": [state["mean"] for state in curve["spearman"]],
                   "final_state_ssim": means[-1]}
        return means[-1], baseline.get("ssim"), curve["ssim_per_study"], baseline["ssim_per_study"], False, details
    block = results.get(criterion)
    if not block:
        return None
    details = {"value_name": "mean SSIM", "baseline_name": "different-image mean SSIM (localization baseline absent)",
               "study_localization_networks": REFERENCE_SSIM, "spearman_mean": block["spearman_summary"][method]["mean"],
               "different_image_ssim": baseline.get("ssim")}
    networks = results.get("localization_networks")
    if networks:          # the study's bar: two localization networks trained apart
        details["baseline_name"] = "SSIM between two localization networks trained apart"
        return block["summary"][method]["mean"], networks["summary"]["ssim"]["mean"], block["ssim"][method], \
            networks["ssim_per_sample_study"], True, details
    return block["summary"][method]["mean"], baseline.get("ssim"), block["ssim"][method], \
        baseline["ssim_per_study"], True, details


def build_scorecard(results: Dict[str, Any]):
    """The :class:`SaliencyTrustLib.criteria.Scorecard` of a run (rules: :func:`rules`).

    Each row's verdict is a paired bootstrap verdict (:func:`SaliencyTrustLib.criteria.verdicts.paired_verdict`)
    of the per-image numbers against the per-image baseline, with ``min_images``:

    * localization: AUPRC vs the named baseline (``localization_baseline``: the average mask, or the
      same method on the fully randomized model);
    * randomization: SSIM to the original map at the fully randomized state vs the
      different-image SSIM of the same image
      (:func:`~SaliencyTrustLib.criteria.verdicts.final_state_verdict`; the curve's lowest state is
      reported beside it); the same on Spearman's rank correlation (Binder et al. 2023), and a
      method passing on SSIM but not on rank is flagged;
    * repeatability / reproducibility: SSIM between the two models' maps vs the different-image SSIM;
    * beyond the study (when named in ``criteria``): :mod:`.assemble_beyond` (shortcut, data
      randomization with a Spearman rank verdict beside it, faithfulness, robustness).

    A method passes only if it also beats, paired, every negative control that passes the same
    criterion (for repeatability / reproducibility / robustness: every control whose map depends on the model;
    a model-independent map is repeatable by construction, and the randomization criterion rejects
    it). Controls get rows of their own (``details["control"]``).
    """
    from ..criteria import Scorecard
    from ..criteria.verdicts import final_state_verdict, paired_verdict
    from ..saliency.controls import MODEL_INDEPENDENT

    settings = results["settings"]
    rule_text = rules(settings["localization_baseline"])
    min_images, seed = results.get("min_images", 20), settings["seed"]
    card = Scorecard(params={"settings": settings, "fingerprint": results["fingerprint"],
                             "ssim_data_range": results["ssim_data_range"],
                             "localization_baseline": settings["localization_baseline"],
                             "consistency_target": settings["consistency_target"],
                             "target_class": settings["target_class"], "min_images": min_images,
                             "verdict": "paired percentile-bootstrap 95% CI of the mean difference to the baseline "
                                        "(10000 resamples, seed = settings seed): pass above 0, fail below 0, "
                                        f"undecided when it includes 0 or with fewer than {min_images} images",
                             "preprocessing": results["preprocessing"]}, versions=results["versions"])
    controls = results.get("controls", [])
    for criterion in ALL_CRITERIA:
        numbers = {m: _criterion_numbers(results, criterion, m) for m in results["methods"] + controls}
        verdicts, states = {}, {}
        for m, found in numbers.items():
            if found is None:
                continue
            _value, _base, per_image, base_per_image, higher, _details = found
            if criterion == "randomization":
                verdicts[m], states[m] = final_state_verdict(per_image, base_per_image, min_images=min_images, seed=seed)
            else:
                verdicts[m] = paired_verdict(per_image, base_per_image, higher_is_better=higher,
                                             min_images=min_images, seed=seed) if per_image else None
        for m, found in numbers.items():
            if found is None:
                continue
            value, base, per_image, _base_per_image, higher, details = found
            verdict = verdicts[m]
            extra: Dict[str, Any] = {"control": m in controls}
            status = verdict.status if verdict else "undecided"
            if verdict is not None:
                extra["verdict"] = verdict.to_dict()
            if criterion == "randomization":
                ran = results["randomization"]
                extra["verdict_state"] = None if states[m] is None else ran["state_labels"][states[m] + 1]
                rank_baseline = (results["different_image_baseline"][m].get("spearman_per_study")
                                 or [None] * results["cohort"]["n_sample"])
                rank, _state = final_state_verdict(ran["curves"][m]["spearman_per_study"], rank_baseline,
                                                   min_images=min_images, seed=seed)
                extra["rank_verdict"] = rank.to_dict()
                extra["spearman_baseline"] = results["different_image_baseline"][m].get("spearman")
                if status == "pass" and rank.status != "pass":
                    extra["flag"] = "passes on SSIM but not on rank correlation (Binder et al. 2023)"
                per_image = per_image[states[m]] if states[m] is not None else []
            if criterion == "data_randomization":
                block = results["data_randomization"]
                rank_baseline = (results["different_image_baseline"][m].get("spearman_per_study")
                                 or [None] * results["cohort"]["n_sample"])
                rank = paired_verdict(block["spearman"][m], rank_baseline, higher_is_better=False,
                                      min_images=min_images, seed=seed)
                extra["rank_verdict"] = rank.to_dict()
                if status == "pass" and rank.status != "pass":
                    extra["flag"] = "passes on SSIM but not on rank correlation (Binder et al. 2023)"
            if m not in controls and status == "pass":
                unbeaten = []
                for control in controls:
                    if verdicts.get(control) is None or verdicts[control].status != "pass":
                        continue
                    if criterion in ("repeatability", "reproducibility", "robustness") and control in MODEL_INDEPENDENT:
                        continue
                    theirs = numbers[control][2]
                    if criterion == "randomization":          # the control at its own verdict state
                        theirs = theirs[states[control]]
                    versus = paired_verdict(per_image, theirs, higher_is_better=higher,
                                            min_images=min_images, seed=seed)
                    if versus.status != "pass":
                        unbeaten.append(control)
                if unbeaten:
                    status = "undecided"
                    extra["unbeaten_controls"] = unbeaten
                    extra["reason"] = "passes its baseline but does not beat the control(s) " + ", ".join(unbeaten)
            network_auprc = details.pop("_localization_network_per_image", None)
            if network_auprc is not None and per_image:
                extra["vs_localization_network"] = paired_verdict(per_image, network_auprc, min_images=min_images,
                                                                  seed=seed).to_dict()
            if status == "undecided" and "reason" not in extra:
                extra["reason"] = verdict.reason if verdict else "no defined value"
            passed = None if status == "undecided" else status == "pass"
            value_name, baseline_name = details.pop("value_name"), details.pop("baseline_name")
            rule = rule_text[criterion]
            if criterion in ("repeatability", "reproducibility") and results.get("localization_networks"):
                from ..criteria.consistency import CONSISTENCY_RULES

                rule = CONSISTENCY_RULES["localization"]
            card.add(m, criterion, value, base, passed,
                     rule + "; decided by the paired bootstrap CI of the difference, and only if "
                     "the method beats every control that passes", value_name=value_name,
                     baseline_name=baseline_name, **details, **extra)
    return card


def _gallery(root: Path, plan, methods: List[str], records) -> List[Dict[str, Any]]:
    items = []
    for study in plan.gallery:
        image = Path("inputs") / f"{_safe_name(study)}.image.npy"
        if not (root / image).exists():
            continue
        mask = Path("inputs") / f"{_safe_name(study)}.mask.npy"
        maps = {m: map_relpath(Unit(study, m, ORIGINAL)) for m in methods if Unit(study, m, ORIGINAL) in records}
        final = plan.cascade_states[-1] if plan.cascade_states else None
        randomized = {m: map_relpath(Unit(study, m, final)) for m in methods if final and Unit(study, m, final) in records}
        items.append({"study_id": study, "image": str(image), "mask": str(mask) if (root / mask).exists() else None,
                      "maps": maps, "maps_randomized": randomized})
    return items


def _method_settings(method) -> Dict[str, Any]:
    """The resolved settings of a method object (for the report and the fingerprint)."""
    for attribute in ("settings", "params"):
        value = getattr(method, attribute, None)
        if isinstance(value, dict):
            return {k: v for k, v in value.items() if isinstance(v, (int, float, str, bool, type(None), list, tuple))}
    return {}


def _write_outputs(root: Path, results: Dict[str, Any], card) -> None:
    write_json_atomic(root / "results.json", results)
    tmp = root / ".units.csv.tmp"
    with open(tmp, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_id", "method", "model_state", *METRIC_COLUMNS, "map_file"])
        for record in iter_records_sorted(root):
            values = [record.metrics.get(c) for c in METRIC_COLUMNS]
            writer.writerow([record.unit.study_id, record.unit.method, record.unit.model_state,
                             *["" if v is None or (isinstance(v, float) and math.isnan(v)) else repr(float(v)) for v in values],
                             record.map_file])
    tmp.replace(root / "units.csv")
    for name, text in (("scorecard.json", card.to_json()), ("scorecard.csv", card.to_csv())):
        tmp = root / f".{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(root / name)


def _timing(records: UnitIndex, run_stats, assemble_seconds: float) -> Dict[str, Any]:
    return {"map_seconds_by_state": records.seconds_by_state, "map_seconds_by_method": records.seconds_by_method,
            "assemble_seconds": assemble_seconds, "last_run": run_stats or {}}
