"""One in-process evaluation of a tiny cohort that holds a broken study: the study is reported and
skipped, and the HTML report embeds every figure it promises, scorecard first."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def evaluated(tiny_cohort, tmp_path_factory):
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.report import write_report

    root = tmp_path_factory.mktemp("report")
    datalist = json.loads((tiny_cohort["cohort"] / "datalist.json").read_text())
    broken = root / "broken.nii.gz"
    broken.write_bytes(b"this is not a NIfTI file")
    first_mask = str(tiny_cohort["cohort"] / datalist["test"][1]["mask"])
    items = [{**item, "image": str(tiny_cohort["cohort"] / item["image"]), "mask": str(tiny_cohort["cohort"] / item["mask"])}
             for item in datalist["test"]]
    items.append({"image": str(broken), "mask": first_mask, "label": 1, "case_id": "aaa-broken"})
    (root / "datalist.json").write_text(json.dumps({"test": items}))
    models = tiny_cohort["models"]
    settings = EvaluationSettings(methods=("gradient", "gradcam"), preprocessing=Preprocessing(input_size=32), batch_size=3, sample_size=4,
                                  n_pairs=3, seed=0)
    out = root / "out"
    results = evaluate_cohort(load_cohort(str(root / "datalist.json")),
                              StudyModels(str(models / "a.pt"), str(models / "b.pt"), str(models / "c.pt")),
                              settings, out, device="cpu", progress=False)
    return results, write_report(out, results), out


def test_a_broken_study_is_reported_and_skipped_and_the_others_are_evaluated(evaluated):
    results, _, out = evaluated
    assert list(results["failures"]) == ["aaa-broken"]
    assert results["failures"]["aaa-broken"]["stage"] == "read"
    assert "broken.nii.gz" in results["failures"]["aaa-broken"]["message"]
    loc = results["localization"]
    broken_index = loc["study_ids"].index("aaa-broken")
    assert loc["auprc"]["gradient"][broken_index] is None
    others = [v for i, v in enumerate(loc["auprc"]["gradient"]) if i != broken_index]
    assert others and all(v is not None and 0.0 <= v <= 1.0 for v in others)
    assert results["cohort"]["n_units_stored"] < results["cohort"]["n_units_planned"]


def test_report_embeds_every_promised_figure_as_png_after_the_scorecard(evaluated):
    from SaliencyTrustLib.report import promised_figures

    results, report, out = evaluated
    page = Path(report).read_text()
    promised = promised_figures(results)
    assert promised == ["auprc", "randomization", "repeatability", "reproducibility", "gallery"]
    for figure_id in promised:
        match = re.search(rf'<img id="fig-{figure_id}"[^>]*src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
        assert match, f"figure {figure_id} missing from the report"
        assert base64.b64decode(match.group(1))[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "figures" / f"{figure_id}.png").read_bytes()[:4] == b"\x89PNG"
    assert page.index('id="scorecard"') < page.index('id="fig-auprc"')
    assert 'src="http' not in page and "<script" not in page            # self-contained
    for section in ('id="settings"', 'id="method-settings"', 'id="seeds"', 'id="versions"', 'id="failures"',
                    'id="localization-networks"'):
        assert section in page
    assert "aaa-broken" in page and results["fingerprint"] in page


def test_scorecard_verdicts_follow_the_stated_rules(evaluated):
    """Values and baselines are the criteria's means; each verdict is the paired bootstrap verdict
    of the per-image numbers (here: 4 images, fewer than the minimum of 20, so "undecided" with
    that reason), and the controls have rows of their own."""
    import json

    from SaliencyTrustLib.criteria import Scorecard
    from SaliencyTrustLib.criteria.verdicts import paired_verdict

    results, _, out = evaluated
    baselines = results["different_image_baseline"]
    card = Scorecard.from_dict(results["scorecard"])
    loc_block = results["localization"]
    for method in results["methods"] + results["controls"]:
        loc = card.get(method, "localization")
        assert loc.baseline == loc_block["baselines"]["mean_mask"]["mean"]
        expected = paired_verdict(loc_block["auprc"][method], loc_block["auprc_mean_mask"], min_images=20)
        assert loc.details["verdict"]["status"] == expected.status == "undecided"
        reason = ("no image has both numbers defined" if method == "control_constant"   # every metric undefined
                  else "fewer than the minimum 20")
        assert loc.passed is None and reason in loc.details["reason"]
        ran = card.get(method, "randomization")
        curves = results["randomization"]["curves"][method]
        curve = [s["mean"] for s in curves["ssim"] if s["mean"] is not None]
        if curve:                          # decided at the fully randomized state, the minimum reported
            assert ran.value == curves["ssim"][-1]["mean"] and ran.baseline == baselines[method]["ssim"]
            assert ran.details["min_over_states"] == min(curve)
            expected = paired_verdict(curves["ssim_per_study"][-1], baselines[method]["ssim_per_study"],
                                      higher_is_better=False)
            assert ran.details["verdict"]["difference"] == pytest.approx(expected.difference, nan_ok=True)
            assert "rank_verdict" in ran.details
        for criterion in ("repeatability", "reproducibility"):
            entry = card.get(method, criterion)
            assert entry.value == results[criterion]["summary"][method]["mean"]
            assert entry.baseline == baselines[method]["ssim"]
        assert card.get(method, "localization").details["control"] == (method in results["controls"])
        if method in results["methods"]:
            assert card.passes_all(method) is None                       # undecided, never "trusted: yes"
    # the scorecard files are the project's Scorecard format (criteria), one row per method x criterion
    card = json.loads((out / "scorecard.json").read_text())
    scored = len(results["methods"]) + len(results["controls"])
    assert len(card["rows"]) == 4 * scored
    csv_rows = (out / "scorecard.csv").read_text().splitlines()
    assert csv_rows[0].startswith("method,criterion,value") and len(csv_rows) == 1 + 4 * scored
