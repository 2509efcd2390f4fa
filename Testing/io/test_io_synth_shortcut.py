"""``saliency-trust synth --shortcut``: a burned-in marker that follows the label in training and
validation and is independent of it in the test split; its masks, determinism, the unchanged plain
cohort, and a small CNN that learns the marker instead of the lesion."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import nibabel
import numpy as np
import pydicom
import pytest
import torch

_TESTING = str(Path(__file__).resolve().parents[1])
if _TESTING not in sys.path:  # the suite runs with --import-mode=importlib
    sys.path.append(_TESTING)

from SaliencyTrustLib.cli import main as cli_main  # noqa: E402
from SaliencyTrustLib.io.synth import write_synthetic_cohort  # noqa: E402
from SaliencyTrustLib.synthetic import make_cases  # noqa: E402
from SaliencyTrustLib.synthetic_shortcut import (SHORTCUT_LESION_CONTRAST, ShortcutSettings,  # noqa: E402
                                                 assign_markers)
from support.shortcut_models import cohort_tensors, predict, train_tiny_classifier  # noqa: E402
from support.validate import dciodvfy  # noqa: E402

N, SEED, SIZE = 60, 2, 64
#: sha256 of a plain (no --shortcut) cohort, n=4, seed 3, 32 px: datalist.json, CR pixel data,
#: NIfTI image and mask arrays and affines, as written before --shortcut existed.
PLAIN_COHORT_SHA256 = "d75f7cc498eabceccecadf43514ce72fb634a734b6a39e576c61108513613b0f"


@pytest.fixture(scope="module")
def shortcut_cohort(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("shortcut") / "cohort"
    assert cli_main(["synth", "--out", str(out), "--n", str(N), "--seed", str(SEED), "--size", str(SIZE),
                     "--no-seg", "--shortcut"]) == 0
    return out


def _datalist(cohort: Path) -> dict:
    return json.loads((cohort / "datalist.json").read_text())


def _items(cohort: Path) -> list:
    datalist = _datalist(cohort)
    return [dict(item, part=part) for part in ("training", "validation", "test") for item in datalist[part]]


def _array(path: Path) -> np.ndarray:
    return np.asarray(nibabel.load(path).dataobj)


def test_datalist_items_name_their_marker_mask_and_record_the_settings(shortcut_cohort):
    datalist = _datalist(shortcut_cohort)
    assert datalist["synthesis"]["shortcut"] == ShortcutSettings().to_dict()
    assert datalist["synthesis"]["lesion_contrast"] == list(SHORTCUT_LESION_CONTRAST)
    for item in _items(shortcut_cohort):
        assert set(item) == {"image", "label", "mask", "dicom", "case_id", "shortcut", "marker", "part"}
        assert item["shortcut"] == f"markers/{item['case_id']}.nii.gz"
        assert item["marker"] in (0, 1)


def test_marker_is_present_exactly_when_the_label_is_positive_in_training_and_validation(shortcut_cohort):
    for item in _items(shortcut_cohort):
        if item["part"] != "test":
            assert item["marker"] == item["label"], item["case_id"]


def test_marker_is_independent_of_the_label_in_the_test_split(shortcut_cohort):
    test = _datalist(shortcut_cohort)["test"]
    for label in (0, 1):
        group = [item["marker"] for item in test if item["label"] == label]
        assert len(group) == 6 and sum(group) == 3          # half of each label carries it


def test_marker_masks_cover_exactly_the_burned_in_pixels_on_the_ground_truth_grid(shortcut_cohort):
    plain = {case.case_id: case for case in make_cases(N, SEED, "cxr", SIZE,
                                                       lesion_contrast=SHORTCUT_LESION_CONTRAST)}
    for item in _items(shortcut_cohort):
        marker_file = nibabel.load(shortcut_cohort / item["shortcut"])
        mask_file = nibabel.load(shortcut_cohort / item["mask"])
        assert marker_file.get_data_dtype() == np.uint8
        assert marker_file.shape == mask_file.shape
        np.testing.assert_array_equal(marker_file.affine, mask_file.affine)
        marker = np.asarray(marker_file.dataobj).squeeze().T.astype(bool)     # NIfTI (I, J) -> (J, I)
        assert set(np.unique(np.asarray(marker_file.dataobj))) <= {0, 1}
        assert marker.any() == bool(item["marker"])
        image = _array(shortcut_cohort / item["image"]).squeeze().T
        stored = pydicom.dcmread(shortcut_cohort / item["dicom"] / "CR0000.dcm")
        np.testing.assert_allclose(stored.pixel_array / 4095.0, image, atol=1e-6)   # burned into both
        assert stored.BurnedInAnnotation == ("YES" if item["marker"] else "NO")
        before = np.round(np.clip(plain[item["case_id"]].image, 0, 1) * 4095) / 4095
        changed = np.abs(image - before) > 1e-6
        assert not (changed & ~marker).any()                   # nothing outside the mask moved
        if item["marker"]:
            assert changed.sum() >= 0.8 * marker.sum()          # the glyph is painted over the background
            np.testing.assert_allclose(image[marker], before.max(), atol=1e-6)   # at the image's maximum
            assert not (marker & plain[item["case_id"]].mask).any()
            rows, cols = np.nonzero(marker)
            corner_distance = min(rows.min(), SIZE - 1 - rows.max()) + min(cols.min(), SIZE - 1 - cols.max())
            assert corner_distance <= 0.15 * SIZE                # near a corner


def test_a_marked_cr_image_is_still_valid_dicom(shortcut_cohort):
    case_id = next(item["case_id"] for item in _items(shortcut_cohort) if item["marker"])
    report = dciodvfy(shortcut_cohort / "dicom" / case_id / "CR0000.dcm")
    assert report.errors == [], report.output


def test_shortcut_cohort_is_deterministic_from_the_seed(shortcut_cohort, tmp_path):
    write_synthetic_cohort(tmp_path / "again", n=N, seed=SEED, size=SIZE, write_seg=False, shortcut=ShortcutSettings())
    assert (tmp_path / "again" / "datalist.json").read_text() == (shortcut_cohort / "datalist.json").read_text()
    for item in _items(shortcut_cohort)[::7]:
        for key in ("image", "shortcut"):
            np.testing.assert_array_equal(_array(tmp_path / "again" / item[key]), _array(shortcut_cohort / item[key]))
        a, b = (pydicom.dcmread(root / item["dicom"] / "CR0000.dcm") for root in (tmp_path / "again", shortcut_cohort))
        assert a.PixelData == b.PixelData and a.SOPInstanceUID == b.SOPInstanceUID


def test_the_cohort_without_shortcut_is_unchanged(tmp_path):
    write_synthetic_cohort(tmp_path, n=4, seed=3, size=32, write_seg=False)
    digest = hashlib.sha256((tmp_path / "datalist.json").read_bytes())
    for case in sorted(p.name for p in (tmp_path / "dicom").iterdir()):
        digest.update(pydicom.dcmread(tmp_path / "dicom" / case / "CR0000.dcm").PixelData)
        for sub in ("nifti", "masks"):
            image = nibabel.load(tmp_path / sub / f"{case}.nii.gz")
            digest.update(np.asarray(image.dataobj).tobytes())
            digest.update(image.affine.tobytes())
    assert digest.hexdigest() == PLAIN_COHORT_SHA256
    assert not (tmp_path / "markers").exists()
    assert "shortcut" not in _datalist(tmp_path)["synthesis"]


def test_correlation_sets_the_share_of_training_cases_whose_marker_agrees_with_the_label():
    ids = [f"c{i:03d}" for i in range(40)]
    labels = {case_id: i % 2 for i, case_id in enumerate(ids)}
    split = {"training": ids[:20], "validation": ids[20:32], "test": ids[32:]}
    markers = assign_markers(split, labels, seed=0, correlation=0.8)
    agree = [markers[c] == labels[c] for c in split["training"]]
    assert sum(agree) == 16                                   # round(0.8 * 10) per label
    assert assign_markers(split, labels, seed=0, correlation=0.8) == markers
    assert assign_markers(split, labels, seed=1, correlation=0.8) != markers
    with pytest.raises(ValueError, match="correlation"):
        ShortcutSettings(correlation=1.5)


def test_a_ct_shortcut_cohort_is_refused_with_a_clear_error(tmp_path, capsys):
    assert cli_main(["synth", "--out", str(tmp_path), "--n", "2", "--kind", "ct", "--shortcut"]) == 2
    assert "needs kind 'cxr'" in capsys.readouterr().err
    assert not (tmp_path / "dicom").exists()


def test_a_small_cnn_trained_on_the_shortcut_cohort_follows_the_marker(shortcut_cohort):
    model = train_tiny_classifier(shortcut_cohort, epochs=10, seed=0)
    accuracy, follows = {}, {}
    for split in ("validation", "test"):
        images, labels, items = cohort_tensors(shortcut_cohort, split)
        predicted = predict(model, images)
        markers = torch.tensor([item["marker"] for item in items])
        accuracy[split] = (predicted == labels).float().mean().item()
        follows[split] = (predicted == markers).float().mean().item()
    assert accuracy["validation"] >= 0.9
    assert accuracy["test"] <= accuracy["validation"] - 0.2
    assert follows["test"] >= 0.9


def test_the_tiny_classifier_is_deterministic_and_can_train_on_permuted_labels(shortcut_cohort):
    first = train_tiny_classifier(shortcut_cohort, size=32, epochs=1, seed=3, permute_labels=True)
    second = train_tiny_classifier(shortcut_cohort, size=32, epochs=1, seed=3, permute_labels=True)
    assert not first.training
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
    true = train_tiny_classifier(shortcut_cohort, size=32, epochs=1, seed=3)
    assert any(not torch.equal(a, b) for a, b in zip(first.state_dict().values(), true.state_dict().values()))
