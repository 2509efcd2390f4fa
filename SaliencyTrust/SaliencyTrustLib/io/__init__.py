"""Data in and out: DICOM / NIfTI / NRRD readers, ground truth, the synthetic cohort, writers, DICOMweb.

Every reader returns :class:`SaliencyTrustLib.image.ImageVolume` (array ``(K, J, I)``, LPS geometry)
or a bool ``(K, J, I)`` mask on a reference volume's grid; bad input raises
:class:`SaliencyTrustLib.io.errors.InputError` naming the file and the fix.
"""

from .._lazy import lazy_exports

#: public name -> the submodule defining it (imported on first use).
_EXPORTS = {
    "InputError": ".errors", "InputWarning": ".errors",
    "read_volume": ".volumes", "save_volume": ".volumes", "sitk_to_volume": ".volumes",
    "volume_to_sitk": ".volumes",
    "ImageReader": ".dicom_read", "list_series": ".dicom_read", "read_dataset": ".dicom_read",
    "read_dicom": ".dicom_read", "read_image": ".dicom_read", "read_source_datasets": ".dicom_read",
    "GroundTruthReader": ".ground_truth", "boxes_to_mask": ".ground_truth",
    "read_ground_truth": ".ground_truth", "read_rsna_boxes": ".ground_truth",
    "read_siim_rle": ".ground_truth", "resample_to_reference": ".ground_truth",
    "rle_decode": ".ground_truth", "rle_encode": ".ground_truth",
    "rsna_study_corners": ".ground_truth", "siim_mask": ".ground_truth",
    "CaseError": ".datalist", "CohortCase": ".datalist", "CohortReader": ".datalist",
    "iter_cohort": ".datalist", "load_datalist": ".datalist", "prepare_cohort": ".datalist",
    "split_case_ids": ".synth", "write_synthetic_cohort": ".synth",
    "NiftiWriter": ".nifti_write", "write_nifti": ".nifti_write",
    "ParametricMapWriter": ".dicom_write", "ScorecardSRWriter": ".dicom_write",
    "SegWriter": ".dicom_write", "write_parametric_map": ".dicom_write",
    "write_scorecard_files": ".dicom_write", "write_scorecard_sr": ".dicom_write",
    "write_seg": ".dicom_write",
    "DicomWebError": ".dicomweb", "DicomWebStore": ".dicomweb",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
