"""The extension's CMake files configure against a stand-in of Slicer's macros, listing every file.

The stand-in (``Testing/cmake/SlicerStandIn``) replaces ``find_package(Slicer)``; like the real
``slicerMacroBuildScriptedModule`` it stops on a listed file that does not exist, and it records
what was listed so it can be compared with the module's files on disk.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
STANDIN = Path(__file__).resolve().parent / "SlicerStandIn"
MODULE_DIR = REPO / "SaliencyTrust"
LIB_RESOURCE_SUFFIXES = {".json", ".yaml", ".html", ".css", ".txt"}

def configure(source: Path, build: Path) -> subprocess.CompletedProcess:
    if shutil.which("cmake") is None:
        pytest.fail("cmake is required to configure the Slicer extension: `make system-deps` "
                    "(or apt-get install cmake)")
    return subprocess.run(["cmake", "-S", str(source), "-B", str(build), f"-DSlicer_DIR={STANDIN}"],
                          capture_output=True, text=True, timeout=120)


def module_files_on_disk():
    """Every .py and resource of the module (what a Slicer build must copy), as absolute paths."""
    scripts = {MODULE_DIR / "SaliencyTrust.py"}
    resources = set()
    for path in (MODULE_DIR / "SaliencyTrustLib").rglob("*"):
        if "__pycache__" in path.parts or not path.is_file():
            continue
        if path.suffix == ".py":
            scripts.add(path)
        elif path.suffix in LIB_RESOURCE_SUFFIXES:
            resources.add(path)
    resources |= {p for p in (MODULE_DIR / "Resources").rglob("*") if p.is_file()}
    return {p.resolve() for p in scripts}, {p.resolve() for p in resources}


@pytest.fixture(scope="module")
def configured(tmp_path_factory):
    build = tmp_path_factory.mktemp("cmake-build")
    completed = configure(REPO, build)
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return build


def listed(build: Path):
    records = (build / "SlicerStandIn" / "listed_files.txt").read_text().splitlines()
    scripts = {Path(line.split(" ", 1)[1]).resolve() for line in records if line.startswith("SCRIPT ")}
    resources = {Path(line.split(" ", 1)[1]).resolve() for line in records if line.startswith("RESOURCE ")}
    return scripts, resources


def test_every_script_and_resource_of_the_module_is_listed(configured):
    scripts, resources = listed(configured)
    on_disk_scripts, on_disk_resources = module_files_on_disk()
    assert MODULE_DIR.joinpath("SaliencyTrust.py").resolve() in scripts
    assert on_disk_scripts - scripts == set(), "scripts missing from SaliencyTrust/CMakeLists.txt"
    assert on_disk_resources - resources == set(), "resources missing from SaliencyTrust/CMakeLists.txt"
    assert scripts <= on_disk_scripts and resources <= on_disk_resources


def test_extension_metadata_and_python_test_are_declared(configured):
    metadata = dict(line.split("=", 1) for line in
                    (configured / "SlicerStandIn" / "extension_metadata.txt").read_text().splitlines())
    assert "PyTorch" in metadata["EXTENSION_DEPENDS"].split()
    assert metadata["EXTENSION_ICONURL"].endswith("Resources/Icons/SaliencyTrust.png")
    assert metadata["CPACK"] == "SaliencyTrust"
    # The icon and screenshot the URLs point at exist in the repository.
    assert (REPO / "Resources" / "Icons" / "SaliencyTrust.png").is_file()
    for url in metadata["EXTENSION_SCREENSHOTURLS"].split():
        assert (REPO / url.split("/main/", 1)[1]).is_file(), url
    tests = (configured / "SlicerStandIn" / "python_tests.txt").read_text().split()
    assert [Path(t).resolve() for t in tests] == [MODULE_DIR.joinpath("SaliencyTrust.py").resolve()]


def test_a_listed_file_that_does_not_exist_fails_the_configuration(tmp_path):
    """The stand-in is as strict as Slicer: list a missing resource and configuration stops."""
    source = tmp_path / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(MODULE_DIR, source / "SaliencyTrust", ignore=ignore)
    shutil.copytree(REPO / "Resources", source / "Resources", ignore=ignore)
    shutil.copy(REPO / "CMakeLists.txt", source / "CMakeLists.txt")
    completed = configure(source, tmp_path / "build-ok")
    assert completed.returncode == 0, completed.stdout + completed.stderr  # the copy alone configures
    cmake = source / "SaliencyTrust" / "CMakeLists.txt"
    cmake.write_text(cmake.read_text().replace("Resources/UI/${MODULE_NAME}.ui",
                                               "Resources/UI/${MODULE_NAME}.ui\n  Resources/UI/Missing.ui"))
    completed = configure(source, tmp_path / "build-missing")
    assert completed.returncode != 0
    assert "Missing.ui' does not exist" in completed.stdout + completed.stderr
