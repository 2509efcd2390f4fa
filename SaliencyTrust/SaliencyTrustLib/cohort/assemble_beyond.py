"""Assembly of the criteria beyond the study (issue 13): shortcut revealed, data randomization,
faithfulness and robustness - their ``results.json`` blocks and their scorecard numbers.

Every one is decided like the study's four (:mod:`SaliencyTrustLib.criteria.verdicts`): a paired
bootstrap verdict of per-image numbers against a per-image baseline, on the same images.

* ``shortcut``: AUPRC of the map against the known confounder's region (a burned-in marker) vs the
  same method's on the fully randomized model (a map drawn to the marker by the image alone, an
  edge detector say, gets no credit); the model's reliance on the marker (accuracy with and without
  it) is reported beside it.
* ``data_randomization`` (Adebayo et al. 2018): SSIM between the maps of the trained model and of the
  same architecture trained on permuted labels vs the different-image SSIM; lower passes.
* ``faithfulness`` (Petsiuk et al. 2018): insertion area minus deletion area of the explained
  class's probability vs the same for a random pixel order; higher passes.
* ``robustness`` (Zhang et al. 2024): SSIM of the map under input noise at the image's own noise
  level and under a small shift, to the clean map; the worse of the two per image vs the
  different-image SSIM; higher passes.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional

import numpy as np

from .units import LABEL_RANDOMIZED, NOISE, ORIGINAL, SHIFT

#: The pass rules of the criteria beyond the study, in words.
BEYOND_RULES = {
    "shortcut": "passes when its AUPRC against the known shortcut region (the confounder the model uses) is "
                "higher than the same method's on the fully randomized model",
    "data_randomization": "passes when the SSIM between its maps of the trained model and of the model trained "
                          "on permuted labels is lower than the different-image SSIM (Adebayo et al. 2018)",
    "faithfulness": "passes when its insertion-minus-deletion area (explained class probability as the most "
                    "salient pixels are put in / taken out, Petsiuk et al. 2018) is higher than a random "
                    "pixel order's",
    "robustness": "passes when the SSIM of its maps under small input perturbations (noise at the image's noise "
                  "level, a shift of a few pixels) to the clean map is higher than the different-image SSIM",
}

Metric = Callable[[str, str, str, str], Optional[float]]


def _difference(a: Optional[float], b: Optional[float]) -> Optional[float]:
    return None if a is None or b is None else a - b


def _lower(values: List[Optional[float]]) -> Optional[float]:
    defined = [v for v in values if v is not None]
    return min(defined) if len(defined) == len(values) and defined else None


def _rate(pairs: List[tuple]) -> Dict[str, Any]:
    """``{"rate": fraction of True, "n": count}`` of boolean outcomes (None without any)."""
    return {"rate": float(np.mean([p for p in pairs])) if pairs else None, "n": len(pairs)}


def beyond_blocks(results: Dict[str, Any], plan, settings, metric: Metric, summarize: Callable) -> None:
    """Add the ``shortcut`` / ``data_randomization`` / ``faithfulness`` / ``robustness`` blocks of the
    criteria that ran to ``results`` (per-study values in the order of ``study_ids``)."""
    criteria = results["criteria"]
    scored = list(plan.methods) + list(plan.controls)
    methods = list(plan.methods)
    studies, sample = results["cohort"]["study_ids"], results["cohort"]["sample"]
    final_state = plan.cascade_states[-1] if plan.cascade_states else None
    baseline = results.get("different_image_baseline", {})

    def per(ids: List[str], method: str, state: str, name: str) -> List[Optional[float]]:
        return [metric(s, method, state, name) for s in ids]

    if "shortcut" in criteria and methods:
        present = {s: metric(s, methods[0], ORIGINAL, "shortcut_present") for s in studies}
        marked = [s for s in studies if present[s] == 1.0]
        found = {m: per(marked, m, ORIGINAL, "auprc_shortcut") for m in scored}
        randomized = {m: per(marked, m, final_state, "auprc_shortcut") for m in scored}
        lesion = {m: per(marked, m, ORIGINAL, "auprc") for m in scored}
        labels = {s.study_id: s.label for s in plan.studies.values()}
        predicted = {s: results["predictions"][s]["predicted"] for s in studies
                     if results["predictions"][s]["predicted"] is not None}
        correct = {s: predicted[s] == labels[s] for s in predicted if labels.get(s) is not None}
        results["shortcut"] = {
            "study_ids": marked, "auprc": found, "auprc_randomized_model": randomized, "auprc_lesion": lesion,
            "summary": {m: summarize(v) for m, v in found.items()},
            "lesion_summary": {m: summarize(v) for m, v in lesion.items()},
            "model_reliance": {
                "positive_rate_with_marker": _rate([predicted[s] == 1 for s in predicted if present[s] == 1.0]),
                "positive_rate_without_marker": _rate([predicted[s] == 1 for s in predicted if present[s] == 0.0]),
                "accuracy_with_marker": _rate([correct[s] for s in correct if present[s] == 1.0]),
                "accuracy_without_marker": _rate([correct[s] for s in correct if present[s] == 0.0]),
                "note": "how often the original model predicts class 1 (abnormal), and is right, on the evaluated "
                        "studies with and without the marker: a model that relies on the marker follows it"},
            "rule": BEYOND_RULES["shortcut"]}

    if "data_randomization" in criteria:
        ssim = {m: per(sample, m, LABEL_RANDOMIZED, "ssim_vs_original") for m in scored}
        rho = {m: per(sample, m, LABEL_RANDOMIZED, "spearman_vs_original") for m in scored}
        agree = [metric(s, methods[0], LABEL_RANDOMIZED, "predicted") == metric(s, methods[0], ORIGINAL, "predicted")
                 for s in sample if methods and metric(s, methods[0], LABEL_RANDOMIZED, "predicted") is not None]
        results["data_randomization"] = {
            "study_ids": sample, "ssim": ssim, "spearman": rho,
            "summary": {m: summarize(v) for m, v in ssim.items()},
            "spearman_summary": {m: summarize(v) for m, v in rho.items()},
            "prediction_agreement": _rate(agree), "model": plan.config["models"].get(LABEL_RANDOMIZED),
            "different_image_baseline": baseline, "rule": BEYOND_RULES["data_randomization"]}

    if "faithfulness" in criteria:
        deletion = {m: per(sample, m, ORIGINAL, "deletion_auc") for m in scored}
        insertion = {m: per(sample, m, ORIGINAL, "insertion_auc") for m in scored}
        random_deletion = [next((v for v in (metric(s, m, ORIGINAL, "deletion_auc_random") for m in scored)
                                 if v is not None), None) for s in sample]
        random_insertion = [next((v for v in (metric(s, m, ORIGINAL, "insertion_auc_random") for m in scored)
                                  if v is not None), None) for s in sample]
        score = {m: [_difference(i, d) for i, d in zip(insertion[m], deletion[m])] for m in scored}
        results["faithfulness"] = {
            "study_ids": sample, "deletion_auc": deletion, "insertion_auc": insertion, "score": score,
            "deletion_auc_random": random_deletion, "insertion_auc_random": random_insertion,
            "score_random": [_difference(i, d) for i, d in zip(random_insertion, random_deletion)],
            "summary": {m: summarize(v) for m, v in score.items()},
            "deletion_summary": {m: summarize(v) for m, v in deletion.items()},
            "insertion_summary": {m: summarize(v) for m, v in insertion.items()},
            "settings": {"steps": settings.faithfulness_steps, "fill": settings.faithfulness_fill,
                         "score": "softmax probability of the explained class"},
            "rule": BEYOND_RULES["faithfulness"]}

    if "robustness" in criteria:
        perturbations = [state for state in (NOISE, SHIFT) if any(state in plan.states[s] for s in sample)]
        by_state = {state: {m: per(sample, m, state, "ssim_vs_original") for m in scored} for state in perturbations}
        worst = {m: [_lower([by_state[state][m][i] for state in perturbations]) for i in range(len(sample))]
                 for m in scored}
        changed = {state: _rate([metric(s, methods[0], state, "predicted") != metric(s, methods[0], ORIGINAL, "predicted")
                                 for s in sample if metric(s, methods[0], state, "predicted") is not None])
                   for state in perturbations} if methods else {}
        results["robustness"] = {
            "study_ids": sample, "perturbations": [p.split("/", 1)[1] for p in perturbations],
            "ssim_by_perturbation": {p.split("/", 1)[1]: v for p, v in by_state.items()}, "ssim": worst,
            "summary": {m: summarize(v) for m, v in worst.items()},
            "prediction_changed": {p.split("/", 1)[1]: v for p, v in changed.items()},
            "noise_sigma": summarize(per(sample, methods[0], NOISE, "noise_sigma")) if methods else None,
            "settings": {"noise_sigma": settings.robustness_noise_sigma if settings.robustness_noise_sigma is not None
                         else "each image's own noise level (Immerkaer 1996)",
                         "shift_pixels": settings.robustness_shift},
            "different_image_baseline": baseline, "rule": BEYOND_RULES["robustness"]}


def beyond_criterion_numbers(results: Dict[str, Any], criterion: str, method: str, baseline: Dict[str, Any]):
    """``(value, baseline, per-image values, per-image baseline, higher_is_better, details)`` of a
    criterion beyond the study; None when it did not run."""
    block = results.get(criterion)
    if not block:
        return None
    if criterion == "shortcut":
        randomized = block["auprc_randomized_model"][method]
        return (block["summary"][method]["mean"], _mean(randomized), block["auprc"][method], randomized, True,
                {"value_name": "mean AUPRC against the shortcut region",
                 "baseline_name": "same method on the fully randomized model",
                 "lesion_auprc": block["lesion_summary"][method]["mean"],
                 "model_reliance": block["model_reliance"]})
    if criterion == "data_randomization":
        return (block["summary"][method]["mean"], baseline.get("ssim"), block["ssim"][method],
                baseline["ssim_per_study"], False,
                {"value_name": "mean SSIM to the label-randomized model's map",
                 "baseline_name": "different-image mean SSIM",
                 "spearman_mean": block["spearman_summary"][method]["mean"],
                 "prediction_agreement": block["prediction_agreement"]})
    if criterion == "faithfulness":
        return (block["summary"][method]["mean"], _mean(block["score_random"]), block["score"][method],
                block["score_random"], True,
                {"value_name": "mean insertion - deletion area", "baseline_name": "random pixel order",
                 "deletion_auc": block["deletion_summary"][method]["mean"],
                 "insertion_auc": block["insertion_summary"][method]["mean"],
                 "deletion_auc_random": _mean(block["deletion_auc_random"]),
                 "insertion_auc_random": _mean(block["insertion_auc_random"]), **block["settings"]})
    if criterion == "robustness":
        return (block["summary"][method]["mean"], baseline.get("ssim"), block["ssim"][method],
                baseline["ssim_per_study"], True,
                {"value_name": "mean SSIM to the clean map (worse perturbation per image)",
                 "baseline_name": "different-image mean SSIM",
                 **{f"ssim_{p}": _mean(v[method]) for p, v in block["ssim_by_perturbation"].items()},
                 "prediction_changed": block["prediction_changed"], **block["settings"]})
    raise ValueError(f"unknown criterion {criterion!r}")


def _mean(values: List[Optional[float]]) -> Optional[float]:
    defined = [v for v in values if v is not None and not np.isnan(v)]
    return float(np.mean(defined)) if defined else None
