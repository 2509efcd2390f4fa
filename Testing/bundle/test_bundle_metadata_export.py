"""The bundle's metadata against the local schema (offline verify_metadata) and the network's input /
output against the metadata (verify_net_in_out); the TorchScript export is in test_bundle_zoo_checks.py."""

from __future__ import annotations

import json

import pytest

from monai.bundle import verify_metadata, verify_net_in_out


def test_metadata_verifies_offline_against_the_local_schema(bundle_root):
    # the schema file exists, so verify_metadata validates without downloading anything
    verify_metadata(meta_file=str(bundle_root / "configs" / "metadata.json"),
                    filepath=str(bundle_root / "schema" / "meta_schema.json"))


def test_metadata_versions_are_the_pinned_ones(bundle_root):
    """The versions the bundle declares are those the tests ran with (constraints, Makefile)."""
    repo = bundle_root.parent
    pins = {}
    for line in (repo / "requirements" / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    meta = json.loads((bundle_root / "configs" / "metadata.json").read_text())
    assert meta["monai_version"] == pins["monai"] and meta["numpy_version"] == pins["numpy"]
    assert f'torch=={meta["pytorch_version"]}' in (repo / "Makefile").read_text()
    packages = meta["required_packages_version"]
    assert "numba" in packages                              # the SSIM kernel of trust.json
    checked = {name: version for name, version in packages.items()
               if name in pins or f"{name}-io" in pins}
    assert len(checked) >= len(packages) - 1                # all but saliency-trust itself
    for name, version in checked.items():
        assert version == pins.get(name, pins.get(f"{name}-io")), name


@pytest.mark.parametrize("broken", ["drop network_data_format", "drop channel_def", "bad version"])
def test_local_schema_is_strict_on_required_fields(bundle_root, tmp_path, broken):
    meta = json.loads((bundle_root / "configs" / "metadata.json").read_text())
    if broken == "drop network_data_format":
        del meta["network_data_format"]
    elif broken == "drop channel_def":
        del meta["network_data_format"]["inputs"]["image"]["channel_def"]
    else:
        meta["version"] = "first"
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(meta))
    with pytest.raises(ValueError):
        verify_metadata(meta_file=str(path), filepath=str(bundle_root / "schema" / "meta_schema.json"))


@pytest.mark.parametrize("network_name", ["densenet_small", "resnet_small"])
def test_network_input_and_output_match_the_metadata(bundle_root, network_name):
    verify_net_in_out(net_id="network_def", meta_file=str(bundle_root / "configs" / "metadata.json"),
                      config_file=str(bundle_root / "configs" / "inference.json"), device="cpu",
                      network_name=network_name)


# ckpt_export (TorchScript) with the model zoo's default arguments: test_bundle_zoo_checks.py
