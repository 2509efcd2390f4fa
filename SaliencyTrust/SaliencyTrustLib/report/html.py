"""The self-contained HTML report: scorecard first, then the figures, then how it was made.

Figures are embedded as base64 PNG (``<img id="fig-<id>" src="data:image/png;base64,...">``), so
the single file can be mailed or archived; the same PNGs are also written to ``figures/``.
"""

from __future__ import annotations

import base64
import html
import json
from typing import Any, Dict, List, Optional

from .figures import FIGURES

CRITERIA_ORDER = ("localization", "randomization", "repeatability", "reproducibility",
                  "shortcut", "data_randomization", "faithfulness", "robustness")
CRITERIA_TITLES = {"localization": "Localization utility (AUPRC)", "randomization": "Randomization (SSIM)",
                   "repeatability": "Repeatability (SSIM)", "reproducibility": "Reproducibility (SSIM)",
                   "shortcut": "Shortcut revealed (AUPRC, marker)", "data_randomization": "Data randomization (SSIM)",
                   "faithfulness": "Faithfulness (insertion - deletion)", "robustness": "Robustness (SSIM)"}

_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:24px auto;max-width:1180px;color:#222;padding:0 16px}
h1{font-size:24px;margin-bottom:4px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:28px}
.sub{color:#666;font-size:13px}table{border-collapse:collapse;font-size:13px;margin:8px 0}
th,td{border:1px solid #ddd;padding:4px 8px;text-align:left;vertical-align:top}th{background:#f4f4f4}
td.pass{background:#e3f4e1}td.fail{background:#fbe3e1}td.na{color:#999}
.verdict{font-size:15px;padding:8px 12px;background:#f7f7f7;border-left:4px solid #888;margin:10px 0}
figure{margin:12px 0}figcaption{font-size:12px;color:#555;max-width:950px}img{max-width:100%}
code,pre{font-size:12px;background:#f6f6f6}pre{padding:8px;overflow-x:auto}
"""


def _fmt(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _card(results: Dict[str, Any]):
    from ..criteria import Scorecard

    return Scorecard.from_dict(results["scorecard"])


def _scorecard_table(results: Dict[str, Any]) -> str:
    card = _card(results)
    criteria = [c for c in CRITERIA_ORDER if c in results.get("criteria", [])]
    head = "".join(f"<th>{CRITERIA_TITLES[c]}</th>" for c in criteria)
    rows, rules = [], {}
    for method in card.methods:
        control = any(r.details.get("control") for r in card.rows if r.method == method)
        cells = []
        for c in criteria:
            entry = card.get(method, c)
            if entry is None:
                cells.append('<td class="na">not evaluated</td>')
                continue
            rules[c] = entry.rule
            passes = entry.passed
            css = "na" if passes is None else ("pass" if passes else "fail")
            mark = "? undecided" if passes is None else ("&#10003; pass" if passes else "&#10007; fail")
            verdict = entry.details.get("verdict") or {}
            ci = (f"<br><span class=\"sub\">diff {_fmt(verdict.get('difference'))} "
                  f"[{_fmt(verdict.get('ci_low'))}, {_fmt(verdict.get('ci_high'))}], n={verdict.get('n_images')}</span>"
                  if verdict else "")
            note = entry.details.get("reason") or entry.details.get("flag") or ""
            cells.append(f'<td class="{css}" title="{html.escape(entry.baseline_name + ". " + note)}">{mark}<br>'
                         f'{_fmt(entry.value)} vs {_fmt(entry.baseline)}{ci}</td>')
        if control:
            trusted = '<td class="na">negative control</td>'
        else:
            trusted = {True: '<td class="pass">yes</td>', False: '<td class="fail">no</td>',
                       None: '<td class="na">undecided</td>'}[card.passes_all(method)]
        label = f"{html.escape(method)}" + (" <span class=\"sub\">(control)</span>" if control else "")
        rows.append(f"<tr><th>{label}</th>{''.join(cells)}{trusted}</tr>")
    rule_items = "".join(f"<li><b>{c}</b>: {html.escape(rules[c])}</li>" for c in criteria if c in rules)
    return (f"<table id=\"scorecard\"><tr><th>method</th>{head}<th>trusted on every criterion</th></tr>"
            f"{''.join(rows)}</table><ul class=\"sub\">{rule_items}</ul>")


def _localization_networks(results: Dict[str, Any]) -> str:
    """The study's baselines from the two localization networks (when the run had them)."""
    networks = results.get("localization_networks")
    if not networks:
        return ('<p class="sub" id="localization-networks">No localization networks: repeatability and '
                "reproducibility are compared with the different-image SSIM.</p>")
    summary = networks["summary"]
    return ('<p id="localization-networks">Localization networks (two segmentation networks trained apart, the '
            f"study's baselines): AUPRC {_fmt(summary['auprc']['mean'])} and "
            f"{_fmt(summary['auprc_replicate']['mean'])}; SSIM between their maps {_fmt(summary['ssim']['mean'])} "
            "(the bar of repeatability and reproducibility; the study's U-Net: AUPRC 0.404, SSIM about 0.975)</p>")


def _verdict(results: Dict[str, Any]) -> str:
    scorecard = _card(results)
    card = {m: None for m in results["methods"]}
    trusted = [m for m in results["methods"] if scorecard.passes_all(m)]
    criteria = [c for c in CRITERIA_ORDER if c in results.get("criteria", [])]
    undecided = [m for m in results["methods"] if scorecard.passes_all(m) is None]
    if trusted:
        text = f"{len(trusted)} of {len(card)} methods pass every evaluated criterion: {', '.join(trusted)}."
    else:
        text = f"None of the {len(card)} methods passes every evaluated criterion ({', '.join(criteria)})."
    if undecided:
        text += (f" Undecided (a confidence interval that includes the baseline, fewer than "
                 f"{results.get('min_images', 20)} images, or a control not beaten): {', '.join(undecided)}.")
    skipped = results.get("skipped_criteria") or {}
    if skipped:
        text += " Not evaluated: " + "; ".join(f"{k} ({v})" for k, v in skipped.items()) + "."
    return f'<div class="verdict" id="verdict">{html.escape(text)}</div>'


def _kv_table(mapping: Dict[str, Any], table_id: str) -> str:
    rows = "".join(f"<tr><th>{html.escape(str(k))}</th><td><code>{html.escape(json.dumps(v) if not isinstance(v, str) else v)}</code></td></tr>"
                   for k, v in mapping.items())
    return f'<table id="{table_id}">{rows}</table>'


def _summary_tables(results: Dict[str, Any]) -> str:
    parts = []
    loc = results.get("localization")
    if loc:
        rows = [f"<tr><th>average mask (baseline)</th><td>{_fmt(loc['baselines']['mean_mask']['mean'])}</td>"
                f"<td>{_fmt(loc['baselines']['mean_mask']['median'])}</td><td>{loc['baselines']['mean_mask']['n']}</td><td></td></tr>"]
        for m in results["methods"]:
            s = loc["summary"][m]
            r = loc["baselines"]["randomized_model"].get(m, {})
            rows.append(f"<tr><th>{html.escape(m)}</th><td>{_fmt(s['mean'])}</td><td>{_fmt(s['median'])}</td>"
                        f"<td>{s['n']}</td><td>{_fmt(r.get('mean'))}</td></tr>")
        refs = ", ".join(f"{k} {v}" for k, v in loc["baselines"]["reference"].items())
        parts.append("<table id=\"auprc-table\"><tr><th>AUPRC</th><th>mean</th><th>median</th><th>images</th>"
                     f"<th>mean, fully randomized model</th></tr>{''.join(rows)}</table>"
                     f"<p class=\"sub\">Localization networks in the study (other data, for scale): {html.escape(refs)}.</p>")
    return "".join(parts)


def _beyond_table(results: Dict[str, Any]) -> str:
    """What the criteria beyond the study measured, beside their figure: the shortcut model's
    reliance on its marker, the label-randomized model's agreement, the perturbed predictions."""
    items = []
    shortcut = results.get("shortcut")
    if shortcut:
        reliance = shortcut["model_reliance"]
        items.append(f"<li id=\"shortcut-reliance\">Shortcut: the model predicts class 1 on "
                     f"{_fmt(reliance['positive_rate_with_marker']['rate'])} of {reliance['positive_rate_with_marker']['n']} "
                     f"evaluated images with the marker and {_fmt(reliance['positive_rate_without_marker']['rate'])} of "
                     f"{reliance['positive_rate_without_marker']['n']} without it (accuracy "
                     f"{_fmt(reliance['accuracy_with_marker']['rate'])} with, {_fmt(reliance['accuracy_without_marker']['rate'])} "
                     "without): a model that relies on the marker follows it.</li>")
    data = results.get("data_randomization")
    if data:
        items.append(f"<li>Data randomization: the label-randomized model predicts the trained model's class on "
                     f"{_fmt(data['prediction_agreement']['rate'])} of {data['prediction_agreement']['n']} images.</li>")
    faithful = results.get("faithfulness")
    if faithful:
        items.append(f"<li>Faithfulness: {faithful['settings']['steps']} steps, fill <code>{html.escape(faithful['settings']['fill'])}</code>; "
                     "random pixel order: deletion area "
                     f"{_fmt(_mean_of(faithful['deletion_auc_random']))}, insertion area {_fmt(_mean_of(faithful['insertion_auc_random']))}.</li>")
    robust = results.get("robustness")
    if robust:
        changed = ", ".join(f"{k} {_fmt(v['rate'])}" for k, v in robust["prediction_changed"].items())
        used = (robust.get("noise_sigma") or {}).get("median")
        items.append(f"<li>Robustness: noise sigma {html.escape(str(robust['settings']['noise_sigma']))}"
                     + (f" (median {used:.4g} in model-input units; 0 = no measurable noise, give "
                        "robustness_noise_sigma)" if used is not None else "") + ", shift "
                     f"{robust['settings']['shift_pixels']} px; fraction of predictions changed by the perturbation: "
                     f"{html.escape(changed)}.</li>")
    return f'<ul class="sub" id="beyond-notes">{"".join(items)}</ul>' if items else ""


def _mean_of(values) -> Optional[float]:
    defined = [v for v in values if v is not None]
    return sum(defined) / len(defined) if defined else None


def render_html(results: Dict[str, Any], figures: Dict[str, bytes], timing: Optional[Dict[str, Any]] = None,
                title: str = "SaliencyTrust report", notes: Optional[str] = None) -> str:
    """The report as one HTML string.

    Args:
        results: the ``results.json`` content (:func:`SaliencyTrustLib.cohort.assemble.assemble_results`).
        figures: ``{figure id: PNG bytes}`` (:func:`SaliencyTrustLib.report.figures.make_figures`).
        timing: optional ``timing.json`` content.
        title: the page title.
        notes: an optional paragraph under the title (e.g. the demo's reduced settings).
    """
    cohort = results["cohort"]
    sections: List[str] = [
        f"<h1>{html.escape(title)}</h1>",
        f"<div class=\"sub\">Cohort: {html.escape(str(cohort['source']))} &middot; {cohort['n_studies']} positive images "
        f"(sample of {cohort['n_sample']} for randomization / repeatability / reproducibility) &middot; "
        f"{len(results['methods'])} methods &middot; preset <code>{html.escape(results['settings']['preset'])}</code> "
        f"&middot; configuration <code>{results['fingerprint'][:12]}</code></div>",
        f"<p class=\"sub\" id=\"notes\">{html.escape(notes)}</p>" if notes else "",
        "<h2 id=\"scorecard-title\">Scorecard</h2>", _verdict(results), _scorecard_table(results),
        _localization_networks(results),
        "<p class=\"sub\">Criteria of Arun et al., <i>Assessing the Trustworthiness of Saliency Maps for Localizing "
        "Abnormalities in Medical Imaging</i>, Radiology: AI 2021;3(6):e200267.</p>",
    ]
    for figure_id, (heading, caption) in FIGURES.items():
        if figure_id not in figures:
            continue
        data = base64.b64encode(figures[figure_id]).decode("ascii")
        extra = {"auprc": _summary_tables, "beyond": _beyond_table}.get(figure_id, lambda _: "")(results)
        sections.append(f"<h2>{html.escape(heading)}</h2><figure><img id=\"fig-{figure_id}\" alt=\"{html.escape(heading)}\" "
                        f"src=\"data:image/png;base64,{data}\"><figcaption>{html.escape(caption)}</figcaption></figure>{extra}")
    ran = results.get("randomization")
    if ran:
        sections.append(f"<p class=\"sub\">{html.escape(ran['note'])}</p>")
    failures = results.get("failures") or {}
    sections.append("<h2>Skipped studies</h2>")
    if failures:
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v['stage'])}</td><td>{html.escape(v['message'])}</td></tr>"
                       for k, v in failures.items())
        sections.append(f"<table id=\"failures\"><tr><th>study</th><th>stage</th><th>reason</th></tr>{rows}</table>")
    else:
        sections.append("<p id=\"failures\">None: every study was read and explained.</p>")
    settings = dict(results["settings"])
    settings["ssim_data_range"] = results["ssim_data_range"]
    sections += [
        "<h2>Parameters, versions and seeds</h2>",
        "<h3>Settings</h3>", _kv_table(settings, "settings"),
        "<h3>Saliency methods (effective parameters)</h3>", _kv_table(results.get("method_settings", {}), "method-settings"),
        "<h3>Models</h3>", _kv_table(results.get("models", {}), "models"),
        "<h3>Seeds</h3>", _kv_table(results.get("seeds", {}), "seeds"),
        "<h3>Versions</h3>", _kv_table(results.get("versions", {}), "versions"),
        "<h3>Cohort</h3>", _kv_table({k: v for k, v in cohort.items() if k not in ("study_ids",)}, "cohort"),
        f"<p class=\"sub\">Configuration fingerprint (SHA-256 of every number-changing parameter): "
        f"<code>{results['fingerprint']}</code>. Data behind this page: <code>results.json</code>, "
        "<code>units.csv</code>, <code>scorecard.csv</code> next to this file.</p>",
    ]
    if timing:
        sections += ["<h3>Timing</h3>", _kv_table(timing, "timing")]
    body = "\n".join(sections)
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n{body}\n</body></html>\n")
