"""Python dependencies of the Slicer module: ``Resources/requirements.txt``, checked and installed.

The version logic is the module's own and real (``packaging`` requirements against the installed
distributions' metadata); older versions are simulated by distribution metadata placed first on
``sys.path``. Only Slicer's installers are stood in (``slicer.packaging.pip_ensure``,
``slicer.util.pip_install``, ``PyTorchUtils``, the confirmation dialog): they need the application.
A stand-in "installs" by removing the simulated old metadata, so the real installed version shows.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
import types
from pathlib import Path

import pytest
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "SaliencyTrust" / "Resources" / "requirements.txt"


def requirement_lines() -> list:
    lines = [line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines()]
    return [line for line in lines if line]


def test_requirements_file_is_pyprojects_dependencies_with_their_ranges():
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = requirement_lines()
    assert lines == declared, ("SaliencyTrust/Resources/requirements.txt must list pyproject.toml's dependencies:\n"
                               + "\n".join(declared))
    for line in lines:
        requirement = Requirement(line)
        operators = {spec.operator for spec in requirement.specifier}
        assert ">=" in operators and "==" not in operators, f"{line}: give a range with a lower bound, not a pin"
    names = {Requirement(line).name.lower() for line in lines}
    assert {"torch", "monai", "numba", "captum"} <= names


def test_logic_reads_the_same_requirements_slicer_packaging_would(st):
    logic = st.SaliencyTrustLogic()
    assert [str(r) for r in logic.loadRequirements()] == [str(Requirement(line)) for line in requirement_lines()]
    assert Path(st.REQUIREMENTS_FILE) == REQUIREMENTS


@pytest.fixture
def old_versions(tmp_path, monkeypatch):
    """Simulate installed versions: ``old_versions({"monai": "1.3.0"})`` makes them the ones found."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))

    def install(versions):
        for name, version in versions.items():
            info = site / f"{name}-{version}.dist-info"
            info.mkdir()
            (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        import importlib

        importlib.invalidate_caches()
        return site

    return install


def remove_simulated(site: Path, names) -> None:
    """What an install does to the simulated old version: it is gone, the real one is found."""
    for name in names:
        for info in site.glob(f"{Requirement(name).name}-*.dist-info"):
            shutil.rmtree(info)


def test_an_older_monai_is_reported_for_upgrade_not_accepted(st, old_versions):
    logic = st.SaliencyTrustLogic()
    assert logic.unsatisfiedRequirements(logic.loadRequirements()) == []  # this environment is complete
    old_versions({"monai": "1.3.0", "captum": "0.7.0"})
    unmet = logic.unsatisfiedRequirements(logic.loadRequirements())
    assert [(str(r), v) for r, v in unmet] == [("monai>=1.4", "1.3.0")]  # captum 0.7.0 is in range
    assert logic.missingRequirements() == ["monai>=1.4 (1.3.0 installed)"]
    # Absent, excluded by a marker, pre-release inside the range:
    absent = Requirement("saliency-trust-no-such-package>=1")
    elsewhere = Requirement('saliency-trust-no-such-package>=1; sys_platform == "no-such-platform"')
    assert logic.unsatisfiedRequirements([absent, elsewhere]) == [(absent, None)]
    old_versions({"nibabel": "5.1.0rc1"})
    assert logic.unsatisfiedRequirements([Requirement("nibabel>=5.0")]) == []


@pytest.fixture
def installers(monkeypatch):
    """Stand-ins of the Qt/application parts: the dialog, slicer.packaging, slicer.util.pip_install,
    PyTorchUtils. Each records its call; ``state`` says what the user answers and whether an
    install takes effect."""
    import slicer

    calls, state = [], {"answer": True, "effective": True, "site": None}

    def confirm(text, title=None, **kwargs):
        calls.append(("ask", text))
        return state["answer"]

    def pip_ensure(requirements, **kwargs):
        calls.append(("pip_ensure", list(requirements), kwargs))
        if state["effective"]:
            remove_simulated(state["site"], requirements)

    def pip_install(requirements, **kwargs):
        calls.append(("pip_install", requirements))
        if state["effective"]:
            remove_simulated(state["site"], [r.strip('"') for r in requirements.split()])

    class PyTorchUtilsLogic:
        def installTorch(self, askConfirmation=True, torchVersionRequirement=None, **kwargs):
            calls.append(("torch", torchVersionRequirement, askConfirmation))
            if state["effective"]:
                remove_simulated(state["site"], ["torch"])
            import torch

            return torch

    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", confirm, raising=False)
    monkeypatch.setattr(slicer.util, "pip_install", pip_install, raising=False)
    packaging_module = types.ModuleType("slicer.packaging")
    packaging_module.pip_ensure = pip_ensure
    monkeypatch.setitem(sys.modules, "slicer.packaging", packaging_module)
    monkeypatch.setitem(sys.modules, "PyTorchUtils", types.SimpleNamespace(PyTorchUtilsLogic=PyTorchUtilsLogic))
    return calls, state


def test_first_apply_asks_once_then_upgrades_through_the_right_installers(st, old_versions, installers):
    calls, state = installers
    state["site"] = old_versions({"monai": "1.3.0", "torch": "2.0.0", "highdicom": "0.22.0"})
    st.SaliencyTrustLogic().ensureDependencies(askConfirmation=True)
    assert [c[0] for c in calls] == ["ask", "torch", "pip_ensure"]
    question = calls[0][1]
    assert "monai>=1.4 (installed: 1.3.0, will be upgraded)" in question and "torch>=2.2" in question
    assert calls[1][1:] == (">=2.2", False)  # the file's range, asked once already
    requirements, options = calls[2][1], calls[2][2]
    assert requirements == ["monai>=1.4", "highdicom>=0.23"]  # with their ranges: pip upgrades
    assert options["prompt_install"] is False and options["requester"] == "Saliency Trust"

    calls.clear()
    st.SaliencyTrustLogic().ensureDependencies(askConfirmation=True)
    assert calls == []  # everything met now: no question, no install


def test_a_refusal_installs_nothing(st, old_versions, installers):
    calls, state = installers
    state["site"] = old_versions({"monai": "1.3.0"})
    state["answer"] = False
    with pytest.raises(st.DependencyError, match="declined.*monai>=1.4"):
        st.SaliencyTrustLogic().ensureDependencies(askConfirmation=True)
    assert [c[0] for c in calls] == ["ask"]


def test_a_package_still_too_old_after_installing_is_an_error_naming_it(st, old_versions, installers):
    calls, state = installers
    state["site"] = old_versions({"monai": "1.3.0"})
    state["effective"] = False  # e.g. the old version is still loaded, or pip failed silently
    with pytest.raises(st.DependencyError, match=r"still missing or too old.*monai>=1\.4 \(1\.3\.0\)"):
        st.SaliencyTrustLogic().ensureDependencies(askConfirmation=False)
    assert [c[0] for c in calls] == ["pip_ensure"]


def test_before_slicer_packaging_pip_install_gets_the_ranges(st, old_versions, installers, monkeypatch):
    calls, state = installers
    state["site"] = old_versions({"monai": "1.3.0", "scipy": "1.9.0"})
    monkeypatch.setitem(sys.modules, "slicer.packaging", None)  # Slicer < 5.12: no such module
    st.SaliencyTrustLogic().ensureDependencies(askConfirmation=False)
    assert calls == [("pip_install", '"monai>=1.4" "scipy>=1.10"')]


def test_without_the_pytorch_extension_the_user_is_told_to_install_it(st, old_versions, installers, monkeypatch):
    calls, state = installers
    state["site"] = old_versions({"torch": "2.0.0"})
    monkeypatch.setitem(sys.modules, "PyTorchUtils", None)
    with pytest.raises(st.DependencyError, match="PyTorch extension"):
        st.SaliencyTrustLogic().ensureDependencies(askConfirmation=False)
