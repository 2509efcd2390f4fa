"""Fixtures for the DICOM/NIfTI writer tests: synthetic CR and CT sources, the dciodvfy validator,
dcmqi's converters (the ones 3D Slicer's DICOM plugins run)."""

import subprocess
import sys
from pathlib import Path

_TESTING = str(Path(__file__).resolve().parents[1])
if _TESTING not in sys.path:  # the suite runs with --import-mode=importlib
    sys.path.append(_TESTING)   # last: never shadows an installed package

import pytest  # noqa: E402

from support.dicom_sources import make_cr_dataset, make_ct_datasets  # noqa: E402
from support.validate import dciodvfy  # noqa: E402,F401
from SaliencyTrustLib.synthetic import make_cohort  # noqa: E402


@pytest.fixture(scope="session")
def cxr_case():
    """A positive synthetic radiograph (64 x 64)."""
    return make_cohort(2, seed=0, kind="cxr", size=64)[1]


@pytest.fixture(scope="session")
def ct_case():
    """A positive synthetic CT (12 slices of 20 x 20)."""
    case = make_cohort(2, seed=0, kind="ct", size=20)[1]
    case.image = case.image[4:16]
    case.mask = case.mask[4:16]
    return case


@pytest.fixture
def cr_source(cxr_case):
    """The radiograph as a CR dataset without a Frame of Reference (the usual case)."""
    return make_cr_dataset(cxr_case.image, case_id="cxr-test")


@pytest.fixture
def ct_sources(ct_case):
    """The CT as a series of single-frame CT datasets, delivered out of order."""
    return make_ct_datasets(ct_case.image, case_id="ct-test", shuffle=True)


def _dcmqi_executable(name: str) -> Path:
    """A converter shipped by PyPI's ``dcmqi`` package (the test extra installs it)."""
    try:
        import dcmqi
    except ImportError as error:
        raise RuntimeError("dcmqi is not installed: `pip install -c requirements/constraints.txt "
                           "-e .[test]` installs it (the test extra pins it).") from error
    folder = Path(dcmqi.__file__).parent / "bin"
    for candidate in (folder / name, folder / f"{name}.exe"):
        if candidate.is_file():
            return candidate
    raise RuntimeError(f"dcmqi {dcmqi.__version__} has no {name} in {folder}.")


@pytest.fixture(scope="session")
def dcmqi():
    """``dcmqi(tool, *args)`` runs one of dcmqi's converters and returns its CompletedProcess;
    a non-zero exit (a crash included) fails the test with the converter's output."""

    def run(tool: str, *args) -> subprocess.CompletedProcess:
        command = [str(_dcmqi_executable(tool)), *(str(a) for a in args)]
        completed = subprocess.run(command, capture_output=True, text=True, timeout=300)
        assert completed.returncode == 0, (
            f"{tool} exited with {completed.returncode}:\n{completed.stdout}\n{completed.stderr}")
        return completed

    return run
