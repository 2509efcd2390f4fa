"""SaliencyTrust core: can a classifier's saliency map be trusted to localize an abnormality?

Plain Python (no ``slicer``, ``qt``, ``ctk`` or ``vtk`` import anywhere in this package), used by
the CLI (``saliency-trust``), the MONAI bundle (``MonaiBundle/``) and the 3D Slicer module.

Public entry points (imported lazily so that ``import SaliencyTrustLib`` stays cheap):

* :func:`compute_saliency`, :func:`available_methods` - the saliency engine
  (``SaliencyTrustLib.saliency``).
* :mod:`SaliencyTrustLib.metrics` - AUPRC, SSIM and friends; :mod:`SaliencyTrustLib.criteria` - the
  four trust criteria and the scorecard.
* :mod:`SaliencyTrustLib.io` - DICOM / NIfTI / ground truth readers and writers, DICOMweb.
* :class:`SaliencyTrustLib.image.ImageVolume` - the in-memory image model (axis order ``(K, J, I)``,
  LPS geometry).
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    "compute_saliency": "SaliencyTrustLib.saliency",
    "available_methods": "SaliencyTrustLib.saliency",
    "SaliencyMethod": "SaliencyTrustLib.saliency",
    "ImageVolume": "SaliencyTrustLib.image",
    "build_classifier": "SaliencyTrustLib.networks",
    "load_classifier": "SaliencyTrustLib.networks",
    "auprc": "SaliencyTrustLib.metrics",
    "ssim": "SaliencyTrustLib.metrics",
    "Scorecard": "SaliencyTrustLib.criteria",
    "evaluate_cohort": "SaliencyTrustLib.cohort",
    "load_cohort": "SaliencyTrustLib.cohort",
    "write_report": "SaliencyTrustLib.report",
}

__all__ = ["__version__", *_LAZY]


__getattr__, _lazy_dir = lazy_exports(__name__, _LAZY)


def __dir__():
    return sorted({"__version__", *_lazy_dir()})
