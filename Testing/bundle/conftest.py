"""Fixtures of the bundle tests: the bundle folder, a tiny synthetic cohort on disk, and helpers
to run a bundle config the model-zoo way (ConfigWorkflow) or under torchrun."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUNDLE = REPO / "MonaiBundle"
CONFIGS = BUNDLE / "configs"
LOGGING = str(CONFIGS / "logging.conf")
META = str(CONFIGS / "metadata.json")
#: Network input edge used by the tests: any size is legal for the bundle's networks, 64 keeps
#: every workflow to seconds on the 2-core CI machine (the shipped models use 224).
SMALL = [64, 64]


@pytest.fixture(scope="session")
def bundle_root() -> Path:
    return BUNDLE


@pytest.fixture(scope="session")
def tiny_cohort(tmp_path_factory) -> Path:
    """``saliency-trust synth`` layout, 10 cases (split 6 / 2 / 2, each half positive)."""
    from SaliencyTrustLib.io.synth import write_synthetic_cohort

    out = tmp_path_factory.mktemp("cohort")
    write_synthetic_cohort(out, n=10, seed=5, kind="cxr")
    return out


def config_list(*names: str) -> list:
    return [str(CONFIGS / name) for name in names]


def run_workflow(config_files, workflow_type: str, check: bool = True, **override):
    """Initialize, check properties (model-zoo style), run and finalize a bundle config."""
    from monai.bundle import ConfigWorkflow

    override.setdefault("bundle_root", str(BUNDLE))
    workflow = ConfigWorkflow(config_file=config_files, meta_file=META, logging_file=LOGGING,
                              workflow_type=workflow_type, **override)
    workflow.initialize()
    if check:
        missing = workflow.check_properties()
        assert not missing, f"check_properties failed: {missing}"
    workflow.run()
    workflow.finalize()
    return workflow


def torchrun(config_files, override: dict, tmp_path: Path, nproc: int = 2) -> subprocess.CompletedProcess:
    """Export the overridden config (model-zoo ci/unit_tests/utils.py pattern) and run it with
    ``torchrun --nproc_per_node=nproc -m monai.bundle run`` on CPU (gloo)."""
    from monai.bundle import ConfigParser

    parser = ConfigParser()
    parser.read_config(config_files)
    parser.update(pairs={"bundle_root": str(BUNDLE), **override})
    exported = tmp_path / f"override_{nproc}.json"
    ConfigParser.export_config_file(parser.config, str(exported), indent=2)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nnodes=1",
           f"--nproc_per_node={nproc}", "-m", "monai.bundle", "run", "--config_file", str(exported),
           "--logging_file", LOGGING, "--meta_file", META]
    result = subprocess.run(cmd, env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def read_json(path) -> dict:
    return json.loads(Path(path).read_text())


@pytest.fixture(scope="session")
def bundle_tools():
    """The helpers above, for test modules (conftest is not importable under importlib mode)."""
    class Tools:
        configs = staticmethod(config_list)
        run = staticmethod(run_workflow)
        torchrun = staticmethod(torchrun)
        read_json = staticmethod(read_json)
        small = SMALL
        meta = META
        logging = LOGGING

    return Tools
