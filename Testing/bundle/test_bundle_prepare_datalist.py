"""MonaiBundle/scripts/prepare_datalist.py on an RSNA-layout download (the synthetic cohort's DICOM
folders and boxes.csv): the masks land on the images and the datalist passes the bundle's checks."""

from __future__ import annotations

import importlib.util

import nibabel
import numpy as np

from SaliencyTrustLib.transforms import bundle_datalist


def test_rsna_layout_becomes_a_checked_datalist_with_masks_on_the_boxes(tiny_cohort, tmp_path, bundle_root):
    spec = importlib.util.spec_from_file_location("prepare_datalist", bundle_root / "scripts" / "prepare_datalist.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    counts = module.prepare("rsna", tiny_cohort / "dicom", tiny_cohort / "boxes.csv", tmp_path / "rsna", seed=0)
    assert counts == {"training": 6, "validation": 2, "test": 2}
    items = bundle_datalist(tmp_path / "rsna" / "datalist.json", "training", require=("label",))
    positives = [i for i in items if i["label"] == 1]
    assert positives and all("mask" in i for i in positives) and all("mask" not in i for i in items if not i["label"])
    for item in positives:
        prepared = np.asarray(nibabel.load(item["mask"]).dataobj).reshape(224, 224)
        original = np.asarray(nibabel.load(str(tiny_cohort / "masks" / f"{item['case_id']}.nii.gz")).dataobj).reshape(224, 224)
        # the box covers the lesion mask (boxes are the masks' bounding boxes)
        assert prepared[original > 0].all() and prepared.sum() >= original.sum()
