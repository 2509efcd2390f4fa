"""``torchrun --nproc_per_node=2`` (gloo, CPU): each rank computes its share, rank 0 assembles, and
the results equal those of one process."""

from __future__ import annotations

import json
import subprocess
import sys

from cohort_helpers import evaluate_command, map_files, stored_unit_count, subprocess_env


def test_two_torchrun_processes_give_the_results_of_one_process(tiny_cohort, reference_run, tmp_path):
    single, double = reference_run, tmp_path / "double"
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                          "-m", "SaliencyTrustLib", *evaluate_command(tiny_cohort, double)],
                         env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert two.returncode == 0, two.stderr[-3000:]
    # both ranks wrote their own share into their own database, and nothing twice
    databases = sorted(p.name for p in (double / "store").glob("units-rank*.sqlite"))
    assert databases == ["units-rank0.sqlite", "units-rank1.sqlite"]
    planned = json.loads((double / "results.json").read_text())["cohort"]["n_units_planned"]
    assert stored_unit_count(double) == planned
    # rank 0 alone printed the summary
    assert two.stdout.count("results:") == 1
    assert (double / "results.json").read_text() == (single / "results.json").read_text()
    assert (double / "units.csv").read_text() == (single / "units.csv").read_text()
    assert map_files(double) == map_files(single)
