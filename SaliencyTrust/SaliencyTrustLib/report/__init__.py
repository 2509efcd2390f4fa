"""The report of a cohort run: a self-contained HTML page, its figures (PNG) and the data behind it.

:func:`write_report` reads ``results.json`` (and the gallery's arrays) from a results folder and
writes ``report.html`` plus ``figures/<id>.png``. The JSON/CSV files are written by the assembly
(:mod:`SaliencyTrustLib.cohort.assemble`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, Optional, Union

from .figures import FIGURES, make_figures, promised_figures
from .html import render_html

__all__ = ["FIGURES", "make_figures", "promised_figures", "render_html", "write_report"]


def write_report(root: Union[str, Path], results: Optional[Dict[str, Any]] = None,
                 title: str = "SaliencyTrust report", name: str = "report.html", notes: Optional[str] = None) -> Path:
    """Write ``root/report.html`` (figures embedded) and ``root/figures/*.png``; return the HTML path.

    ``notes``: a paragraph shown under the title (how this run differs from the study).

    Raises:
        FileNotFoundError: ``root/results.json`` is missing and ``results`` not given.
    """
    root = Path(root)
    if results is None:
        results = json.loads((root / "results.json").read_text(encoding="utf-8"))
    timing_path = root / "timing.json"
    timing = json.loads(timing_path.read_text(encoding="utf-8")) if timing_path.exists() else None
    figures = make_figures(results, root)
    figure_dir = root / "figures"
    figure_dir.mkdir(parents=True, exist_ok=True)
    for figure_id, png in figures.items():
        (figure_dir / f"{figure_id}.png").write_bytes(png)
    page = render_html(results, figures, timing, title=title, notes=notes)
    target = root / name
    tmp = target.with_name(f".{name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(target)
    return target
