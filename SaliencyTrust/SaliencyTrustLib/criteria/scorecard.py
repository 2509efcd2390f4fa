"""The scorecard: per method, per criterion, the value, the baseline, pass/fail and the rule.

A :class:`Scorecard` collects rows from the criteria results (:meth:`Scorecard.add_result`) or by
hand (:meth:`Scorecard.add`) and records the parameters, seeds and package versions that produced
them. It serializes to a dict / JSON (``to_dict``, ``to_json``, ``from_dict``) and to CSV
(``to_csv``, one row per method and criterion). Undefined values are ``null`` in JSON and empty in
CSV, never a number.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional

from ._common import mean_or_nan
from ._common import versions as _versions

__all__ = ["Scorecard", "ScorecardRow", "CRITERIA"]

#: Criteria in report order: the study's four, then those beyond it
#: (:mod:`SaliencyTrustLib.cohort.assemble_beyond`).
CRITERIA = ("localization", "randomization", "repeatability", "reproducibility",
            "shortcut", "data_randomization", "faithfulness", "robustness")


def _clean(value: Any) -> Any:
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python."""
    if hasattr(value, "item") and not isinstance(value, (list, dict)):
        try:
            value = value.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


@dataclass
class ScorecardRow:
    """One verdict.

    Attributes:
        method: saliency method; criterion: one of :data:`CRITERIA`.
        value: the method's number (e.g. mean AUPRC, min mean SSIM); value_name: what it is.
        baseline: the number it is compared with; baseline_name: which baseline (or "absent").
        passed: True / False, or None when undecidable.
        rule: the pass rule in words.
        details: other numbers (other baselines, Spearman, NaN counts, CI...).
    """

    method: str
    criterion: str
    value: Optional[float]
    value_name: str
    baseline: Optional[float]
    baseline_name: str
    passed: Optional[bool]
    rule: str
    details: Dict[str, Any] = field(default_factory=dict)


class Scorecard:
    """Verdicts of every method on every criterion, with the settings that produced them.

    Args:
        params: settings of the run (seeds, SSIM options, granularity...), recorded as given.
        versions: package versions; default: the current ones.
    """

    def __init__(self, params: Optional[Dict[str, Any]] = None,
                 versions: Optional[Dict[str, str]] = None):
        self.rows: List[ScorecardRow] = []
        self.params: Dict[str, Any] = dict(params or {})
        self.versions: Dict[str, str] = dict(versions or _versions())

    def add(self, method: str, criterion: str, value: Optional[float], baseline: Optional[float],
            passed: Optional[bool], rule: str, *, value_name: str = "", baseline_name: str = "",
            **details: Any) -> ScorecardRow:
        """Add one row (replacing an earlier row of the same method and criterion)."""
        if criterion not in CRITERIA:
            raise ValueError(f"criterion must be one of {CRITERIA}, got {criterion!r}")
        row = ScorecardRow(method=str(method), criterion=criterion, value=_clean(value),
                           value_name=value_name, baseline=_clean(baseline),
                           baseline_name=baseline_name,
                           passed=None if passed is None else bool(passed), rule=rule,
                           details=_clean(details))
        self.rows = [r for r in self.rows if not (r.method == row.method
                                                  and r.criterion == criterion)]
        self.rows.append(row)
        return row

    def add_result(self, result: Any) -> None:
        """Add the rows of a criterion result: a :class:`.localization.LocalizationResult`, a
        ``{method: SensitivityResult | ConsistencyResult}`` dict, or one of those."""
        from .consistency import ConsistencyResult
        from .localization import LocalizationResult
        from .sensitivity import SensitivityResult

        if isinstance(result, dict):
            for item in result.values():
                self.add_result(item)
            return
        if isinstance(result, LocalizationResult):
            ref = result.reference_baseline
            for method in result.methods:
                summary = result.summary[method]
                self.add(method, "localization", summary["mean"], result.summary[ref]["mean"],
                         result.passed[method], result.rule, value_name="mean AUPRC",
                         baseline_name=ref.split(":", 1)[1],
                         other_baselines=result.baseline_value(method),
                         median=summary["median"], iqr=summary["iqr"],
                         ci=[summary["ci_low"], summary["ci_high"]],
                         average_precision_mean=summary.get("average_precision_mean"),
                         n_undefined=summary["n_undefined"],
                         undefined_reasons=summary["undefined_reasons"])
            self.params.setdefault("localization", result.params)
        elif isinstance(result, SensitivityResult):
            self.add(result.method, "randomization", result.value, result.baseline.mean,
                     result.passed, result.rule,
                     value_name=("min over states of mean SSIM" if result.params.get("rule") != "final"
                                 else "mean SSIM at the last state"),
                     baseline_name="different-image mean SSIM",
                     states=result.states, ssim_curve=list(result.ssim_curve),
                     spearman_curve=list(result.spearman_curve),
                     first_below=result.first_below,
                     n_undefined=[int(x) for x in result.n_undefined],
                     spearman_baseline=result.baseline.spearman_mean,
                     note="Binder et al. 2023: SSIM-based randomization tests can be passed by "
                          "uninformative maps; read the Spearman curve beside it")
            self.params.setdefault("randomization", result.params)
        elif isinstance(result, ConsistencyResult):
            baseline = result.localization_baseline
            self.add(result.method, result.criterion, result.value,
                     baseline if baseline is not None else result.different_image.mean,
                     result.passed, result.rule, value_name="mean SSIM",
                     baseline_name=("localization networks' mean SSIM" if baseline is not None
                                    else "different-image mean SSIM (localization baseline absent)"),
                     different_image_baseline=result.different_image.mean,
                     above_different_image=result.above_different_image,
                     spearman_mean=mean_or_nan(result.spearman),
                     median=result.summary["median"], iqr=result.summary["iqr"],
                     n_undefined=result.summary["n_undefined"])
            self.params.setdefault(result.criterion, result.params)
        else:
            raise TypeError(f"cannot add a {type(result).__name__} to a Scorecard")

    @property
    def methods(self) -> List[str]:
        seen: List[str] = []
        for row in self.rows:
            if row.method not in seen:
                seen.append(row.method)
        return seen

    def get(self, method: str, criterion: str) -> Optional[ScorecardRow]:
        for row in self.rows:
            if row.method == method and row.criterion == criterion:
                return row
        return None

    def passes_all(self, method: str) -> Optional[bool]:
        """True when the method passed every criterion it was scored on (None if unscored)."""
        verdicts = [r.passed for r in self.rows if r.method == method]
        if not verdicts or any(v is None for v in verdicts):
            return None
        return all(verdicts)

    def to_dict(self) -> Dict[str, Any]:
        return _clean({"rows": [asdict(r) for r in self.rows], "params": self.params,
                       "versions": self.versions,
                       "summary": {m: self.passes_all(m) for m in self.methods}})

    def to_json(self, path: Optional[str] = None, indent: int = 2) -> str:
        """JSON text (written to ``path`` too when given)."""
        text = json.dumps(self.to_dict(), indent=indent, sort_keys=False)
        if path is not None:
            with open(path, "w", encoding="utf-8") as handle:
                handle.write(text)
        return text

    def to_csv(self, path: Optional[str] = None) -> str:
        """CSV text, one row per method and criterion (details as a JSON column)."""
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "criterion", "value", "value_name", "baseline", "baseline_name",
                         "passed", "rule", "details"])
        for r in self.rows:
            writer.writerow([r.method, r.criterion, "" if r.value is None else repr(r.value),
                             r.value_name, "" if r.baseline is None else repr(r.baseline),
                             r.baseline_name, "" if r.passed is None else str(r.passed).lower(),
                             r.rule, json.dumps(r.details, sort_keys=True)])
        text = buffer.getvalue()
        if path is not None:
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(text)
        return text

    @classmethod
    def from_dict(cls, data: Dict[str, Any]) -> "Scorecard":
        card = cls(params=data.get("params"), versions=data.get("versions"))
        card.rows = [ScorecardRow(**row) for row in data.get("rows", [])]
        return card

    @classmethod
    def from_json(cls, text_or_path: str) -> "Scorecard":
        text = text_or_path
        if not text_or_path.lstrip().startswith("{"):
            with open(text_or_path, encoding="utf-8") as handle:
                text = handle.read()
        return cls.from_dict(json.loads(text))
