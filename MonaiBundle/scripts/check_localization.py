"""Do the bundle's models localize better than the average-mask baseline?

Per-image AUPRC (SaliencyTrustLib.metrics.auprc) of each method's maps on the positive test images
of a datalist, against the pixel-wise mean of the training masks used as every image's map (the
study's baseline (a)). Prints one line per model x method. Run at the repository root::

    python MonaiBundle/scripts/check_localization.py --methods gradcam,xrai
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

BUNDLE = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datalist", default=str(BUNDLE / "data" / "synthetic" / "datalist.json"))
    parser.add_argument("--methods", default="gradcam", help="comma-separated saliency method names")
    parser.add_argument("--models", default="model.pt,model_replicate.pt,model_second_arch.pt")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--limit", type=int, default=None, help="use the first N positive test images")
    args = parser.parse_args()

    from SaliencyTrustLib.metrics import auprc
    from SaliencyTrustLib.networks import load_classifier
    from SaliencyTrustLib.saliency import compute_saliency
    from SaliencyTrustLib.transforms import get_preprocessing, bundle_datalist

    torch.set_num_threads(args.threads)
    preprocessing = get_preprocessing(keys=("image",), mask_keys=("mask",))
    train = [preprocessing(item) for item in bundle_datalist(args.datalist, "training", require=("mask",))]
    mean_mask = torch.stack([d["mask"][0] for d in train]).float().mean(0).numpy()
    test = [preprocessing(item) for item in bundle_datalist(args.datalist, "test", require=("mask",), labels_only=1,
                                                             limit=args.limit)]
    images = torch.stack([d["image"].as_tensor() for d in test])
    masks = np.stack([d["mask"][0].numpy() > 0.5 for d in test])
    baseline = float(np.nanmean(auprc(np.repeat(mean_mask[None], len(test), 0), masks)))
    print(f"{len(test)} positive test images; average-mask baseline AUPRC {baseline:.3f}")
    for name in args.models.split(","):
        model = load_classifier(BUNDLE / "models" / name)
        for method in args.methods.split(","):
            start = time.perf_counter()
            value = float(np.nanmean(auprc(np.asarray(compute_saliency(model, images, method)), masks)))
            print(f"{name:22s} {method:22s} AUPRC {value:.3f}  beats baseline: {value > baseline}  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
