"""The one-screen summary printed at the end of ``evaluate`` and ``demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Optional

_SHORT = {"localization": "AUPRC", "randomization": "random.", "repeatability": "repeat.", "reproducibility": "reprod.",
          "shortcut": "shortcut", "data_randomization": "data rand.", "faithfulness": "faithful.",
          "robustness": "robust."}


def summary_text(results: Dict[str, Any], out_dir, report: Optional[Path] = None) -> str:
    """A fixed-width table: one line per method, value/baseline and pass/fail per criterion."""
    criteria = [c for c in _SHORT if c in results.get("criteria", [])]
    cohort = results["cohort"]
    lines = [f"SaliencyTrust: {cohort['n_studies']} positive images ({cohort['n_sample']} in the randomization/"
             f"repeatability/reproducibility sample), {len(results['methods'])} methods, preset "
             f"{results['settings']['preset']}, SSIM data_range {results['ssim_data_range']}."]
    header = f"{'method':<22}" + "".join(f"{_SHORT[c] + ' (value/base)':>25}" for c in criteria) + f"{'trusted':>9}"
    lines += [header, "-" * len(header)]
    from ..criteria import Scorecard

    card = Scorecard.from_dict(results["scorecard"])
    for method in card.methods:
        cells = []
        for c in criteria:
            entry = card.get(method, c)
            if entry is None or entry.value is None:
                cells.append(f"{'n/a':>25}")
                continue
            mark = "?" if entry.passed is None else ("PASS" if entry.passed else "fail")
            base = "n/a" if entry.baseline is None else f"{entry.baseline:.3f}"
            cells.append(f"{entry.value:>10.3f}/{base:<6} {mark:>5}  ")
        verdict = card.passes_all(method)
        trusted = ("control" if method in results.get("controls", []) else
                   {True: "yes", False: "no", None: "undecided"}[verdict])
        lines.append(f"{method:<22}" + "".join(cells) + f"{trusted:>10}")
    failures = results.get("failures") or {}
    if failures:
        lines.append(f"{len(failures)} studies skipped (see the report): " + ", ".join(list(failures)[:5])
                     + (" ..." if len(failures) > 5 else ""))
    for name, reason in (results.get("skipped_criteria") or {}).items():
        lines.append(f"not evaluated: {name} ({reason})")
    out = Path(out_dir)
    lines.append(f"results: {out / 'results.json'}, {out / 'units.csv'}, {out / 'scorecard.csv'}")
    if report is not None:
        lines.append(f"report:  {Path(report).resolve()}")
    return "\n".join(lines)
