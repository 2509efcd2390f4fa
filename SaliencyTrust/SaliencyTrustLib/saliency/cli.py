"""``saliency-trust saliency``: the saliency map of one image for a trained classifier.

Example::

    saliency-trust saliency --image case.nii.gz --model MonaiBundle/models/model.pt \\
        --method gradcam --out maps/

reads the image (DICOM file or series folder, NIfTI, NRRD; :func:`SaliencyTrustLib.io.read_image`),
scales it to ``[0, 1]`` (the rule of :func:`SaliencyTrustLib.transforms.scale_intensity`, as the bundle),
feeds it on its own grid (a radiograph ``K == 1`` as 2D ``(1, 1, J, I)``, a volume as 3D
``(1, 1, K, J, I)``) and writes ``DIR/<stem>_<method>.nii.gz`` (the map on the image's geometry,
LPS) and ``DIR/<stem>_<method>.npy`` (``(K, J, I)`` float32). ``add_arguments`` imports no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--image", required=True, help="DICOM file / series folder, NIfTI, NRRD")
    parser.add_argument("--model", required=True, help="weight file (state dict / bundle checkpoint) or bundle folder")
    parser.add_argument("--network", default=None,
                        help="architecture name for SaliencyTrustLib.networks (default: recorded in the checkpoint)")
    parser.add_argument("--method", default="gradcam", help="saliency method (see --list)")
    parser.add_argument("--target", type=int, default=None, help="class to explain (default: predicted)")
    parser.add_argument("--preset", default="paper", help="parameter preset: paper, captum or none")
    parser.add_argument("--postprocess", default="paper", help="paper (abs, sum, clip 99th pct, [0,1]) or abs_sum")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="method parameter, VALUE as JSON (e.g. --param n_steps=20); repeatable")
    parser.add_argument("--num-classes", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", required=True, help="output folder")


def _params(items) -> dict:
    params = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--param {item!r}: expected KEY=VALUE (VALUE as JSON, e.g. n_steps=20).")
        key, value = item.split("=", 1)
        try:
            params[key] = json.loads(value)
        except json.JSONDecodeError:
            params[key] = value
    return params


def _scale_intensity(array):
    """Per-image min-max to [0, 1], constant -> zeros: the rule of
    ``SaliencyTrustLib.transforms.scale_intensity`` (not imported: monai.transforms is slow to load)."""
    import numpy as np

    values = np.asarray(array, dtype=np.float32)
    low, high = float(values.min()), float(values.max())
    if not np.isfinite([low, high]).all():
        raise SystemExit("the image holds NaN or infinite values; fix the source image.")
    return np.zeros_like(values) if high <= low else (values - low) / (high - low)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..image import ImageVolume
    from ..io import read_image
    from ..io.nifti_write import write_nifti
    from ..networks import load_classifier
    from .api import compute_saliency
    from .postprocess import POSTPROCESSORS

    if args.postprocess == "none" or args.postprocess not in POSTPROCESSORS:
        raise SystemExit(f"--postprocess must be one of {sorted(set(POSTPROCESSORS) - {'none'})} "
                         "(a written map has one channel).")
    params = _params(args.param)
    volume = read_image(args.image)
    array = _scale_intensity(volume.array)
    spatial_dims = 2 if array.shape[0] == 1 else 3
    images = array[None] if spatial_dims == 2 else array[None, None]  # (1, 1, J, I) or (1, 1, K, J, I)
    model = load_classifier(args.model, name=args.network, spatial_dims=spatial_dims,
                            num_classes=args.num_classes, device=args.device)
    maps, targets = compute_saliency(model, images, args.method, target=args.target, postprocess=args.postprocess,
                                     preset=None if args.preset == "none" else args.preset, return_targets=True,
                                     **params)
    map_kji = np.asarray(maps[0], dtype=np.float32).reshape(array.shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = Path(args.image).name.split(".")[0] or "image"
    result = ImageVolume(map_kji, spacing=volume.spacing, origin=volume.origin, direction=volume.direction,
                         metadata={"saliency_method": args.method, "target": int(targets[0])})
    nifti = write_nifti(result, out / f"{stem}_{args.method}.nii.gz")
    np.save(out / f"{stem}_{args.method}.npy", map_kji)
    print(f"{args.method}: class {int(targets[0])}, map {map_kji.shape} (K, J, I) -> {nifti}")
    return 0
