"""The MONAI model zoo's checks of a bundle, reproduced offline on ``MonaiBundle/``.

The zoo's CI (Project-MONAI/model-zoo ``ci/verify_bundle.py``, with ``ci/utils.py`` and
``ci/get_bundle_requirements.py``) does, for a changed bundle: fetch the files listed in
``large_files.yml``; require ``LICENSE``, ``configs/metadata.json``, ``models/model.pt`` and an
inference config; require the version in the changelog; validate the metadata against the schema
it names; build ``network_def`` from the inference config and check its output against
``network_data_format`` (``verify_net_in_out``); export ``models/model.pt`` to TorchScript with
``ckpt_export``'s default arguments and load the bundle's own ``models/model.ts``; and before all
that ``pip install`` ``name==version`` for every package the metadata names. Each test below is one
of these steps, called the way the zoo calls it (monai's ``verify_metadata``, ``verify_net_in_out``,
``ckpt_export``, ``download_large_files``), plus what makes our bundle pass them: ``model.pt`` a
plain state dict holding the trained tensors, ``model.ts`` exported from it, and a
``saliency-trust`` package that builds as a wheel. docs/bundle-zoo.md lists the commands.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch

from monai.bundle import ConfigParser, ckpt_export, download_large_files, verify_metadata, verify_net_in_out

from SaliencyTrustLib.model_spec import ModelSpec, load_model
from SaliencyTrustLib.networks import ARCH_KEY, build_classifier, finalize_checkpoint

#: sha256 over (key, bytes) of every tensor of models/model.pt, as the bundle's training wrote them
#: (densenet_small, seed 0). Re-saving the file as a plain state dict for the zoo kept them; a
#: deliberate retraining changes it (update it with large_files.yml and the README's numbers).
TRAINED_TENSORS_SHA256 = "ddbd4a6926162bc4892bbc5b8b545a10ee56d271a3e07a3ddd9d42064ec09eef"

#: The weight files the zoo fetches through large_files.yml, and what each one holds.
WEIGHT_FILES = ("models/model.pt", "models/model.ts", "models/model_replicate.pt", "models/model_second_arch.pt",
                "models/model_label_randomized.pt", "models/localizer.pt", "models/localizer_replicate.pt")


def _inference_config(bundle: Path) -> Path:
    found = [bundle / "configs" / f"inference.{ext}" for ext in ("json", "yaml", "yml")
             if (bundle / "configs" / f"inference.{ext}").is_file()]
    assert found, "the zoo needs an inference config (configs/inference.json, .yaml or .yml)"
    return found[-1]


def _metadata(bundle: Path) -> dict:
    return json.loads((bundle / "configs" / "metadata.json").read_text())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _tensors_sha256(state) -> str:
    digest = hashlib.sha256()
    for key, tensor in state.items():
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _large_files(bundle: Path) -> list:
    parser = ConfigParser()
    parser.read_config(str(bundle / "large_files.yml"))
    return parser.get()["large_files"]


def _zoo_export(bundle: Path, target: Path, ckpt_file: Path = None) -> None:
    """``ckpt_export`` as verify_bundle.py calls it: default ``key_in_ckpt`` (the file must be the
    plain state dict), the bundle's metadata and inference config."""
    ckpt_export(net_id="network_def", filepath=str(target),
                ckpt_file=str(ckpt_file or bundle / "models" / "model.pt"),
                meta_file=str(bundle / "configs" / "metadata.json"),
                config_file=str(_inference_config(bundle)), bundle_root=str(bundle))


# --- directory structure and large files ------------------------------------------------------------

def test_bundle_holds_the_files_the_zoo_requires(bundle_root):
    for necessary in ("LICENSE", "configs/metadata.json"):           # the zoo's necessary files
        assert (bundle_root / necessary).is_file(), necessary
    assert (bundle_root / "models" / "model.pt").is_file()            # preferred files
    _inference_config(bundle_root)
    assert (bundle_root / "models" / "model.ts").is_file()            # checked by verify_torchscript when present
    assert (bundle_root / "large_files.yml").is_file()
    assert (bundle_root / "docs" / "README.md").is_file()


def _assert_large_files_match(bundle_root: Path) -> None:
    entries = _large_files(bundle_root)
    assert sorted(entry["path"] for entry in entries) == sorted(WEIGHT_FILES)
    shipped = {f"models/{p.name}" for p in (bundle_root / "models").iterdir() if p.suffix in (".pt", ".ts")}
    assert shipped == set(WEIGHT_FILES), "every weight file in models/ is listed, and only those"
    for entry in entries:
        path = (bundle_root / entry["path"]).resolve()
        assert path.is_relative_to(bundle_root.resolve()) and path.is_file(), entry["path"]
        assert entry["hash_type"] == "sha256"
        assert entry["hash_val"] == _sha256(path), (
            f"{entry['path']} changed: update its hash_val in large_files.yml (sha256sum {entry['path']})")
        assert entry["url"].startswith("https://") and entry["url"].endswith("/" + path.name), entry["url"]


def test_large_files_list_every_weight_file_with_its_sha256(bundle_root):
    _assert_large_files_match(bundle_root)


def test_the_zoo_fetch_of_large_files_finds_every_file_present_and_downloads_nothing(bundle_root):
    # every listed file is present with its hash, so download_url only checks the hash and returns:
    # the zoo's first step passes offline (and never reaches the network from this test)
    _assert_large_files_match(bundle_root)
    download_large_files(bundle_path=str(bundle_root))


def test_a_weight_file_that_does_not_match_its_hash_is_refused(bundle_root, tmp_path):
    (tmp_path / "models").mkdir()
    shutil.copy(bundle_root / "models" / "model.pt", tmp_path / "models" / "model.pt")
    entry = next(e for e in _large_files(bundle_root) if e["path"] == "models/model.pt")
    entry["hash_val"] = "0" * 64
    (tmp_path / "large_files.yml").write_text(json.dumps({"large_files": [entry]}))   # JSON is YAML
    with pytest.raises(Exception, match="hash check of existing file failed"):    # monai's HashCheckError
        download_large_files(bundle_path=str(tmp_path))


# --- version, changelog, name and metadata format ------------------------------------------------------

def _version_key(version: str) -> tuple:
    return tuple(int(part) for part in re.findall(r"\d+", version)[:3])


def test_version_is_the_newest_in_the_changelog_and_the_bundle_has_a_name(bundle_root):
    meta = _metadata(bundle_root)
    assert meta["version"] in meta["changelog"]
    assert _version_key(meta["version"]) == max(_version_key(v) for v in meta["changelog"])
    assert isinstance(meta.get("name"), str) and meta["name"].strip()


def test_metadata_format_verifies(bundle_root):
    # the zoo validates against the schema file the metadata names, downloaded to eval/schema.json;
    # offline we use the local copy written from the specification (stricter: it also requires name)
    assert _metadata(bundle_root)["schema"].startswith("https://")
    verify_metadata(meta_file=str(bundle_root / "configs" / "metadata.json"),
                    filepath=str(bundle_root / "schema" / "meta_schema.json"))


# --- data shape and TorchScript ----------------------------------------------------------------------

def test_data_shape_verifies_with_the_zoo_arguments(bundle_root):
    # no network_name override and no device: the inference config's own network, on CUDA when present
    verify_net_in_out(net_id="network_def", meta_file=str(bundle_root / "configs" / "metadata.json"),
                      config_file=str(_inference_config(bundle_root)), bundle_root=str(bundle_root))


def test_ckpt_export_with_default_arguments_gives_the_bundle_logits_and_model_ts_loads(bundle_root, tmp_path):
    exported = tmp_path / "verify_model.ts"        # the zoo writes models/verify_model.ts; not in the repo
    _zoo_export(bundle_root, exported)
    shipped = torch.jit.load(str(bundle_root / "models" / "model.ts"), map_location="cpu")
    fresh = torch.jit.load(str(exported), map_location="cpu")
    model = load_model(ModelSpec(path=str(bundle_root)))          # network_def + model.pt, as the study loads it
    images = torch.rand(3, 1, 224, 224, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model(images)
        torch.testing.assert_close(fresh(images), logits, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(shipped(images), logits, rtol=1e-5, atol=1e-6)


def test_shipped_model_ts_was_exported_from_this_bundle_config(bundle_root):
    from monai.data import load_net_with_metadata

    _, meta, extra = load_net_with_metadata(str(bundle_root / "models" / "model.ts"), map_location="cpu",
                                            more_extra_files=("inference.json",))
    inference = ConfigParser.load_config_file(str(_inference_config(bundle_root)))
    embedded = json.loads(extra["inference.json"])
    for key in ("network_def", "network_name", "spatial_dims"):
        assert embedded[key] == inference[key], f"models/model.ts is stale ({key}): re-export it (docs/bundle-zoo.md)"
    assert meta["network_data_format"] == _metadata(bundle_root)["network_data_format"]


def test_a_checkpoint_wrapped_with_its_network_name_fails_the_zoo_export(bundle_root, tmp_path):
    """Why model.pt must be the plain state dict: the zoo's export loads the file itself into the
    network (``key_in_ckpt=""``), so a ``{"model": ..., "network_name": ...}`` file is refused."""
    wrapped = tmp_path / "model.pt"
    state = torch.load(bundle_root / "models" / "model.pt", map_location="cpu", weights_only=True)
    torch.save({"model": state, ARCH_KEY: "densenet_small"}, wrapped)
    with pytest.raises(RuntimeError, match="Unexpected key"):
        _zoo_export(bundle_root, tmp_path / "model.ts", ckpt_file=wrapped)


# --- what makes the bundle pass: the weight files' format --------------------------------------------

def test_model_pt_is_a_plain_state_dict_of_the_inference_network_with_the_trained_tensors(bundle_root):
    state = torch.load(bundle_root / "models" / "model.pt", map_location="cpu", weights_only=True)
    assert all(isinstance(value, torch.Tensor) for value in state.values())
    parser = ConfigParser()
    parser.read_config(str(_inference_config(bundle_root)))
    network = parser.get_parsed_content("network_def")
    assert list(state) == list(network.state_dict())
    assert _tensors_sha256(state) == TRAINED_TENSORS_SHA256, "the trained weights of model.pt changed"


@pytest.mark.parametrize("file_name, network_name", [("model_replicate.pt", "densenet_small"),
                                                     ("model_second_arch.pt", "resnet_small"),
                                                     ("model_label_randomized.pt", "densenet_small")])
def test_the_study_s_other_models_keep_their_network_name(bundle_root, file_name, network_name):
    """The replicate, second-architecture and label-randomized files are not the zoo's ``model.pt``
    and are loaded without a config (``StudyModels.from_bundle``): they keep
    ``{"model": ..., "network_name": ...}``."""
    path = bundle_root / "models" / file_name
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    assert checkpoint[ARCH_KEY] == network_name
    model = load_model(ModelSpec(path=str(path)))                   # no name given: the file names it
    assert type(model).__name__ == type(build_classifier(network_name)).__name__


@pytest.mark.parametrize("model_name, named", [("model.pt", False), ("model_replicate.pt", True),
                                               ("model_second_arch.pt", True), ("model_label_randomized.pt", True)])
def test_training_finalize_writes_model_pt_plain_and_the_other_files_with_their_name(
        bundle_root, tmp_path, model_name, named):
    parser = ConfigParser()
    parser.read_config(str(bundle_root / "configs" / "train.json"))
    parser["model_name"] = model_name
    record = parser.get_parsed_content("record_network_name")
    assert record is named
    for config in ("train.json", "multi_gpu_train.json"):
        finalize = " ".join(ConfigParser.load_config_file(str(bundle_root / "configs" / config))["finalize"])
        assert "record_name=@record_network_name" in finalize, config
    network = build_classifier("densenet_small")
    path = tmp_path / model_name
    torch.save(network.state_dict(), path)                  # what CheckpointSaver leaves before finalize
    finalize_checkpoint(path, network, "densenet_small", record_name=record)
    saved = torch.load(path, map_location="cpu", weights_only=True)
    assert (ARCH_KEY in saved) is named
    if not named:
        assert all(isinstance(value, torch.Tensor) for value in saved.values())


# --- dependencies: what the zoo installs, and the package it names ------------------------------------

def _zoo_requirements(meta: dict) -> list:
    """The ``name==version`` lines ci/get_bundle_requirements.py writes for a bundle."""
    lines = [f"monai=={meta['monai_version']}", f"torch=={meta['pytorch_version']}", f"numpy=={meta['numpy_version']}"]
    for key in ("optional_packages_version", "required_packages_version"):
        lines += [f"{name}=={version}" for name, version in meta.get(key, {}).items()]
    return lines


def _project() -> dict:
    import tomllib

    return tomllib.loads((Path(__file__).resolve().parents[2] / "pyproject.toml").read_text())["project"]


def test_the_bundle_names_the_saliency_trust_package_at_its_version(bundle_root):
    from packaging.requirements import Requirement

    import SaliencyTrustLib

    requirements = {Requirement(line).name: line for line in _zoo_requirements(_metadata(bundle_root))}
    project = _project()
    assert requirements[project["name"]] == f"{project['name']}=={project['version']}"
    assert SaliencyTrustLib.__version__ == project["version"]


def test_every_package_the_configs_import_is_named_in_the_metadata(bundle_root):
    meta = _metadata(bundle_root)
    named = {n.lower() for n in ("monai", "torch", "numpy", *meta.get("required_packages_version", {}),
                                 *meta.get("optional_packages_version", {}))}
    distributions = importlib.metadata.packages_distributions()
    distributions.setdefault("SaliencyTrustLib", [_project()["name"]])      # run from the source tree
    imported = set()
    for config in (bundle_root / "configs").glob("*.json"):
        for item in ConfigParser.load_config_file(str(config)).get("imports", []):
            match = re.match(r"\$\s*(?:import|from)\s+([A-Za-z_][A-Za-z0-9_]*)", item)
            if match:
                imported.add(match.group(1))
    for module in sorted(imported - set(sys.stdlib_module_names)):
        owners = {name.lower() for name in distributions.get(module, [])}
        assert owners & named, f"configs import {module!r} (from {sorted(owners)}), which metadata.json does not name"


def test_the_package_builds_as_a_wheel_that_pip_installs_and_imports(tmp_path):
    """The bundle's ``saliency-trust`` requirement is this repository's package: it builds as a
    wheel (``pip wheel . --no-deps``), ``pip install`` takes it, and the installed copy imports with
    its console script."""
    repo = Path(__file__).resolve().parents[2]
    source = tmp_path / "source"                    # built from a copy: no build/ or egg-info in the repo
    shutil.copytree(repo / "SaliencyTrust" / "SaliencyTrustLib", source / "SaliencyTrust" / "SaliencyTrustLib",
                    ignore=shutil.ignore_patterns("__pycache__"))
    for name in ["pyproject.toml", "README.md", *(p.name for p in repo.glob("LICENSE*"))]:
        shutil.copy(repo / name, source / name)
    try:                                            # offline when the venv already has a new setuptools
        isolation = [] if _version_key(importlib.metadata.version("setuptools")) < (77,) else ["--no-build-isolation"]
    except importlib.metadata.PackageNotFoundError:
        isolation = []
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", *isolation, "-q",
                    "-w", str(tmp_path / "dist")], check=True, env=env, timeout=300)
    project = _project()
    wheel = tmp_path / "dist" / f"saliency_trust-{project['version']}-py3-none-any.whl"
    assert wheel.is_file(), sorted(p.name for p in (tmp_path / "dist").iterdir())
    modules = {p.relative_to(repo / "SaliencyTrust").as_posix()
               for p in (repo / "SaliencyTrust" / "SaliencyTrustLib").rglob("*.py")}
    assert modules <= set(zipfile.ZipFile(wheel).namelist())
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, env=env, timeout=300)
    assert (target / "bin" / "saliency-trust").is_file()
    probe = ("import SaliencyTrustLib, SaliencyTrustLib.networks, SaliencyTrustLib.cohort; "
             "print(SaliencyTrustLib.__file__, SaliencyTrustLib.__version__)")
    clean = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", probe], env={**clean, "PYTHONPATH": str(target)}, cwd=tmp_path,
                            capture_output=True, text=True, timeout=300, check=True)
    where, version = result.stdout.split()[-2:]
    assert Path(where).is_relative_to(target) and version == project["version"]
