"""Shared fixtures of the cohort tests: a tiny synthetic cohort on disk and three tiny models.

Images are 32 x 32 (``write_synthetic_cohort(size=32)``) so a whole evaluation takes seconds; the
models are the bundle's two architectures with random weights (trained weights are not needed to
test bookkeeping: every number is still computed by the real saliency / metrics / criteria code).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Dict

import pytest

# the helpers module (cohort_helpers.py) is imported by name from the tests
sys.path.insert(0, str(Path(__file__).resolve().parent))


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Dict[str, Path]:
    """``{"cohort": folder with datalist.json, "models": folder with a.pt, b.pt, c.pt}``."""
    import torch

    from SaliencyTrustLib.io import write_synthetic_cohort
    from SaliencyTrustLib.networks import build_classifier, save_classifier

    root = tmp_path_factory.mktemp("tiny")
    write_synthetic_cohort(root / "cohort", n=40, seed=3, size=32, write_seg=False)
    models = root / "models"
    for seed, (file, name) in enumerate((("a.pt", "densenet_small"), ("b.pt", "densenet_small"),
                                         ("c.pt", "resnet_small"))):
        torch.manual_seed(seed)
        save_classifier(build_classifier(name), models / file, name)
    return {"cohort": root / "cohort", "models": models, "root": root}


@pytest.fixture(scope="session")
def reference_run(tiny_cohort, tmp_path_factory) -> Path:
    """An uninterrupted one-process ``saliency-trust evaluate`` of the tiny cohort (all criteria)."""
    from cohort_helpers import evaluate_command, run_cli

    out = tmp_path_factory.mktemp("reference") / "out"
    done = run_cli(evaluate_command(tiny_cohort, out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return out
