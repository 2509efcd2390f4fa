"""``saliency-trust run-request REQUEST.json``: run one study request in its own process.

The 3D Slicer module runs its long work this way (as TotalSegmentator and MONAIAuto3DSeg do): it
writes the study's inputs and a request file with :func:`write_request`, starts
``python -m SaliencyTrustLib run-request REQUEST.json``, reads the progress lines this command
prints, and kills the process when the user presses Cancel. The request holds exactly what
:func:`SaliencyTrustLib.cohort.evaluate_cohort` takes - the cohort, the :class:`StudyModels`, the
:class:`EvaluationSettings`, the results folder and the device - so the child runs the same one
pipeline as every other front end, and writes the same results folder (``results.json``,
``scorecard.json``, native-grid maps); a request run again after a kill resumes it.

Request file (JSON, ``"format": "saliency-trust-request/1"``); relative paths are relative to the
request file:

* ``out``: the results folder; ``device``: ``"cpu"``, ``"cuda"`` or ``"auto"``; ``restart``:
  delete results of another configuration found in ``out`` instead of refusing them.
* ``studies`` / ``reference_studies``: ``{"study_id", "image", "ground_truth", "boxes", "label",
  "aliases", "shortcut"}`` (:class:`~SaliencyTrustLib.cohort.sources.StudyRef`; ``shortcut``: the
  known confounder's region, e.g. a burned-in marker, for the ``shortcut`` criterion); in-memory
  images and masks (ground truth, shortcut region) are written next to the request as NIfTI
  (:func:`SaliencyTrustLib.io.write_nifti`, each mask on the image's grid as 0/1).
* ``training_masks``, ``source``, ``dicomweb_url``: the rest of the
  :class:`~SaliencyTrustLib.cohort.sources.Cohort`.
* ``models``: ``{"original": ModelSpec, "replicate": ModelSpec | null, "second_arch": ...,
  "localizer": ..., "localizer_replicate": ..., "label_randomized": ...}`` (every field of
  ``StudyModels``) as
  :meth:`~SaliencyTrustLib.model_spec.ModelSpec.to_dict` (models given in memory cannot cross a
  process boundary: run them in process).
* ``settings``: :meth:`EvaluationSettings.to_dict`.

Output protocol (stdout, one line each, flushed; everything else on stdout/stderr is log):

* ``@saliency-trust progress {"done": N, "total": M, "message": "..."}`` per pipeline step;
* ``@saliency-trust finished {"results": "results.json"}`` then exit status 0;
* ``@saliency-trust error {"error": "one line", "type": "InputError"}`` then exit status 1 (bad
  input, model, request or configuration: no traceback) or 2 (anything else: the traceback is
  printed on stderr before the line).
"""

from __future__ import annotations

from dataclasses import fields

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

#: Version tag of the request file.
REQUEST_FORMAT = "saliency-trust-request/1"
#: Start of every protocol line (see the module docstring).
LINE_PREFIX = "@saliency-trust "
PROGRESS, FINISHED, ERROR = "progress", "finished", "error"
#: Folder of the written inputs, inside the request's folder.
INPUTS_DIR = "request-inputs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("request", help="the request JSON file (written by the Slicer module, "
                                        "SaliencyTrustLib.cohort.cli_request.write_request)")


def protocol_line(kind: str, payload: Dict[str, Any]) -> str:
    """One protocol line (no newline), e.g. ``@saliency-trust progress {"done": 1, ...}``."""
    return f"{LINE_PREFIX}{kind} {json.dumps(payload)}"


def parse_protocol_line(line: str) -> Optional[Tuple[str, Dict[str, Any]]]:
    """``(kind, payload)`` of a protocol line; None for a log line (anything else)."""
    if not line.startswith(LINE_PREFIX):
        return None
    kind, _, text = line[len(LINE_PREFIX):].strip().partition(" ")
    if kind not in (PROGRESS, FINISHED, ERROR):
        return None
    try:
        payload = json.loads(text) if text else {}
    except json.JSONDecodeError:
        return None
    return (kind, payload) if isinstance(payload, dict) else None


# ---------------------------------------------------------------- writing (parent process)

def _safe_id(study_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in study_id) or "study"


def _study_entry(study, folder: Path, base: Path) -> Dict[str, Any]:
    """A StudyRef as JSON, its in-memory image and masks (ground truth, shortcut region) written as
    NIfTI into ``folder``."""
    import numpy as np

    from ..image import ImageVolume
    from ..io import write_nifti

    entry: Dict[str, Any] = {"study_id": study.study_id, "label": study.label, "aliases": list(study.aliases),
                             "boxes": None if study.boxes is None else [list(b) for b in study.boxes]}
    image = study.image
    if isinstance(image, ImageVolume):
        path = write_nifti(image, folder / f"{_safe_id(study.study_id)}.image.nii.gz")
        entry["image"] = os.path.relpath(path, base)
    else:
        entry["image"] = str(image)
    for key, what in (("ground_truth", "ground truth"), ("shortcut", "shortcut region")):
        mask = getattr(study, key)
        if isinstance(mask, np.ndarray):
            if not isinstance(image, ImageVolume) or mask.size != int(np.prod(image.shape)):
                raise ValueError(f"{study.study_id}: an in-memory {what} needs an in-memory image of its "
                                 f"shape to be written (mask {mask.shape}).")
            written = write_nifti(image.with_array(mask.reshape(image.shape).astype(bool)),
                                  folder / f"{_safe_id(study.study_id)}.{key}.nii.gz")
            entry[key] = os.path.relpath(written, base)
        else:
            entry[key] = None if mask is None else str(mask)
    return entry


def _model_entry(model: Any, state: str) -> Optional[Dict[str, Any]]:
    from ..model_spec import ModelSpec

    if model is None:
        return None
    if not isinstance(model, ModelSpec):
        raise ValueError(f"the {state} model is a {type(model).__name__} in memory; it cannot be sent to "
                         "another process. Save it (weights + factory, TorchScript or a bundle) or run in process.")
    spec = model.to_dict()
    factory = spec.get("factory")
    if factory and ":" in factory:
        module, _, attribute = factory.rpartition(":")
        if module.endswith(".py") and Path(module).is_file():  # the child may start elsewhere
            spec["factory"] = f"{Path(module).resolve()}:{attribute}"
    return spec


def write_request(path, cohort, models, settings, out_dir, device: str = "auto", restart: bool = True) -> Path:
    """Write the request file ``path`` (and the in-memory inputs beside it, NIfTI) for
    :func:`run`: what :func:`SaliencyTrustLib.cohort.evaluate_cohort` would be called with.

    Args:
        path: the request JSON file to write; its folder is created.
        cohort: a :class:`~SaliencyTrustLib.cohort.sources.Cohort` (images may be in memory).
        models: :class:`~SaliencyTrustLib.cohort.settings.StudyModels` of ``ModelSpec`` objects.
        settings: :class:`~SaliencyTrustLib.cohort.settings.EvaluationSettings`.
        out_dir: the results folder.
        device: ``"auto"``, ``"cpu"`` or ``"cuda"``.
        restart: see :func:`evaluate_cohort`.

    Returns:
        ``path``.

    Raises:
        ValueError: a model given in memory (it cannot cross the process boundary).
    """
    path = Path(path)
    base = path.parent
    folder = base / INPUTS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    request = {
        "format": REQUEST_FORMAT,
        "out": str(Path(out_dir).resolve()),
        "device": device,
        "restart": bool(restart),
        "source": cohort.source,
        "dicomweb_url": cohort.dicomweb_url,
        "training_masks": [str(p) for p in cohort.training_masks],
        "studies": [_study_entry(s, folder, base) for s in cohort.studies],
        "reference_studies": [_study_entry(s, folder, base) for s in cohort.reference_studies],
        "models": {role.name: _model_entry(getattr(models, role.name), role.name) for role in fields(models)},
        "settings": settings.to_dict(),
    }
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(request, indent=1), encoding="utf-8")
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- reading and running (child process)

def read_request(path):
    """``(cohort, models, settings, out_dir, device, restart)`` of a request file.

    Raises:
        InputError: not a request file of this format, or a field that does not fit.
    """
    from ..io.errors import InputError
    from ..model_spec import ModelSpec
    from .settings import EvaluationSettings, StudyModels
    from .sources import Cohort, StudyRef

    path = Path(path)
    try:
        request = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(path, f"cannot read the request ({error}).", "pass the request file the Slicer module wrote.") from None
    if not isinstance(request, dict) or request.get("format") != REQUEST_FORMAT:
        raise InputError(path, f"not a {REQUEST_FORMAT} request.", "pass the request file the Slicer module wrote.")
    base = path.parent

    def resolve(value):
        if value in (None, "") or str(value).startswith("dicomweb:"):
            return value
        return str(Path(value) if Path(value).is_absolute() else base / value)

    def study(entry) -> StudyRef:
        boxes = entry.get("boxes")
        return StudyRef(str(entry["study_id"]), resolve(entry["image"]), resolve(entry.get("ground_truth")),
                        boxes=None if boxes is None else tuple(tuple(float(v) for v in b) for b in boxes),
                        label=entry.get("label"), aliases=tuple(entry.get("aliases") or ()),
                        shortcut=resolve(entry.get("shortcut")))

    try:
        cohort = Cohort([study(e) for e in request["studies"]],
                        training_masks=[resolve(p) for p in request.get("training_masks", [])],
                        reference_studies=[study(e) for e in request.get("reference_studies", [])],
                        source=request.get("source", ""), dicomweb_url=request.get("dicomweb_url"))
        specs = {state: None if value is None else ModelSpec(**value)
                 for state, value in request["models"].items()}
        models = StudyModels(**specs)
        settings = EvaluationSettings(**request["settings"])
    except (KeyError, TypeError, ValueError) as error:
        if isinstance(error, InputError):
            raise
        raise InputError(path, f"the request does not fit ({type(error).__name__}: {error}).",
                         "write it with SaliencyTrustLib.cohort.cli_request.write_request.") from None
    return cohort, models, settings, Path(resolve(request["out"])), request.get("device", "auto"), \
        bool(request.get("restart", True))


def _emit(kind: str, payload: Dict[str, Any]) -> None:
    sys.stdout.write(protocol_line(kind, payload) + "\n")
    sys.stdout.flush()


def run(args: argparse.Namespace) -> int:
    """Run the request; progress, the end and any error as protocol lines (module docstring)."""
    from ..io.errors import InputError
    from .fingerprint import ConfigurationChangedError

    try:
        cohort, models, settings, out_dir, device, restart = read_request(args.request)
        from .runner import evaluate_cohort

        evaluate_cohort(cohort, models, settings, out_dir, restart=restart, device=device,
                        progress=lambda done, total, message: _emit(PROGRESS, {"done": int(done), "total": int(total),
                                                                               "message": str(message)}))
    except (InputError, ConfigurationChangedError, ValueError, FileNotFoundError) as error:
        _emit(ERROR, {"error": " ".join(str(error).split()) or type(error).__name__, "type": type(error).__name__})
        return 1
    except Exception as error:  # noqa: BLE001 - reported to the parent with its traceback
        import traceback

        traceback.print_exc(file=sys.stderr)
        sys.stderr.flush()
        _emit(ERROR, {"error": f"{type(error).__name__}: {error}", "type": type(error).__name__})
        return 2
    _emit(FINISHED, {"results": str(out_dir / "results.json")})
    return 0
