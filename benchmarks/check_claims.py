"""Measure two numbers the docs quote (issue 12): Integrated Gradients' completeness error and the
SSIM of a blank map against real maps.

* completeness: |sum(IG) - (f(x) - f(baseline))| / |f(x) - f(baseline)| for the bundle's trained
  classifier on synthetic test radiographs, at the study's 10 ``riemann_linspace`` steps and at
  300 ``riemann_trapezoid`` steps (baseline: the image minimum, the study's "black");
* blank-map SSIM: scikit-image's SSIM (``data_range=2``, the study's setting) between an all-zero
  map and the GradCAM / gradient maps of the same images (``SaliencyTrustLib.metrics.ssim`` calls a
  constant map undefined instead).

Prints one table; no assertion (the tests pin behaviour, this prints figures).

    python benchmarks/check_claims.py [--n 16]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SaliencyTrust"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="synthetic positive test images")
    args = parser.parse_args()
    from SaliencyTrustLib.cohort import load_cohort
    from SaliencyTrustLib.io import read_image, write_synthetic_cohort
    from SaliencyTrustLib.model_spec import ModelSpec, load_model
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.saliency import compute_saliency

    model = load_model(ModelSpec(path=str(REPO / "MonaiBundle")))
    with tempfile.TemporaryDirectory() as folder:
        write_synthetic_cohort(folder, n=8 * args.n, seed=7, write_seg=False)
        studies = [s for s in load_cohort(folder).studies if s.label == 1][: args.n]
        pre = Preprocessing(in_channels=1, input_size=224)
        x = torch.from_numpy(np.stack([pre.image_to_model(read_image(s.image), 2)[0] for s in studies]))
    with torch.no_grad():
        logits = model(x)
        targets = logits.argmax(1)
        black = x.flatten(1).min(1).values.view(-1, 1, 1, 1).expand_as(x)
        difference = logits[torch.arange(len(x)), targets] - model(black)[torch.arange(len(x)), targets]
    rows = []
    for steps, rule in ((10, "riemann_linspace"), (300, "riemann_trapezoid")):
        ig = compute_saliency(model, x, "integrated_gradients", target=targets.tolist(), postprocess="none",
                              n_steps=steps, approximation_method=rule, baselines="min", internal_batch_size=32)
        error = ((ig.flatten(1).sum(1) - difference).abs() / difference.abs()).numpy()
        rows.append((f"IG completeness error, {steps} {rule} steps", f"{100 * error.min():.1f}-{100 * error.max():.1f} %",
                     f"median {100 * np.median(error):.1f} %"))
    from skimage.metrics import structural_similarity

    for method in ("gradcam", "gradient"):
        maps = compute_saliency(model, x, method, target=targets.tolist()).numpy()
        # scikit-image itself: our ssim() refuses a constant map (undefined), skimage scores it
        values = np.array([structural_similarity(np.zeros_like(m), m, data_range=2.0) for m in maps])
        rows.append((f"SSIM(blank map, {method} map), data_range 2", f"{values.min():.2f}-{values.max():.2f}",
                     f"mean {values.mean():.2f}"))
    print(f"check_claims: bundle classifier, {len(x)} synthetic positive 224 px radiographs, torch {torch.__version__}")
    print("| quantity | range over images | centre |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
