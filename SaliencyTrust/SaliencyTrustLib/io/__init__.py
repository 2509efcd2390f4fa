"""Data in and out: DICOM / NIfTI / NRRD readers, ground truth, the synthetic cohort, writers, DICOMweb.

Every reader returns :class:`SaliencyTrustLib.image.ImageVolume` (array ``(K, J, I)``, LPS geometry)
or a bool ``(K, J, I)`` mask on a reference volume's grid; bad input raises
:class:`SaliencyTrustLib.io.errors.InputError` naming the file and the fix.
"""

from .errors import InputError
from .volumes import read_volume, save_volume, sitk_to_volume, volume_to_sitk
from .synth import split_case_ids, write_synthetic_cohort
