"""Crash safety for real: ``kill -9`` a running ``saliency-trust evaluate``, run it again, and get
exactly the files of an uninterrupted run; a changed configuration is refused."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time

from cohort_helpers import evaluate_command, map_files, run_cli, stored_unit_count, subprocess_env


def _planned_units(out) -> int:
    return json.loads((out / "results.json").read_text())["cohort"]["n_units_planned"]


def test_kill_9_mid_run_then_rerun_gives_the_uninterrupted_results_with_no_unit_lost_or_doubled(
        tiny_cohort, reference_run, tmp_path):
    reference, resumed = reference_run, tmp_path / "resumed"
    planned = _planned_units(reference)
    assert planned > 50

    process = subprocess.Popen([sys.executable, "-m", "SaliencyTrustLib", *evaluate_command(tiny_cohort, resumed)],
                               env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and process.poll() is None:
        if stored_unit_count(resumed) >= planned // 4:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    assert 0 < stored_unit_count(resumed) < planned       # the kill really happened mid-way
    assert not (resumed / "results.json").exists()

    stored_before = stored_unit_count(resumed)
    again = run_cli(evaluate_command(tiny_cohort, resumed), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    # no unit lost or counted twice, in the store and in the table
    assert stored_unit_count(resumed) == planned
    rows = (resumed / "units.csv").read_text().splitlines()[1:]
    assert len(rows) == planned == len({tuple(r.split(",")[:3]) for r in rows})
    # identical to the uninterrupted run: every number, every map, bit for bit
    assert (resumed / "results.json").read_text() == (reference / "results.json").read_text()
    assert (resumed / "units.csv").read_text() == (reference / "units.csv").read_text()
    assert map_files(resumed) == map_files(reference)
    # the second run computed only what the killed one had not committed
    last = json.loads((resumed / "timing.json").read_text())["last_run"]
    assert last["units_todo"] == last["units_done_now"] == planned - stored_before


def test_rerun_of_a_finished_run_computes_nothing_and_a_changed_setting_is_refused(tiny_cohort, reference_run,
                                                                                     tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(reference_run, out)
    before = (out / "results.json").read_text()
    again = run_cli(evaluate_command(tiny_cohort, out, "--no-report"), timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "timing.json").read_text())["last_run"]["units_todo"] == 0
    assert (out / "results.json").read_text() == before

    changed = run_cli(evaluate_command(tiny_cohort, out, "--seed", "7", "--no-report"), timeout=300)
    assert changed.returncode == 3
    assert "settings.seed" in changed.stderr and "--restart" in changed.stderr
    assert (out / "results.json").read_text() == before
