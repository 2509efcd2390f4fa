"""``saliency-trust saliency``: the saliency map of one image for a trained classifier.

Example::

    saliency-trust saliency --image case.nii.gz --model MonaiBundle --method gradcam --out maps/
    saliency-trust saliency --image cr.dcm --model lab.ts --preprocessing study --method gradient --out maps/

runs the one study pipeline (:func:`SaliencyTrustLib.cohort.evaluate_cohort`) on this image alone
(``study_selection="all"``, no criterion): the image (DICOM file or series folder, NIfTI, NRRD) is
read, oriented, resized and scaled by the study's preprocessing (the bundle's ``network_data_format``
when the model is a bundle, else the defaults or the options), the map is computed on the model
grid and written back on the image's own grid: ``DIR/<stem>_<method>.nii.gz`` (LPS geometry of the
image) and ``DIR/<stem>_<method>.npy`` (``(K, J, I)`` float32); the run's store is kept in
``DIR/.run_<stem>_<method>/``. ``add_arguments`` imports no torch.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from ..cli_options import ROLES, add_model_arguments, add_preprocessing_arguments

    parser.add_argument("--image", required=True, help="DICOM file / series folder, NIfTI, NRRD")
    add_model_arguments(parser, roles=ROLES[:1], bundle=False)
    add_preprocessing_arguments(parser)
    parser.add_argument("--method", default="gradcam", help="saliency method")
    parser.add_argument("--target", type=int, default=None, help="class to explain (default: predicted)")
    parser.add_argument("--preset", default="paper", help="parameter preset: paper, captum or none")
    parser.add_argument("--postprocess", default="paper", help="paper (abs, sum, clip 99th pct, [0,1]) or abs_sum")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="method parameter, VALUE as JSON (e.g. --param n_steps=20); repeatable")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto")
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


def run(args: argparse.Namespace) -> int:
    import sys

    import numpy as np

    from ..cli_options import models_from_args, preprocessing_from_args
    from ..cohort import Cohort, EvaluationSettings, StudyRef, evaluate_cohort
    from ..cohort.compute import native_relpath
    from ..io import read_image
    from ..io.errors import InputError
    from .postprocess import POSTPROCESSORS

    if args.postprocess == "none" or args.postprocess not in POSTPROCESSORS:
        raise SystemExit(f"--postprocess must be one of {sorted(set(POSTPROCESSORS) - {'none'})} "
                         "(a written map has one channel).")
    params = _params(args.param)
    stem = Path(args.image).name.split(".")[0] or "image"
    out = Path(args.out)
    try:
        models = models_from_args(args)
        settings = EvaluationSettings(
            methods=(args.method,), preset=None if args.preset == "none" else args.preset,
            method_params={args.method: params} if params else {}, criteria=(), batch_size=1, sample_size=1,
            preprocessing=preprocessing_from_args(args), study_selection="all", target_class=args.target,
            postprocess=args.postprocess)
        cohort = Cohort([StudyRef(stem, str(args.image))], source=f"image {args.image}")
        results = evaluate_cohort(cohort, models, settings, out / f".run_{stem}_{args.method}", restart=True,
                                  device=args.device, progress=False)
    except (InputError, ValueError, FileNotFoundError) as error:
        print(f"saliency-trust saliency: {error}", file=sys.stderr)
        return 2
    if results["failures"]:
        print(f"saliency-trust saliency: {next(iter(results['failures'].values()))}", file=sys.stderr)
        return 3
    native = read_image(out / f".run_{stem}_{args.method}" / native_relpath(stem, args.method))
    nifti = out / f"{stem}_{args.method}.nii.gz"
    (out / f".run_{stem}_{args.method}" / native_relpath(stem, args.method)).replace(nifti)
    np.save(out / f"{stem}_{args.method}.npy", native.array.astype(np.float32))
    target = int(results["predictions"][stem]["target"])
    print(f"{args.method}: class {target}, map {native.array.shape} (K, J, I) -> {nifti}")
    return 0
