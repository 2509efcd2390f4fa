"""Turn an RSNA Pneumonia or SIIM-ACR Pneumothorax download into the bundle's datalist.

    python MonaiBundle/scripts/prepare_datalist.py rsna --images stage_2_train_images \\
        --labels stage_2_train_labels.csv --out data/rsna
    python MonaiBundle/scripts/prepare_datalist.py siim --images dicom-images-train \\
        --labels train-rle.csv --out data/siim

Images are found as ``<images>/<id>.dcm``, ``<images>/<id>/`` (a series folder) or, for SIIM,
``<images>/**/<id>.dcm``. For every positive, the ground truth is rasterized on the image's own
pixel grid (RSNA: boxes of one image unioned; SIIM: run-length masks decoded) and written as
``OUT/masks/<id>.nii.gz``; ``OUT/datalist.json`` lists ``{"image", "dicom", "label", "mask"?,
"case_id"}`` with absolute image paths, split 60/20/20 stratified by label and deterministic from
``--seed`` (the split of ``saliency-trust synth``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np


def _find_image(images: Path, case_id: str, index: Optional[Dict[str, Path]]) -> Optional[Path]:
    for candidate in (images / f"{case_id}.dcm", images / case_id):
        if candidate.exists():
            return candidate
    return index.get(case_id) if index is not None else None


def prepare(kind: str, images, labels, out, seed: int = 0, limit: Optional[int] = None) -> Dict[str, int]:
    """Write ``out/datalist.json`` and ``out/masks/``; return the count of cases per split.

    Raises:
        FileNotFoundError: the labels CSV or the image folder is missing, or no image was found.
    """
    from SaliencyTrustLib.image import ImageVolume
    from SaliencyTrustLib.io import read_image
    from SaliencyTrustLib.io.ground_truth import boxes_to_mask, read_rsna_boxes, read_siim_rle, siim_mask
    from SaliencyTrustLib.io.nifti_write import write_nifti
    from SaliencyTrustLib.io.synth import split_case_ids

    images, labels, out = Path(images), Path(labels), Path(out)
    if not labels.is_file():
        raise FileNotFoundError(f"{labels}: labels CSV not found (RSNA stage_2_train_labels.csv / SIIM train-rle.csv).")
    if not images.is_dir():
        raise FileNotFoundError(f"{images}: image folder not found.")
    truth = read_rsna_boxes(labels) if kind == "rsna" else read_siim_rle(labels)
    index = {p.stem: p for p in images.rglob("*.dcm")} if kind == "siim" else None
    items: List[dict] = []
    missing = []
    for case_id in sorted(truth)[: limit or None]:
        path = _find_image(images, case_id, index)
        if path is None:
            missing.append(case_id)
            continue
        item = {"image": str(path.resolve()), "dicom": str(path.resolve()), "label": int(bool(truth[case_id])),
                "case_id": case_id}
        if item["label"]:
            volume = read_image(path)
            shape = volume.array.shape[-2:]
            mask = (boxes_to_mask(truth[case_id], shape, path=labels) if kind == "rsna"
                    else siim_mask(truth[case_id], shape, path=labels))
            mask_volume = ImageVolume(np.asarray(mask, dtype=np.uint8).reshape(volume.array.shape), volume.spacing,
                                      volume.origin, volume.direction)
            item["mask"] = str(write_nifti(mask_volume, out / "masks" / f"{case_id}.nii.gz").resolve())
        items.append(item)
    if not items:
        raise FileNotFoundError(f"{images}: no image of the {len(truth)} cases in {labels} was found "
                                "(expected <images>/<id>.dcm or <images>/<id>/).")
    split = split_case_ids([i["case_id"] for i in items], [i["label"] for i in items], seed)
    by_id = {i["case_id"]: i for i in items}
    datalist = {"description": f"{kind} prepared by MonaiBundle/scripts/prepare_datalist.py, seed {seed}",
                **{part: [by_id[c] for c in ids] for part, ids in split.items()}}
    out.mkdir(parents=True, exist_ok=True)
    (out / "datalist.json").write_text(json.dumps(datalist, indent=1) + "\n")
    if missing:
        print(f"warning: {len(missing)} case(s) without an image were left out (e.g. {missing[:3]})", file=sys.stderr)
    return {part: len(ids) for part, ids in split.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["rsna", "siim"])
    parser.add_argument("--images", required=True, help="folder of the DICOM images")
    parser.add_argument("--labels", required=True, help="RSNA stage_2_train_labels.csv or SIIM train-rle.csv")
    parser.add_argument("--out", required=True, help="output folder (datalist.json, masks/)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    parser.add_argument("--limit", type=int, default=None, help="use only the first N cases (sorted by id)")
    args = parser.parse_args(argv)
    counts = prepare(args.kind, args.images, args.labels, args.out, args.seed, args.limit)
    print(f"{args.out}/datalist.json: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
