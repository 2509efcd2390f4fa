"""Shared pytest set-up for the whole suite: deterministic torch, single-threaded BLAS per worker."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("MPLBACKEND", "Agg")

import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    """Each test starts from the same RNG state, so a failure reproduces alone."""
    import random

    import numpy as np

    random.seed(0)
    np.random.seed(0)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a hard dependency
        return
    torch.manual_seed(0)
    torch.set_num_threads(1)
