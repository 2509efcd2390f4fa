"""The one study pipeline: the trust criteria over one image or a whole test set, resumable and
distributed. Every front end (CLI ``evaluate`` / ``saliency`` / ``demo``, the bundle's ``trust.json``,
the Slicer module, the API) calls it.

* :func:`evaluate_cohort` - plan, compute (this rank's share), record, assemble (``runner``);
  :func:`study_steps` the same as a generator of progress steps (cancellable).
* :func:`load_cohort` - a datalist JSON/CSV, a folder of DICOM studies or a DICOMweb URL (``sources``).
* :class:`EvaluationSettings`, :class:`StudyModels` - what to compute, with which models (``settings``).
* The results store (``store``): ``run.json`` + one SQLite database per rank + map files; a
  configuration fingerprint (``fingerprint``) refuses to mix configurations.
* Units and deterministic sharding (``units``); the torchrun process group (``distributed``).
* ``saliency-trust evaluate`` (``cli_evaluate``) and ``saliency-trust demo`` (``cli_demo``).
"""

from .fingerprint import ConfigurationChangedError, config_fingerprint
from .settings import CRITERIA, PAPER_METHODS, EvaluationSettings, StudyModels
from .sources import Cohort, StudyRef, load_cohort
from .units import StudyGroup, Unit, make_groups, shard


def evaluate_cohort(*args, **kwargs):
    """See :func:`SaliencyTrustLib.cohort.runner.evaluate_cohort` (imported lazily: it pulls torch)."""
    from .runner import evaluate_cohort as _evaluate

    return _evaluate(*args, **kwargs)


def study_steps(*args, **kwargs):
    """See :func:`SaliencyTrustLib.cohort.runner.study_steps` (imported lazily: it pulls torch)."""
    from .runner import study_steps as _steps

    return _steps(*args, **kwargs)


__all__ = ["CRITERIA", "PAPER_METHODS", "Cohort", "ConfigurationChangedError", "EvaluationSettings", "StudyModels",
           "StudyGroup", "StudyRef", "Unit", "config_fingerprint", "evaluate_cohort", "load_cohort", "make_groups",
           "shard", "study_steps"]
