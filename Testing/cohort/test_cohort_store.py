"""The results store, the configuration fingerprint and the sharding, without any model."""

from __future__ import annotations

import numpy as np
import pytest

from SaliencyTrustLib.cohort.fingerprint import ConfigurationChangedError, config_fingerprint
from SaliencyTrustLib.cohort.store import (RankStore, UnitRecord, collect_records, done_unit_keys, load_map,
                                           prepare_run_folder, read_failures, write_array_atomic)
from SaliencyTrustLib.cohort.units import Unit, derive_seed, make_groups, shard


def test_fingerprint_ignores_key_order_and_changes_with_any_value():
    base = {"settings": {"methods": ["gradient"], "seed": 0}, "models": {"original": {"sha256": "ab"}}}
    same = {"models": {"original": {"sha256": "ab"}}, "settings": {"seed": 0, "methods": ("gradient",)}}
    assert config_fingerprint(base) == config_fingerprint(same)
    changed = {"settings": {"methods": ["gradient"], "seed": 1}, "models": {"original": {"sha256": "ab"}}}
    assert config_fingerprint(base) != config_fingerprint(changed)


def test_changed_configuration_is_refused_with_the_changed_keys_then_restart_clears(tmp_path):
    config = {"settings": {"seed": 0, "methods": ["gradient"]}}
    fingerprint = prepare_run_folder(tmp_path, config)
    assert prepare_run_folder(tmp_path, config) == fingerprint  # same configuration: resume
    with RankStore(tmp_path, 0, fingerprint) as store:
        unit = Unit("s1", "gradient", "original")
        store.commit_unit(UnitRecord(unit, store.write_map(unit, np.ones((4, 4))), {"auprc": 0.5}))
    other = {"settings": {"seed": 1, "methods": ["gradient"]}}
    with pytest.raises(ConfigurationChangedError, match=r"settings\.seed.*--restart"):
        prepare_run_folder(tmp_path, other)
    assert done_unit_keys(tmp_path) == {"s1|gradient|original"}   # nothing was touched
    (tmp_path / "native" / "s1").mkdir(parents=True)                 # what the old run wrote besides
    (tmp_path / "native" / "s1" / "gradient.nii.gz").write_bytes(b"old map")
    (tmp_path / "results.json").write_text("{}")
    (tmp_path / "notes.txt").write_text("the user's own file")
    prepare_run_folder(tmp_path, other, restart=True)
    assert done_unit_keys(tmp_path) == set() and not (tmp_path / "maps").exists()
    assert not (tmp_path / "native").exists() and not (tmp_path / "results.json").exists()
    assert (tmp_path / "notes.txt").read_text() == "the user's own file"


def test_a_database_of_another_configuration_is_refused(tmp_path):
    fingerprint = prepare_run_folder(tmp_path, {"a": 1})
    RankStore(tmp_path, 0, fingerprint).close()
    with pytest.raises(ConfigurationChangedError, match="units-rank0.sqlite"):
        RankStore(tmp_path, 0, "0" * 64)


def test_units_of_every_rank_are_collected_once_with_their_maps_and_failures(tmp_path):
    fingerprint = prepare_run_folder(tmp_path, {"a": 1})
    stores = [RankStore(tmp_path, rank, fingerprint) for rank in (0, 1)]
    for rank, study in ((0, "s0"), (1, "s1"), (0, "s2")):
        unit = Unit(study, "gradcam", "cascade/01_block")
        saliency_map = np.full((3, 5), rank + 0.25, np.float32)
        stores[rank].commit_unit(UnitRecord(unit, stores[rank].write_map(unit, saliency_map),
                                            {"ssim_vs_original": float("nan")}, 0.1, rank))
    # a second insert of a committed unit is a no-op, not a second row
    unit = Unit("s0", "gradcam", "cascade/01_block")
    stores[0].commit_unit(UnitRecord(unit, "elsewhere.npy", {"ssim_vs_original": 0.9}))
    stores[1].record_failure("s9", "read", "InputError: broken file")
    for store in stores:
        store.close()
    records = collect_records(tmp_path)
    assert sorted(records) == ["s0|gradcam|cascade/01_block", "s1|gradcam|cascade/01_block", "s2|gradcam|cascade/01_block"]
    first = records["s0|gradcam|cascade/01_block"]
    assert np.isnan(first.metrics["ssim_vs_original"]) and first.map_file.startswith("maps/gradcam/cascade_01_block")
    np.testing.assert_array_equal(load_map(tmp_path, records["s1|gradcam|cascade/01_block"].map_file),
                                  np.full((3, 5), 1.25, np.float32))
    assert read_failures(tmp_path)["s9"]["stage"] == "read"


def test_atomic_write_leaves_no_temporary_file_and_replaces_the_old_map(tmp_path):
    target = tmp_path / "maps" / "m.npy"
    write_array_atomic(target, np.zeros(3))
    write_array_atomic(target, np.arange(3.0))
    assert sorted(p.name for p in target.parent.iterdir()) == ["m.npy"]
    np.testing.assert_array_equal(np.load(target), np.arange(3.0))


def test_groups_are_fixed_and_sharding_gives_every_group_to_exactly_one_rank():
    ids = [f"study-{i:02d}" for i in range(11)][::-1]
    groups = make_groups(ids, 3)
    assert [len(g.study_ids) for g in groups] == [3, 3, 3, 2] and groups[0].study_ids[0] == "study-00"
    for world in (1, 2, 3, 5):
        shares = [shard(groups, rank, world) for rank in range(world)]
        flat = sorted(g.index for share in shares for g in share)
        assert flat == list(range(len(groups)))
    with pytest.raises(ValueError, match="repeated"):
        make_groups(["a", "b", "a"], 2)
    with pytest.raises(ValueError, match="rank"):
        shard(groups, 2, 2)


def test_derived_seeds_are_stable_and_distinct():
    assert derive_seed(0, 1, "gradient") == derive_seed(0, 1, "gradient")
    assert derive_seed(0, 1, "gradient") != derive_seed(0, 2, "gradient")
    assert 0 <= derive_seed("x") < 2 ** 63
