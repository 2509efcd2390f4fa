"""Fixtures for the PACS tests: a real Orthanc (one per xdist worker) and a small synthetic cohort."""

import sys
from pathlib import Path

_TESTING = str(Path(__file__).resolve().parents[1])
if _TESTING not in sys.path:  # the suite runs with --import-mode=importlib
    sys.path.append(_TESTING)   # last: never shadows an installed package

import pytest  # noqa: E402

from support.orthanc import orthanc, orthanc_server  # noqa: E402,F401  (fixtures)


@pytest.fixture(scope="session")
def synthetic_cohort(tmp_path_factory):
    """``saliency-trust synth`` output: 2 radiographs (cxr/) and 2 small CT series (ct/)."""
    from SaliencyTrustLib.io import write_synthetic_cohort

    root = tmp_path_factory.mktemp("cohort")
    write_synthetic_cohort(root / "cxr", n=2, seed=0, kind="cxr", write_seg=False)
    write_synthetic_cohort(root / "ct", n=2, seed=0, kind="ct", size=24, write_seg=False)
    return root
