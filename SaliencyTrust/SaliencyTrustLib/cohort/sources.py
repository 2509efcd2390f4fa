"""Cohort inputs: which studies to evaluate, where their image and ground truth are, their labels.

Three kinds of cohort, all turned into a list of :class:`StudyRef` (nothing is read yet; studies
are read one batch at a time by the runner, so memory does not grow with the cohort):

* a **datalist** (MONAI layout, JSON ``{"training": [...], "test": [...]}``, items
  ``{"image", "label", "mask", "case_id", "shortcut"}``; ``shortcut``: the mask of a known confounder
  such as a burned-in marker, for the ``shortcut`` criterion) or a CSV with columns ``image`` and
  optional ``case_id``, ``label``, ``mask``, ``shortcut``; relative paths are relative to the file. A folder holding a
  ``datalist.json`` (what ``saliency-trust synth`` writes) counts as that datalist.
* a **folder of DICOM studies**: each sub-folder is one study (its name is the study id).
* a **DICOMweb** service (``http(s)://...``): each study on the server is one study (id =
  StudyInstanceUID), retrieved into a cache folder only when its batch is computed.

Ground truth (``--ground-truth``) when the cohort does not carry it: a folder with one file per study
named ``<study id>.<ext>`` (for a PACS study also its PatientID or AccessionNumber) (NIfTI, NRRD, DICOM SEG; read by :func:`SaliencyTrustLib.io.read_ground_truth`
on the study's grid) or an RSNA-style boxes CSV (``patientId,x,y,width,height,Target``).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

PathLike = Union[str, Path]

_GT_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr", ".dcm", ".mha", ".mhd")


@dataclass(frozen=True)
class StudyRef:
    """One study of the cohort, not read yet.

    Attributes:
        study_id: unique id (datalist ``case_id``, folder name or StudyInstanceUID).
        image: file or folder path, ``"dicomweb:<StudyInstanceUID>"``, or an
            :class:`~SaliencyTrustLib.image.ImageVolume` in memory (the Slicer module, the API).
        ground_truth: mask file path (any format the io readers take), a bool ``(K, J, I)`` array
            on the image grid, or None.
        boxes: ``((x, y, width, height), ...)`` pixel boxes (x = column), or None.
        label: 1 abnormal / 0 normal, or None when unknown.
        aliases: other ids the ground truth and labels may use (a PACS study's PatientID and
            AccessionNumber: RSNA boxes are keyed by patientId).
        shortcut: the region of a known confounder (a burned-in marker; the ``shortcut`` criterion):
            mask file path or bool ``(K, J, I)`` array on the image grid, or None.
    """

    study_id: str
    image: Any
    ground_truth: Any = None
    boxes: Optional[Tuple[Tuple[float, float, float, float], ...]] = None
    label: Optional[int] = None
    aliases: Tuple[str, ...] = ()
    shortcut: Any = None


@dataclass
class Cohort:
    """The studies to evaluate plus the training masks of the average-mask baseline.

    Attributes:
        studies: the evaluated split (e.g. ``test``), in input order.
        training_masks: ground-truth files of the training split's positives (may be empty: the
            average-mask baseline then uses the evaluated studies themselves, leave-one-out).
        reference_studies: other images whose maps (trained model only) join the different-image
            baseline (the Slicer module's "baseline images"); never scored themselves.
        source: a one-line description for the report.
        dicomweb_url: the service to pull ``dicomweb:`` studies from.
    """

    studies: List[StudyRef]
    training_masks: List[str] = field(default_factory=list)
    reference_studies: List[StudyRef] = field(default_factory=list)
    source: str = ""
    dicomweb_url: Optional[str] = None


def _bad_input(path: Optional[PathLike], reason: str, fix: str) -> Exception:
    from ..io.errors import InputError

    return InputError(path, reason, fix)


def _resolve(base: Path, value: Optional[str]) -> Optional[str]:
    if value in (None, ""):
        return None
    path = Path(value)
    return str(path if path.is_absolute() else (base / path))


def read_rsna_boxes_csv(path: PathLike) -> Dict[str, Tuple[Tuple[float, float, float, float], ...]]:
    """``{patientId: boxes}`` from an RSNA-layout CSV (rows without a box give none), read by
    :func:`SaliencyTrustLib.io.read_rsna_boxes`."""
    from ..io import read_rsna_boxes

    return {k: tuple(tuple(float(v) for v in b[:4]) for b in boxes)
            for k, boxes in read_rsna_boxes(path).items()}


def _labels_csv(path: PathLike) -> Dict[str, int]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        id_key = next((k for k in ("case_id", "study_id", "patientId") if k in (reader.fieldnames or [])), None)
        if id_key is None or "label" not in (reader.fieldnames or []):
            raise _bad_input(path, "labels CSV needs a case_id (or study_id/patientId) and a label column.",
                             "write it as case_id,label with label 0 or 1.")
        return {row[id_key]: int(float(row["label"])) for row in reader}


def _ground_truth_index(ground_truth: Optional[PathLike]):
    """(files by study id, boxes by study id) from a ``--ground-truth`` folder or boxes CSV."""
    if ground_truth is None:
        return {}, {}
    path = Path(ground_truth)
    if path.is_dir():
        files = {}
        for child in sorted(path.iterdir()):
            for suffix in _GT_SUFFIXES:
                if child.name.endswith(suffix):
                    files[child.name[: -len(suffix)]] = str(child)
                    break
            else:
                if child.is_dir():  # a DICOM SEG or label series folder per study
                    files[child.name] = str(child)
        return files, {}
    if path.suffix.lower() == ".csv":
        return {}, read_rsna_boxes_csv(path)
    if path.exists():
        raise _bad_input(path, "a single ground-truth file cannot cover a cohort.",
                         "give a folder with one <study id>.<ext> file per study, or an RSNA boxes CSV.")
    raise _bad_input(path, "ground truth not found.", "check the --ground-truth path.")


def cohort_from_datalist(path: PathLike, split: str = "test") -> Cohort:
    """A cohort from a MONAI datalist JSON or a CSV datalist (see the module docstring)."""
    path = Path(path)
    base = path.parent
    if path.suffix.lower() == ".csv":
        with open(path, newline="") as handle:
            rows = list(csv.DictReader(handle))
        if not rows or "image" not in rows[0]:
            raise _bad_input(path, "CSV datalist needs an 'image' column.",
                             "write columns image[,case_id,label,mask] with paths relative to the CSV.")
        items, training = rows, []
    else:
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise _bad_input(path, f"not valid JSON ({error}).", "fix the datalist file.") from error
        if isinstance(data, list):
            items, training = data, []
        else:
            if split not in data:
                parts = [k for k, v in data.items() if isinstance(v, list)]
                raise _bad_input(path, f"datalist has no {split!r} split (it has {parts}).",
                                 f"pass --split with one of {parts}.")
            items, training = data[split], data.get("training", []) if split != "training" else []
    studies = []
    for number, item in enumerate(items):
        if not item.get("image"):
            raise _bad_input(path, f"item {number} has no 'image'.", "give every item an image path.")
        image = _resolve(base, item["image"])
        study_id = str(item.get("case_id") or Path(image).name.split(".")[0])
        label = item.get("label")
        label = None if label in (None, "") else int(float(label))
        studies.append(StudyRef(study_id, image, _resolve(base, item.get("mask")), None, label,
                                shortcut=_resolve(base, item.get("shortcut"))))
    training_masks = [_resolve(base, it["mask"]) for it in training
                      if it.get("mask") and (it.get("label") in (None, "") or int(float(it["label"])) == 1)]
    return Cohort(studies, training_masks, source=f"datalist {path} (split {split})")


def load_dicom_folder(folder: PathLike) -> Cohort:
    """A cohort from a folder with one sub-folder per DICOM study."""
    folder = Path(folder)
    studies = [StudyRef(child.name, str(child)) for child in sorted(folder.iterdir()) if child.is_dir()]
    if not studies:
        raise _bad_input(folder, "no study sub-folders found.",
                         "give a folder holding one sub-folder per DICOM study, or a datalist.")
    return Cohort(studies, source=f"DICOM folder {folder}")


def load_dicomweb(url: str) -> Cohort:
    """A cohort of every study on a DICOMweb service (QIDO-RS ``/studies``), study id = StudyInstanceUID."""
    from ..io import DicomWebStore

    found = {str(item["StudyInstanceUID"]): item for item in DicomWebStore(url).list_studies()
             if item.get("StudyInstanceUID")}
    if not found:
        raise _bad_input(url, "the DICOMweb service lists no studies.", "check the URL (it must end at the DICOMweb root).")
    studies = [StudyRef(uid, f"dicomweb:{uid}",
                        aliases=tuple(str(found[uid][k]) for k in ("PatientID", "AccessionNumber") if found[uid].get(k)))
               for uid in sorted(found)]
    from ..io.dicomweb import mask_url

    return Cohort(studies, source=f"DICOMweb {mask_url(url)}", dicomweb_url=url)


def load_cohort(cohort: str, ground_truth: Optional[PathLike] = None, labels: Optional[PathLike] = None,
                split: str = "test") -> Cohort:
    """Any of the three cohort kinds, then ``--ground-truth`` / ``--labels`` applied to it.

    Raises:
        InputError: the cohort, ground truth or labels cannot be used (message names the fix).
    """
    if cohort.startswith(("http://", "https://")):
        result = load_dicomweb(cohort)
    else:
        path = Path(cohort)
        if not path.exists():
            raise _bad_input(path, "cohort not found.", "give a datalist JSON/CSV, a folder of DICOM studies or a DICOMweb URL.")
        if path.is_dir() and (path / "datalist.json").exists():
            result = cohort_from_datalist(path / "datalist.json", split)
        elif path.is_dir():
            result = load_dicom_folder(path)
        else:
            result = cohort_from_datalist(path, split)
    files, boxes = _ground_truth_index(ground_truth)
    label_map = _labels_csv(labels) if labels else {}
    updated = []
    for study in result.studies:
        keys = (study.study_id, *study.aliases)
        gt = next((files[k] for k in keys if k in files), study.ground_truth)
        study_boxes = next((boxes[k] for k in keys if k in boxes), study.boxes)
        label = next((label_map[k] for k in keys if k in label_map), study.label)
        if label is None and boxes:
            label = 1 if study_boxes else 0
        updated.append(StudyRef(study.study_id, study.image, gt, study_boxes, label, study.aliases, study.shortcut))
    result.studies = updated
    return result


def has_ground_truth(study: StudyRef) -> bool:
    return study.ground_truth is not None or bool(study.boxes)


def select_positive(studies: Sequence[StudyRef]) -> List[StudyRef]:
    """The studies the protocol explains: label 1, or unlabeled studies that have ground truth."""
    return [s for s in studies if s.label == 1 or (s.label is None and has_ground_truth(s))]
