"""Data in and out: DICOM / NIfTI / NRRD readers, ground truth, the synthetic cohort, writers, DICOMweb.

Every reader returns :class:`SaliencyTrustLib.image.ImageVolume` (array ``(K, J, I)``, LPS geometry)
or a bool ``(K, J, I)`` mask on a reference volume's grid; bad input raises
:class:`SaliencyTrustLib.io.errors.InputError` naming the file and the fix.
"""

from .errors import InputError, InputWarning
from .volumes import read_volume, save_volume, sitk_to_volume, volume_to_sitk
from .dicom_read import ImageReader, list_series, read_dataset, read_dicom, read_image, read_source_datasets
from .ground_truth import (GroundTruthReader, boxes_to_mask, read_ground_truth, read_rsna_boxes,
                           read_siim_rle, resample_to_reference, rle_decode, rle_encode, rsna_study_corners,
                           siim_mask)
from .datalist import CaseError, CohortCase, CohortReader, iter_cohort, load_datalist, prepare_cohort
from .synth import split_case_ids, write_synthetic_cohort
from .nifti_write import NiftiWriter, write_nifti
from .dicom_write import (ParametricMapWriter, ScorecardSRWriter, SegWriter, write_parametric_map,
                          write_scorecard_files, write_scorecard_sr, write_seg)
from .dicomweb import DicomWebError, DicomWebStore
