"""inference.json: predictions plus saliency maps written as NIfTI on the input grid and as DICOM
Parametric Maps over the DICOM input (one run, DICOM series as input)."""

from __future__ import annotations

import csv

import nibabel
import numpy as np
import pydicom
import SimpleITK


def test_inference_writes_predictions_and_maps_aligned_with_the_dicom_input(tiny_cohort, tmp_path, bundle_tools):
    out = tmp_path / "inference"
    bundle_tools.run(
        bundle_tools.configs("inference.json"), "infer",
        dataset_dir=str(tiny_cohort), output_dir=str(out), image_key="dicom",
        saliency_methods={"gradcam": {"_target_": "SaliencyTrustLib.saliency.SaliencyMethod", "method": "gradcam"}},
    )
    items = bundle_tools.read_json(tiny_cohort / "datalist.json")["test"]
    rows = list(csv.reader(open(out / "predictions.csv")))
    assert len(rows) == len(items) == 2
    for item in items:
        case = item["case_id"]
        # NIfTI map on the grid of the DICOM input as ITK reads it (ITK takes ImagerPixelSpacing for a
        # CR, so the spacing is the detector's), affine LPS -> RAS; values in [0, 1]
        dicom_file = next((tiny_cohort / item["dicom"]).iterdir())
        source = SimpleITK.ReadImage(str(dicom_file))
        expected = np.eye(4)
        expected[:3, :3] = np.diag([-1, -1, 1]) @ np.asarray(source.GetDirection()).reshape(3, 3) @ np.diag(source.GetSpacing())
        expected[:3, 3] = np.diag([-1, -1, 1]) @ np.asarray(source.GetOrigin())
        saliency = nibabel.load(str(out / case / f"{case}_saliency_gradcam.nii.gz"))
        assert saliency.shape[:2] == source.GetSize()[:2] == (224, 224)
        np.testing.assert_allclose(saliency.affine[:2, :2], expected[:2, :2], atol=1e-4)
        np.testing.assert_allclose(saliency.affine[:2, 3], expected[:2, 3], atol=1e-4)
        values = np.asarray(saliency.dataobj)
        assert values.min() >= -1e-4 and values.max() <= 1 + 1e-4 and values.max() > 0.5
        # DICOM Parametric Map over the source series
        pm = pydicom.dcmread(out / case / f"{case}_gradcam_pm.dcm")
        assert pm.Modality == "OT" or pm.SOPClassUID == "1.2.840.10008.5.1.4.1.1.30"
        assert (pm.Rows, pm.Columns) == (224, 224)
        source_dicom = pydicom.dcmread(next((tiny_cohort / item["dicom"]).iterdir()))
        assert pm.StudyInstanceUID == source_dicom.StudyInstanceUID
        # GradCAM of the shipped model, back on the input grid, is brighter inside the true lesion
        # (catches a transposed or flipped inversion); the NIfTI mask has the DICOM's pixel grid
        if item["label"] == 1:
            mask = np.asarray(nibabel.load(str(tiny_cohort / item["mask"])).dataobj) > 0
            values = values.reshape(mask.shape)                # nibabel order (I, J)
            assert values[mask].mean() > 1.5 * values[~mask].mean()
            np.testing.assert_allclose(pm.pixel_array.astype(np.float32) * float(
                pm.SharedFunctionalGroupsSequence[0].RealWorldValueMappingSequence[0].RealWorldValueSlope)
                if pm.pixel_array.dtype.kind in "iu" else pm.pixel_array,
                np.clip(values, 0, 1).T, atol=1e-3)             # nibabel (I, J) vs DICOM (rows, columns)

