"""Benchmark: batched AUPRC / AP / ROC-AUC / SSIM vs per-image scikit-learn / scikit-image loops and
Quantus, and the cost of a full cascading-randomization curve relative to its bound.

Run:  python benchmarks/bench_metrics.py            (100 maps 320x320, 8 volumes 96^3)
      python benchmarks/bench_metrics.py --quick    (20 maps 128x128, 2 volumes 48^3)

Prints, per data set and metric: the time of our batched call, of the reference loop, the speedup
and the largest absolute difference between the two. Threads: ``OMP_NUM_THREADS`` / ``--threads``
(default 2); our AUPRC sorts chunks in ``--threads`` threads, the references run single-threaded
as they do. The randomization part times ``randomization_sensitivity`` (one method, cascading,
block granularity) on ``densenet_small`` and divides by ``states x`` one batched map computation.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _timeit(fn, repeat: int = 1):
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def _data(batch, shape, seed):
    """Maps min-max normalized to [0, 1] (the study's post-processing) and blob masks."""
    import numpy as np
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    maps = np.empty((batch,) + shape, np.float32)
    masks = np.zeros((batch,) + shape, bool)
    grids = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    for i in range(batch):
        centre = [rng.uniform(0.3, 0.7) * n for n in shape]
        radius = 0.12 * min(shape)
        dist2 = sum((g - c) ** 2 for g, c in zip(grids, centre))
        masks[i] = dist2 <= radius ** 2
        noise = ndimage.uniform_filter(rng.random(shape, dtype=np.float32), 3)
        item = noise + 0.5 * masks[i] * rng.random()
        item -= item.min()
        maps[i] = item / item.max()
    return maps, masks


def bench_maps(label, batch, shape, threads, quantus_ok):
    import numpy as np
    from skimage.metrics import structural_similarity
    from sklearn.metrics import auc, average_precision_score, precision_recall_curve, roc_auc_score

    from SaliencyTrustLib.metrics import auprc, average_precision, roc_auc, ssim
    from SaliencyTrustLib.criteria import different_image_baseline

    maps, masks = _data(batch, shape, 0)
    other, _ = _data(batch, shape, 1)
    rows = []
    # the SSIM kernel is compiled by numba on first use and cached on disk: time that apart
    t_first, _ = _timeit(lambda: ssim(maps[:1], other[:1], preset="paper"))
    print(f"\n(first SSIM call in this process, {label}: {t_first:.2f} s: numba loads the cached "
          "kernel, or compiles it once per machine)")

    def add(metric, ours_fn, ref_fn, ref_name):
        # best of 3 for ours, of 2 for the reference: a shared VM's noise is one-sided
        t_ours, ours = _timeit(ours_fn, repeat=3)
        t_ref, ref = _timeit(ref_fn, repeat=2)
        diff = float(np.nanmax(np.abs(np.asarray(ours) - np.asarray(ref))))
        rows.append((metric, ref_name, t_ours, t_ref, t_ref / t_ours, diff))

    def sk_auprc():
        out = []
        for m, g in zip(maps, masks):
            precision, recall, _ = precision_recall_curve(g.ravel(), m.ravel())
            out.append(auc(recall, precision))
        return out

    add("AUPRC", lambda: auprc(maps, masks, workers=threads), sk_auprc, "sklearn PR curve + auc loop")
    add("AUPRC (1 thread)", lambda: auprc(maps, masks, workers=1), sk_auprc,
        "sklearn PR curve + auc loop")
    add("average precision", lambda: average_precision(maps, masks, workers=threads),
        lambda: [average_precision_score(g.ravel(), m.ravel()) for m, g in zip(maps, masks)],
        "sklearn average_precision_score loop")
    add("ROC-AUC", lambda: roc_auc(maps, masks, workers=threads),
        lambda: [roc_auc_score(g.ravel(), m.ravel()) for m, g in zip(maps, masks)],
        "sklearn roc_auc_score loop")
    add("SSIM paper (data_range 2)", lambda: ssim(maps, other, preset="paper"),
        lambda: [structural_similarity(a, b, data_range=2) for a, b in zip(maps, other)],
        "skimage structural_similarity loop")
    add("SSIM gaussian (data_range 1)", lambda: ssim(maps, other, data_range=1, gaussian_weights=True),
        lambda: [structural_similarity(a, b, data_range=1, gaussian_weights=True)
                 for a, b in zip(maps, other)], "skimage structural_similarity loop")
    from scipy.stats import spearmanr

    from SaliencyTrustLib.metrics import spearman
    add("Spearman", lambda: spearman(maps, other),
        lambda: [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(maps, other)],
        "scipy.stats.spearmanr loop")
    if quantus_ok:
        import quantus
        from quantus.functions.similarity_func import ssim as quantus_ssim

        x = np.zeros((batch, 1) + shape, np.float32)
        y = np.zeros(batch, np.int64)
        metric = quantus.AUC(disable_warnings=True, display_progressbar=False)
        metric.abs, metric.normalise = False, False
        add("ROC-AUC", lambda: roc_auc(maps, masks, workers=threads),
            lambda: metric(model=None, x_batch=x, y_batch=y, a_batch=maps[:, None],
                           s_batch=masks[:, None].astype(np.float32), channel_first=True),
            "Quantus 0.6 AUC")
        # Quantus' ssim uses data_range = max - min of the pair, = 1 for min-max normalized maps
        add("SSIM (data_range 1)", lambda: ssim(maps, other, data_range=1),
            lambda: quantus_ssim(maps, other, batched=True), "Quantus 0.6 similarity_func.ssim")
    # the different-image baseline: 50 partners per map (all others when fewer)
    n_pairs = min(50, batch - 1)
    t_ours, base = _timeit(lambda: different_image_baseline(maps, n_pairs=n_pairs, seed=0))
    sample = base.pairs[: min(len(base.pairs), 200)]
    t_loop_sample, ref = _timeit(lambda: [structural_similarity(maps[i], maps[j], data_range=2)
                                          for i, j in sample])
    t_loop = t_loop_sample * len(base.pairs) / len(sample)
    diff = float(np.max(np.abs(base.values[: len(sample)] - np.asarray(ref))))
    rows.append((f"different-image SSIM, {len(base.pairs)} pairs", "skimage loop (timed on "
                 f"{len(sample)} pairs, scaled)", t_ours, t_loop, t_loop / t_ours, diff))
    print(f"\n== {label}: {batch} items of {'x'.join(map(str, shape))} (float32 maps in [0, 1])")
    print(f"{'metric':34s} {'ours s':>8s} {'ref s':>8s} {'speedup':>8s} {'max |diff|':>11s}  reference")
    for metric, ref_name, t_o, t_r, speed, diff in rows:
        print(f"{metric:34s} {t_o:8.3f} {t_r:8.3f} {speed:7.1f}x {diff:11.2e}  {ref_name}")
    return rows


def bench_randomization(quick: bool):
    import torch

    from SaliencyTrustLib.criteria import compute_maps, randomization_sensitivity
    from SaliencyTrustLib.criteria._common import predicted_classes
    from SaliencyTrustLib.networks import build_classifier

    torch.manual_seed(0)
    size, n_images = (64, 4) if quick else (224, 8)
    model = build_classifier("densenet_small").eval()
    images = torch.rand(n_images, 1, size, size)
    target = predicted_classes(model, images)
    print(f"\n== cascading randomization curve: densenet_small, {n_images} images "
          f"1x{size}x{size}, blocks granularity")
    print("(the bound's single-map time is noisy on a shared CPU; the share of the curve spent "
          "beyond computing maps is not)")
    print(f"{'method':18s} {'states':>6s} {'one map s':>10s} {'bound s':>9s} {'curve s':>9s} "
          f"{'curve/bound':>11s}  split of the curve (maps / randomize / similarity s)")
    for method in ("gradient", "gradcam"):
        compute_maps(model, images[:1], method, target=target[:1])           # warm-up
        t_one, _ = _timeit(lambda: compute_maps(model, images, method, target=target,
                                                batch_size=n_images), repeat=2)
        t_curve, results = _timeit(lambda: randomization_sensitivity(
            model, images, [method], granularity="blocks", n_pairs=min(50, n_images - 1),
            batch_size=n_images, target=target))
        states = len(results[method].states)
        bound = states * t_one
        split = results[method].timings
        beyond = (t_curve - split["maps_s"]) / t_curve
        print(f"{method:18s} {states:6d} {t_one:10.3f} {bound:9.3f} {t_curve:9.3f} "
              f"{t_curve / bound:10.2f}x  {split['maps_s']:.2f} / {split['randomize_s']:.2f} / "
              f"{split['similarity_s']:.2f}  (work beyond the maps: {100 * beyond:.0f}% of the curve)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--threads", type=int, default=2, help="threads for our batched metrics")
    parser.add_argument("--no-randomization", action="store_true",
                        help="skip the randomization-curve part")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    try:
        import quantus  # noqa: F401
        quantus_ok = True
    except Exception:  # pragma: no cover - quantus is a test-only dependency
        quantus_ok = False
        print("(quantus not installed: its columns are skipped)")
    import platform
    print(f"bench_metrics: numpy {np.__version__}, torch {torch.__version__}, "
          f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}, "
          f"threads={args.threads}")
    if args.quick:
        bench_maps("2D", 20, (128, 128), args.threads, quantus_ok)
        bench_maps("3D", 2, (48, 48, 48), args.threads, quantus_ok)
    else:
        bench_maps("2D", 100, (320, 320), args.threads, quantus_ok)
        bench_maps("3D", 8, (96, 96, 96), args.threads, quantus_ok)
    if not args.no_randomization:
        bench_randomization(args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
