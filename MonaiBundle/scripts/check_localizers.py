"""How well do the bundle's localization networks localize, and how alike are two of them?

On the positive test images of a datalist (the images the study computes maps for), prints

* each localizer's mean per-image AUPRC against the masks (``SaliencyTrustLib.metrics.auprc``:
  trapezoidal area under the precision-recall curve, every pixel a prediction) - the study's
  localization-network baseline of criterion 1 (U-Net 0.404 on SIIM);
* the mean per-image SSIM between the two localizers' maps (``SaliencyTrustLib.metrics.ssim``,
  7 x 7 uniform window, K1 0.01, K2 0.03, sample covariance, ``data_range`` 2 as the study) - the
  baseline of criteria 3 and 4 (U-Net about 0.975);
* for scale, the mask prevalence (AUPRC of an uninformative map) and the average-training-mask
  baseline.

Images and masks go through the classifier's preprocessing (``Preprocessing``: 1 channel, min-max
[0, 1], 224 x 224 squash) exactly as in ``train_localization.json``. Run at the repository root::

    python MonaiBundle/scripts/check_localizers.py
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]


def _prepare(items, preprocessing):
    from SaliencyTrustLib.localizers import MaskToModeld
    from SaliencyTrustLib.preprocessing_monai import Preprocessingd

    steps = [MaskToModeld(keys="mask", preprocessing=preprocessing),
             Preprocessingd(keys="image", preprocessing=preprocessing)]
    prepared = []
    for item in items:
        for step in steps:
            item = step(item)
        prepared.append(item)
    images = torch.stack([d["image"] for d in prepared]).numpy()
    masks = np.stack([d["mask"][0].numpy() > 0.5 for d in prepared])
    return images, masks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist", default=str(BUNDLE / "data" / "synthetic" / "datalist.json"))
    parser.add_argument("--localizers", default="localizer.pt,localizer_replicate.pt",
                        help="two comma-separated weight files in MonaiBundle/models/ (or paths)")
    parser.add_argument("--image_size", type=int, default=224)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use the first N positive test images")
    parser.add_argument("--data_range", type=float, default=2.0, help="SSIM data_range (the study: 2)")
    args = parser.parse_args()

    from SaliencyTrustLib.localizers import load_localizer, localization_maps
    from SaliencyTrustLib.metrics import auprc, ssim
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.transforms import bundle_datalist

    torch.set_num_threads(args.threads)
    preprocessing = Preprocessing(in_channels=1, input_size=args.image_size, resize="squash", intensity="minmax01")
    _, train_masks = _prepare(bundle_datalist(args.datalist, "training", require=("mask",), labels_only=1),
                              preprocessing)
    images, masks = _prepare(bundle_datalist(args.datalist, "test", require=("mask",), labels_only=1,
                                           limit=args.limit), preprocessing)
    mean_mask = train_masks.mean(0).astype(np.float32)
    prevalence = float(masks.mean(axis=tuple(range(1, masks.ndim))).mean())
    average_mask = float(np.nanmean(auprc(np.repeat(mean_mask[None], len(masks), 0), masks)))
    print(f"{len(masks)} positive test images, {images.shape[2:]} grid; mask prevalence {prevalence:.3f} "
          f"(AUPRC of an uninformative map); average-training-mask baseline AUPRC {average_mask:.3f}")

    maps = {}
    for entry in args.localizers.split(","):
        path = Path(entry) if Path(entry).is_file() else BUNDLE / "models" / entry
        model = load_localizer(path)
        start = time.perf_counter()
        maps[entry] = localization_maps(model, images, batch_size=8)
        values = auprc(maps[entry], masks)
        print(f"{entry:26s} AUPRC mean {np.nanmean(values):.3f}  median {np.nanmedian(values):.3f}  "
              f"min {np.nanmin(values):.3f}  ({time.perf_counter() - start:.1f} s)", flush=True)
    if len(maps) == 2:
        (name_a, maps_a), (name_b, maps_b) = maps.items()
        values, reasons = ssim(maps_a, maps_b, data_range=args.data_range, return_reasons=True)
        dropped = sum(r is not None for r in reasons)
        print(f"SSIM {name_a} vs {name_b} (data_range {args.data_range:g}, 7x7 uniform window): mean "
              f"{np.nanmean(values):.3f}  median {np.nanmedian(values):.3f}  min {np.nanmin(values):.3f}"
              + (f"  ({dropped} constant pairs dropped)" if dropped else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
