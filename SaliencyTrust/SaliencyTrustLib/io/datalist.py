"""Cohorts on disk: iterate a datalist safely, and prepare RSNA / SIIM downloads into the datalist layout.

* :func:`iter_cohort` / :class:`CohortReader` yield one :class:`CohortCase` (image volume, ground-truth
  mask, label) per datalist item; a case that cannot be read is recorded as a :class:`CaseError` in
  ``errors`` and skipped, so one bad study never ends a run.
* ``saliency-trust prepare --rsna stage_2_train_labels.csv --images stage_2_train_images --out DIR``
  and ``saliency-trust prepare --siim train-rle.csv --images dicom-images-train --out DIR`` write the
  same layout as ``saliency-trust synth`` (``nifti/``, ``masks/``, ``datalist.json`` pointing back at
  the original DICOM files), so the bundle and the cohort runner treat public data and the
  synthetic cohort alike.
"""

from __future__ import annotations

import argparse
import json
import os
import traceback
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union

import numpy as np

from ..image import ImageVolume
from .errors import InputError, InputWarning

PathLike = Union[str, os.PathLike]
SPLITS = ("training", "validation", "test")


@dataclass
class CohortCase:
    """One readable case of a cohort.

    Attributes:
        case_id: the item's ``case_id`` (or the file/folder name).
        image: the image volume (``(K, J, I)``, see :mod:`SaliencyTrustLib.image`).
        mask: bool ``(K, J, I)`` ground truth on the image grid, or None when the item has none.
        label: 0 / 1, or None when unknown.
        split: ``"training"``, ``"validation"``, ``"test"`` or None.
        item: the datalist item, paths made absolute.
    """

    case_id: str
    image: ImageVolume
    mask: Optional[np.ndarray]
    label: Optional[int]
    split: Optional[str] = None
    item: Dict[str, Any] = field(default_factory=dict)


@dataclass
class CaseError:
    """A case that was skipped: which, the file at fault, why, and how to fix it."""

    case_id: str
    path: Optional[str]
    reason: str
    fix: Optional[str] = None

    def to_dict(self) -> Dict[str, Optional[str]]:
        return {"case_id": self.case_id, "path": self.path, "reason": self.reason, "fix": self.fix}

    def __str__(self) -> str:
        return f"{self.case_id}: {self.path or ''} {self.reason}" + (f" Fix: {self.fix}" if self.fix else "")


def load_datalist(source: Union[PathLike, Dict[str, Any]], splits: Optional[Sequence[str]] = None,
                  ) -> List[Dict[str, Any]]:
    """Datalist items with absolute paths and their ``split``.

    Args:
        source: a ``datalist.json``, a folder holding one, or an already loaded dict (paths then
            relative to the current directory).
        splits: which parts to take (default: all of ``training``, ``validation``, ``test`` present).

    Raises:
        InputError: missing / malformed datalist.
    """
    if isinstance(source, dict):
        data, base, where = source, Path.cwd(), None
    else:
        path = Path(source)
        if path.is_dir():
            path = path / "datalist.json"
        if not path.exists():
            raise InputError(path, "does not exist.", "Pass a datalist.json (or its folder); "
                             "`saliency-trust synth` or `saliency-trust prepare` write one.")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as error:
            raise InputError(path, f"is not valid JSON ({error}).", "Fix the JSON syntax.") from error
        base, where = path.parent, path
    if not isinstance(data, dict) or not any(k in data for k in SPLITS):
        raise InputError(where, f"holds none of the parts {SPLITS}.",
                         "Write a MONAI datalist: {\"training\": [...], \"validation\": [...], \"test\": [...]}.")
    items = []
    for split in (splits or SPLITS):
        for item in data.get(split, []) or []:
            resolved = dict(item)
            for key in ("image", "mask", "dicom", "seg", "label_map"):
                if isinstance(resolved.get(key), str):
                    resolved[key] = str((base / resolved[key]).resolve()) if not os.path.isabs(resolved[key]) \
                        else resolved[key]
            resolved.setdefault("case_id", Path(str(item.get("image", "case"))).name.split(".")[0])
            resolved["split"] = split
            items.append(resolved)
    return items


class CohortReader:
    """Iterate a cohort's readable cases; unreadable ones go to ``self.errors`` and are skipped.

    Args:
        source: datalist.json / its folder / a dict (see :func:`load_datalist`), or a folder
            without a datalist whose entries (sub-folders or image files) are the cases (no labels).
        splits: parts of the datalist to read (default all).
        image_key: the item key holding the image (``"image"``: NIfTI; ``"dicom"``: the DICOM study).
        mask_key: the item key holding the ground truth (None: do not read ground truth).
        positives_only: skip items whose label is 0.
        read_kwargs: passed to :func:`SaliencyTrustLib.io.read_image`.
        ground_truth_kwargs: passed to :func:`SaliencyTrustLib.io.read_ground_truth`.

    A negative case's ground truth may be empty (read with ``allow_empty``); a positive case with
    an empty mask is an error (recorded, skipped).
    """

    def __init__(self, source: Union[PathLike, Dict[str, Any]], splits: Optional[Sequence[str]] = None,
                 image_key: str = "image", mask_key: Optional[str] = "mask", positives_only: bool = False,
                 read_kwargs: Optional[Dict[str, Any]] = None,
                 ground_truth_kwargs: Optional[Dict[str, Any]] = None) -> None:
        self.source, self.splits = source, splits
        self.image_key, self.mask_key, self.positives_only = image_key, mask_key, positives_only
        self.read_kwargs = dict(read_kwargs or {})
        self.ground_truth_kwargs = dict(ground_truth_kwargs or {})
        self.errors: List[CaseError] = []

    def _items(self) -> List[Dict[str, Any]]:
        if not isinstance(self.source, dict):
            folder = Path(self.source)
            if folder.is_dir() and not (folder / "datalist.json").exists():
                return [{"case_id": entry.name.split(".")[0], self.image_key: str(entry), "split": None}
                        for entry in sorted(folder.iterdir()) if not entry.name.startswith(".")]
        return load_datalist(self.source, self.splits)

    def __iter__(self) -> Iterator[CohortCase]:
        from .dicom_read import read_image
        from .ground_truth import read_ground_truth

        for item in self._items():
            case_id = str(item.get("case_id"))
            label = item.get("label")
            if label is not None:
                values = np.asarray(label).ravel()
                # a scalar / [label] / one-hot [p0, p1] (MONAI datalists use each)
                label = int(values[0]) if values.size == 1 else int(np.argmax(values))
            if self.positives_only and label == 0:
                continue
            image_path = item.get(self.image_key)
            try:
                if not image_path:
                    raise InputError(None, f"datalist item has no '{self.image_key}' entry.",
                                     f"Add '{self.image_key}' to every item, or pick image_key=.")
                image = read_image(image_path, **self.read_kwargs)
                mask = None
                if self.mask_key and item.get(self.mask_key):
                    options = {"allow_empty": label == 0, "case_id": case_id, **self.ground_truth_kwargs}
                    mask = read_ground_truth(item[self.mask_key], image, **options)
            except InputError as error:
                self._record(case_id, error.path, error.reason, error.fix)
                continue
            except Exception as error:  # noqa: BLE001 - one bad study must never end the run
                self._record(case_id, str(image_path), f"unexpected {type(error).__name__}: {error}",
                             "Report this with the traceback in the log: " +
                             traceback.format_exc(limit=3).strip().splitlines()[-1])
                continue
            yield CohortCase(case_id, image, mask, label, item.get("split"), item)

    def _record(self, case_id: str, path: Optional[str], reason: str, fix: Optional[str]) -> None:
        error = CaseError(case_id, path, reason, fix)
        self.errors.append(error)
        warnings.warn(f"skipped case {error}", InputWarning, stacklevel=3)


def iter_cohort(source: Union[PathLike, Dict[str, Any]], errors: Optional[List[CaseError]] = None,
                **kwargs: Any) -> Iterator[CohortCase]:
    """Yield the readable cases of a cohort (see :class:`CohortReader`).

    Args:
        source: datalist / folder (see :class:`CohortReader`).
        errors: a list that receives a :class:`CaseError` for each skipped case, as it happens (so a
            caller that stops early still sees the errors met so far).
        **kwargs: :class:`CohortReader` options.
    """
    reader = CohortReader(source, **kwargs)
    if errors is not None:
        reader.errors = errors
    yield from reader


# ------------------------------------------------------------------------------------ prepare
def _find_dicoms(folder: Path) -> Dict[str, Path]:
    found: Dict[str, Path] = {}
    for path in folder.rglob("*.dcm"):
        found.setdefault(path.stem, path)
    return found


def _resize_radiograph(image: ImageVolume, size: int) -> ImageVolume:
    """``size x size`` copy of a one-slice image; voxel centres keep their patient positions."""
    from skimage.transform import resize

    _, rows, cols = image.shape
    array = resize(image.array[0], (size, size), order=1, anti_aliasing=(rows > size or cols > size),
                   preserve_range=True).astype(np.float32)
    scale_i, scale_j = cols / size, rows / size
    spacing = (image.spacing[0] * scale_i, image.spacing[1] * scale_j, image.spacing[2])
    shift = image.direction @ np.array([(scale_i - 1) / 2 * image.spacing[0],
                                        (scale_j - 1) / 2 * image.spacing[1], 0.0])
    return ImageVolume(array, spacing, np.asarray(image.origin) + shift, image.direction,
                       {**image.metadata, "resized_from": [rows, cols]})


def _encode(array: np.ndarray, dtype: str) -> np.ndarray:
    values = np.clip(np.asarray(array, np.float32), 0.0, 1.0)
    if dtype == "float32":
        return values
    if dtype == "uint16":
        return np.round(values * 65535).astype(np.uint16)
    if dtype == "uint8":
        return np.round(values * 255).astype(np.uint8)
    raise InputError(None, f"dtype={dtype!r} is not one of float32, uint16, uint8.", "Pick one of them.")


def prepare_cohort(out_dir: PathLike, images_dir: PathLike, *, rsna: Optional[PathLike] = None,
                   siim: Optional[PathLike] = None, seed: int = 0, limit: Optional[int] = None,
                   size: Optional[int] = None, dtype: str = "uint16") -> Dict[str, Any]:
    """Turn an RSNA Pneumonia or SIIM-ACR download into the datalist layout of the synthetic cohort.

    Args:
        out_dir: output folder: ``nifti/<id>.nii.gz`` (the display values :func:`read_image`
            gives, in [0, 1], stored as ``dtype``; ``<id>`` is the CSV's id when it is a plain file
            name, else :func:`~SaliencyTrustLib.io.safe_paths.safe_name` of it), ``masks/<id>.nii.gz``
            (uint8 boxes / RLE masks at the image's resolution), ``labels.csv``, ``datalist.json``
            (``dicom`` points at the original file), ``skipped.json`` (cases that could not be
            read, with the reason).
        images_dir: folder of the DICOM files (searched recursively; file stem = RSNA ``patientId`` /
            SIIM ``ImageId``).
        rsna: ``stage_2_train_labels.csv`` (``patientId,x,y,width,height,Target``).
        siim: ``train-rle.csv`` (``ImageId, EncodedPixels``).
        seed: split seed (60/20/20, stratified, :func:`SaliencyTrustLib.io.split_case_ids`).
        limit: take only the first ``limit`` cases of the CSV (for a trial run).
        size: resize every image to ``size x size`` (bilinear with anti-aliasing; spacing and origin
            follow). RSNA boxes are then rasterized with the reference study's rule
            (``int(size * c / (W - 1))``, inclusive; ``size=320`` reproduces the paper's masks);
            SIIM masks are decoded at full resolution and resized nearest-neighbour.
        dtype: NIfTI image type: ``"uint16"`` (default, ``round(v * 65535)``), ``"uint8"``
            (``round(v * 255)``, enough for the 8-bit RSNA/SIIM files) or ``"float32"`` ([0, 1]).
            The bundle min-max scales each image, so the type only changes the file size.

    Returns:
        summary ``{"out", "n", "positives", "skipped", "split"}``.
    """
    from .dicom_read import read_image
    from .ground_truth import boxes_to_mask, read_rsna_boxes, read_siim_rle, siim_mask
    from .safe_paths import child_path, safe_name
    from .synth import split_case_ids
    from .volumes import save_volume

    if (rsna is None) == (siim is None):
        raise InputError(None, "prepare needs exactly one of rsna= and siim=.",
                         "Pass --rsna stage_2_train_labels.csv or --siim train-rle.csv.")
    out, images_dir = Path(out_dir), Path(images_dir)
    if not images_dir.is_dir():
        raise InputError(images_dir, "is not a folder.", "Pass the folder holding the DICOM files.")
    table = read_rsna_boxes(rsna) if rsna is not None else read_siim_rle(siim)
    csv_path = Path(rsna if rsna is not None else siim)
    dicoms = _find_dicoms(images_dir)
    case_ids = list(table)[:limit] if limit else list(table)
    (out / "nifti").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    kept, labels, skipped = [], {}, []
    for case_id in case_ids:
        try:
            if case_id not in dicoms:
                raise InputError(images_dir, f"holds no {case_id}.dcm (listed in {csv_path.name}).",
                                 "Pass the image folder that matches the CSV.")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image = read_image(dicoms[case_id])
            if image.shape[0] != 1:
                raise InputError(dicoms[case_id], f"is a {image.shape[0]}-slice image; RSNA/SIIM cases "
                                 "are single radiographs.", "Check that --images is the radiograph folder.")
            full_shape = image.shape
            if size is not None:
                image = _resize_radiograph(image, size)
            if rsna is not None:
                mask = boxes_to_mask(table[case_id], image.shape, path=csv_path, study_scaling=size is not None,
                                     original_size=full_shape[2])
            else:
                mask = siim_mask(table[case_id], full_shape, path=csv_path)[np.newaxis]
                if size is not None:
                    from skimage.transform import resize

                    mask = resize(mask[0].astype(np.float32), (size, size), order=0, anti_aliasing=False,
                                  preserve_range=True)[np.newaxis] > 0.5
            # The id comes from the CSV: a plain name for the files (safe_name), kept inside out/.
            name = f"{safe_name(case_id)}.nii.gz"
            save_volume(image.with_array(_encode(image.array, dtype)), child_path(out / "nifti", name))
            save_volume(image.with_array(np.asarray(mask, np.uint8).reshape(image.shape)),
                        child_path(out / "masks", name))
        except InputError as error:
            skipped.append(CaseError(case_id, error.path, error.reason, error.fix).to_dict())
            continue
        kept.append(case_id)
        labels[case_id] = int(bool(table[case_id]))
    split = split_case_ids(kept, [labels[c] for c in kept], seed) if kept else {s: [] for s in SPLITS}
    datalist = {
        "description": f"{'RSNA Pneumonia' if rsna is not None else 'SIIM-ACR Pneumothorax'} prepared "
                       f"by saliency-trust prepare from {csv_path.name}",
        "seed": seed,
        **{part: [{"image": f"nifti/{safe_name(c)}.nii.gz", "label": labels[c],
                   "mask": f"masks/{safe_name(c)}.nii.gz",
                   "dicom": os.path.relpath(dicoms[c], out), "case_id": c} for c in ids]
           for part, ids in split.items()},
    }
    (out / "datalist.json").write_text(json.dumps(datalist, indent=1) + "\n")
    (out / "labels.csv").write_text("case_id,label\n" + "".join(f"{c},{labels[c]}\n" for c in kept))
    (out / "skipped.json").write_text(json.dumps(skipped, indent=1) + "\n")
    return {"out": str(out), "n": len(kept), "positives": int(sum(labels.values())),
            "skipped": len(skipped), "split": {k: len(v) for k, v in split.items()}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``saliency-trust prepare`` options (no heavy imports)."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--rsna", help="RSNA Pneumonia stage_2_train_labels.csv")
    source.add_argument("--siim", help="SIIM-ACR train-rle.csv")
    parser.add_argument("--images", required=True, help="folder holding the DICOM files (recursive)")
    parser.add_argument("--out", required=True, help="output folder (nifti/, masks/, datalist.json)")
    parser.add_argument("--seed", type=int, default=0, help="split seed (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N cases of the CSV")
    parser.add_argument("--size", type=int, default=None,
                        help="resize images to SIZE x SIZE (RSNA boxes then follow the paper's "
                             "int(SIZE*c/1023) rule; 320 reproduces the study)")
    parser.add_argument("--dtype", choices=("uint16", "uint8", "float32"), default="uint16",
                        help="NIfTI image type (default uint16; values are [0, 1] display values scaled)")


def run(args: argparse.Namespace) -> int:
    """Prepare the cohort and print a summary; exit 1 when no case could be read."""
    try:
        summary = prepare_cohort(args.out, args.images, rsna=args.rsna, siim=args.siim,
                                 seed=args.seed, limit=args.limit, size=args.size, dtype=args.dtype)
    except InputError as error:
        print(f"saliency-trust prepare: {error}")
        return 2
    split = summary["split"]
    print(f"prepared {summary['n']} cases ({summary['positives']} positive, {summary['skipped']} skipped, "
          f"see skipped.json) in {summary['out']}: training {split['training']}, validation "
          f"{split['validation']}, test {split['test']}")
    return 0 if summary["n"] else 1
