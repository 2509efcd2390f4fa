#!/usr/bin/env python
"""Benchmark: XRAI's greedy region ranking (``saliency.xrai.xrai_regions``) per map, on the CPU.

XRAI's region ranking is the one CPU step between the GPU passes of the study's protocol
(docs/gpu.md): it runs once per map, and the protocol explains each image with 14 model states
(original, 11 cascade states, replicate, second architecture), always over the same regions. So
the regions are segmented and indexed once per image
(:func:`~SaliencyTrustLib.saliency.xrai.cached_region_index`). This script times, on synthetic
3-channel radiographs at
``--size`` (default 320) with the paper preset's segmentation (Felzenszwalb at 6 scales on the
224 px copy):

* ``index``: building the RegionIndex, once per image;
* ``ranking, cached index``: one map's ranking given the index (what ``xrai`` does per state);
* ``ranking, index per call``: the same from the bare masks (the index built inside the call;
  before the index was cached, a sparse matrix was built per call: 32-35 ms per map here);
* the maps of both paths are compared bit for bit.

Usage::

    python benchmarks/bench_xrai_ranking.py                  # 4 images 320^2, 14 maps each
    python benchmarks/bench_xrai_ranking.py --images 2 --size 224
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np

#: Maps per image in the GPU protocol: original, 11 cascade states, replicate, second architecture.
STATES_PER_IMAGE = 14


def radiographs(n: int, size: int) -> np.ndarray:
    """``(n, 3, size, size)`` float32 synthetic radiographs in [0, 1] (the grey image copied to 3 channels)."""
    from scipy.ndimage import zoom

    from SaliencyTrustLib.synthetic import make_cohort

    images = []
    for case in make_cohort(n, seed=0):
        grey = np.asarray(case.image, np.float32).squeeze()
        grey = zoom(grey, size / grey.shape[0], order=1)
        images.append(np.repeat(grey[None], 3, axis=0))
    return np.stack(images)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=4)
    parser.add_argument("--size", type=int, default=320)
    parser.add_argument("--maps", type=int, default=STATES_PER_IMAGE, help="attribution maps per image")
    args = parser.parse_args()

    from SaliencyTrustLib.saliency.xrai import RegionIndex, segment_masks, xrai_regions

    print(f"# bench_xrai_ranking: {platform.machine()} | {os.cpu_count()} CPUs | numpy {np.__version__} | "
          f"{args.images} images {args.size}^2 x {args.maps} maps")
    rng = np.random.default_rng(0)
    index_s, cached_s, per_call_s, identical, total = [], [], [], 0, 0
    for image in radiographs(args.images, args.size):
        masks = segment_masks(image)
        n_pixels = args.size * args.size
        start = time.perf_counter()
        index = RegionIndex(masks, n_pixels)
        index_s.append(time.perf_counter() - start)
        for _ in range(args.maps):
            attribution = rng.normal(size=(args.size, args.size)) + 3 * image[0]
            start = time.perf_counter()
            fast, _ = xrai_regions(attribution, index)
            cached_s.append(time.perf_counter() - start)
            start = time.perf_counter()
            rebuilt, _ = xrai_regions(attribution, masks)
            per_call_s.append(time.perf_counter() - start)
            identical += int(np.array_equal(fast, rebuilt))
            total += 1
    index_ms, cached_ms, per_call_ms = (1000 * float(np.median(v)) for v in (index_s, cached_s, per_call_s))
    print("\n| step | median ms |\n|---|---|")
    print(f"| index, once per image | {index_ms:.1f} |")
    print(f"| ranking per map, cached index | {cached_ms:.1f} |")
    print(f"| ranking per map, index per call | {per_call_ms:.1f} |")
    per_image_before = args.maps * per_call_ms
    per_image_now = index_ms + args.maps * cached_ms
    print(f"\nper image ({args.maps} maps): {per_image_before:.0f} ms with the index per call, "
          f"{per_image_now:.0f} ms with it cached: {per_image_before / per_image_now:.2f}x")
    print(f"maps identical bit for bit: {identical} of {total}")


if __name__ == "__main__":
    main()
