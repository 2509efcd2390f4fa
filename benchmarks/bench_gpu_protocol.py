#!/usr/bin/env python
"""The study's whole protocol for DenseNet121 at 320 x 320 on a GPU, stage by stage, against the
bound of its model passes; and the opt-in bfloat16 mode: its speed and its maps' SSIM to float32.

The protocol (Arun et al. 2021; ``shared/reference/PROTOCOL.md``), as the cohort runner orders it
(``SaliencyTrustLib.cohort.runner``: groups of images, then model states, then methods):

* images: ``--images`` synthetic positive radiographs (``SaliencyTrustLib.synthetic``, default
  100), one channel copied to three and scaled to [-1, 1] as the study did, with their masks;
* models: MONAI DenseNet121 (2D, 3 input channels, 2 classes) as the original (seed 0) and as the
  replicate (seed 1); MONAI ResNet50 (seed 2) as the second architecture (the study paired
  InceptionV3 with DenseNet121; MONAI has no InceptionV3, and torchvision's calls its ReLUs
  functionally, which Guided Backprop cannot gate). **Random-init weights**: the time of a pass
  does not depend on the weights' values;
* methods: the study's 8 with the ``"paper"`` preset (SmoothGrad 25 samples, IG 10 steps,
  SmoothGrad-IG 25 x 10, XRAI 2 x 100 steps + Felzenszwalb segments), study post-processing;
* the full cascading randomization of the original (``criteria.cascading_randomization``,
  granularity ``"blocks"``, ``bn_policy="reset"``: 11 states for DenseNet121), every image;
* metrics (``SaliencyTrustLib.metrics``): AUPRC of the original and of the fully randomized maps
  and of the average-mask baseline; SSIM (the study's: ``preset="paper"``, ``data_range=2``) of
  each cascade state, the replicate and the second architecture against the original, and of 50
  random pairs of different images per image (the sensitivity baseline).

The **bound** of a stage is its forward+backward passes (``bench_saliency._passes``: gradient 1,
SmoothGrad 25, IG 10, SmoothGrad-IG 250, GradCAM 1, Guided Backprop 1, Guided GradCAM 2, XRAI 200
per map) times the per-image time of one batched forward+backward of that architecture at the best
batch size of a sweep measured in the same run (``internal_batch_size`` is that batch size unless
given). ``ratio = measured / bound``; goal <= 1.25. What a ratio above 1 holds is printed beside it:
XRAI's segmentation and region ranking (CPU work, not model passes), small batches of the one-pass
methods, Python between passes.

The mixed-precision part explains the first ``--amp-images`` images with the original model in
float32 and with ``compute_saliency(..., amp="bf16")`` and prints, per method, both times, the
speed-up, and the SSIM between the two maps (mean and minimum over the images; ``data_range`` 1,
the strict textbook value, and 2, the study's). On a CUDA device it also computes strict float32
maps (``allow_tf32=False``: the default float32 of a GPU convolution is TF32) so that the table
shows what part of the difference the TF32 default already makes.

Usage::

    python benchmarks/bench_gpu_protocol.py --device cuda                   # 100 images, the study's settings
    python benchmarks/bench_gpu_protocol.py --device cuda --budget-s 200    # fewer images if 100 do not fit
    python benchmarks/bench_gpu_protocol.py --quick --threads 1             # CPU check: 2 images 64x64, light settings
    python benchmarks/bench_gpu_protocol.py --device cuda --only-amp        # the sweep and the bf16 table only

Figures last measured (one H200, 21 images projected to 100; the bf16 table on 24): docs/gpu.md.

No timed asserts: the script prints its figures and ratios as markdown tables (and ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "SaliencyTrust"))
sys.path.insert(0, str(HERE))

from bench_saliency import _passes  # noqa: E402  (the pass counts of every method)

METHODS = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam", "guided_backprop",
           "guided_gradcam", "xrai")
#: --quick: lighter settings (as bench_saliency --quick), so that the CPU check takes a minute.
QUICK_PARAMS = {"smoothgrad": {"nt_samples": 5}, "integrated_gradients": {"n_steps": 5},
                "smoothgrad_ig": {"nt_samples": 3, "n_steps": 4}, "xrai": {"n_steps": 10}}
ARCH_OF = {"original": "densenet121", "replicate": "densenet121", "second_arch": "resnet50", "cascade": "densenet121"}
STAGES = ("original", "cascade", "replicate + second_arch")
DIFFERENT_IMAGE_PAIRS = 50  # per image, as the study's sensitivity baseline


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="CPU check: 2 images 64x64, light method settings")
    parser.add_argument("--device", default="auto", help="auto (cuda when available), cuda or cpu")
    parser.add_argument("--images", type=int, default=None, help="positive images (default 100; 2 with --quick)")
    parser.add_argument("--size", type=int, default=None, help="image side (default 320; 64 with --quick)")
    parser.add_argument("--budget-s", type=float, default=None,
                        help="seconds the protocol's maps may take: fewer images when the estimate from "
                             "the measured pass time says --images do not fit (projected to --images)")
    parser.add_argument("--internal-batch-size", type=int, default=None,
                        help="points per forward+backward (default: the best batch size of the sweep)")
    parser.add_argument("--sweep", type=int, nargs="*", default=None,
                        help="batch sizes timed for the bound (default 16 32 64 128 256; 2 4 with --quick)")
    parser.add_argument("--group-size", type=int, default=None,
                        help="images per call (default: at most XRAI's segment cache size, balanced)")
    parser.add_argument("--amp-images", type=int, default=None, help="images of the bf16 comparison (default 16; 2 quick)")
    parser.add_argument("--prefetch-threads", type=int, default=None,
                        help="threads computing each group's XRAI segments while the GPU works (default: "
                             "min(8, cores - 2); 0: none, XRAI segments the images itself as the cohort runner does)")
    parser.add_argument("--only-amp", action="store_true",
                        help="the sweep and the mixed-precision comparison only (no protocol, no metrics)")
    parser.add_argument("--no-strict", action="store_true", help="skip the strict-float32 (no TF32) reference maps")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: all cores)")
    parser.add_argument("--json", default=None, help="also write every figure to this JSON file")
    return parser.parse_args(argv)


class Clock:
    """Seconds per (stage, method) and the XRAI CPU part, with the device synchronized."""

    def __init__(self, device):
        import torch

        self.torch = torch
        self.device = device
        self.seconds: Dict[str, Dict[str, float]] = {}
        self.xrai_cpu: Dict[str, float] = {}
        self.stage = None
        self.lock = threading.Lock()

    def sync(self):
        if self.device.type == "cuda":
            self.torch.cuda.synchronize(self.device)

    def add(self, stage: str, key: str, seconds: float):
        self.seconds.setdefault(stage, {})
        self.seconds[stage][key] = self.seconds[stage].get(key, 0.0) + seconds

    def total(self, stage: str) -> float:
        return sum(self.seconds.get(stage, {}).values())


def instrument_xrai(clock: Clock):
    """Time XRAI's CPU work (segmentation with its pixel index, and region ranking) into
    ``clock.xrai_cpu[stage]``."""
    from SaliencyTrustLib.saliency import xrai as xrai_module

    def timed(fn):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:  # the prefetching threads' time is overlapped: counted apart
                key = clock.stage if threading.current_thread() is threading.main_thread() else "prefetch (overlapped)"
                if key is not None:
                    with clock.lock:
                        clock.xrai_cpu[key] = clock.xrai_cpu.get(key, 0.0) + time.perf_counter() - start
        return wrapper

    xrai_module.cached_region_index = timed(xrai_module.cached_region_index)
    xrai_module.xrai_regions = timed(xrai_module.xrai_regions)


def build_models(device, quick: bool):
    """(original, replicate, second architecture): random-init MONAI networks, 3 channels, 2 classes."""
    import torch
    from monai.networks.nets import resnet50

    from SaliencyTrustLib.networks import build_classifier

    models = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        models.append(build_classifier("densenet121", spatial_dims=2, in_channels=3, num_classes=2))
    torch.manual_seed(2)
    second = resnet50(spatial_dims=2, n_input_channels=3, num_classes=2)
    for module in second.modules():  # Guided Backprop and GradCAM hooks need unmodified activations
        if isinstance(module, torch.nn.ReLU):
            module.inplace = False
    models.append(second)
    return [m.to(device).eval() for m in models]


def make_data(n: int, size: int, seed: int = 11):
    """``(images (n, 3, size, size) float32 in [-1, 1], masks (n, size, size) bool, average mask)``."""
    from SaliencyTrustLib.synthetic import make_cohort

    cases = make_cohort(n, seed=seed, kind="cxr", positive_fraction=1.0, size=size)
    images = np.empty((n, 3, size, size), np.float32)
    for i, case in enumerate(cases):
        lo, hi = float(case.image.min()), float(case.image.max())
        images[i] = ((case.image - lo) / max(hi - lo, 1e-12) * 2.0 - 1.0)[None]
    masks = np.stack([case.mask.astype(bool) for case in cases])
    training = make_cohort(20, seed=seed + 1, kind="cxr", positive_fraction=1.0, size=size)
    average_mask = np.mean([case.mask.astype(np.float32) for case in training], axis=0)
    return images, masks, average_mask


def pass_seconds(model, device, batch: int, size: int, repeats: int, amp: Optional[str] = None) -> float:
    """Best wall time of one batched forward + input-gradient backward of ``batch`` images."""
    import torch

    from SaliencyTrustLib.saliency.api import autocast_context

    x = torch.rand(batch, 3, size, size, device=device) * 2 - 1

    def step():
        leaf = x.clone().requires_grad_(True)
        with autocast_context(amp, device):
            logits = model(leaf.clone())
            torch.autograd.grad(logits[:, 0].sum(), leaf)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    step()
    step()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best


def sweep(models, device, sizes, size: int, repeats: int, amp: Optional[str] = None):
    """{arch: {batch: seconds per pass}} for DenseNet121 and ResNet50."""
    import torch

    out: Dict[str, Dict[int, float]] = {}
    for arch, model in (("densenet121", models[0]), ("resnet50", models[2])):
        out[arch] = {}
        for batch in sizes:
            try:
                out[arch][batch] = pass_seconds(model, device, batch, size, repeats, amp)
            except torch.cuda.OutOfMemoryError:  # pragma: no cover - GPU only
                torch.cuda.empty_cache()
                break
    return out


def best_per_image(times: Dict[int, float]):
    batch = min(times, key=lambda b: times[b] / b)
    return batch, times[batch] / batch


def groups_of(n: int, most: int) -> List[range]:
    count = math.ceil(n / most)
    edges = np.linspace(0, n, count + 1).round().astype(int)
    return [range(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def predicted(model, x, chunk: int):
    import torch

    with torch.no_grad():
        return torch.cat([model(x[i:i + chunk]).argmax(1) for i in range(0, x.shape[0], chunk)])


def segment_options(method_params) -> Dict[str, Any]:
    """The segmentation keywords ``saliency.xrai.xrai`` passes to ``cached_region_index`` under the
    paper preset (its defaults where the preset says nothing), so that a prefetch hits its cache."""
    import inspect

    from SaliencyTrustLib.saliency import xrai as xrai_module
    from SaliencyTrustLib.saliency.presets import preset_params

    merged = {**preset_params("paper", "xrai"), **method_params.get("xrai", {})}
    names = inspect.signature(xrai_module.segment_masks).parameters
    defaults = inspect.signature(xrai_module.xrai).parameters
    return {name: merged.get(name, defaults[name].default) for name in names if name != "image"}


def run_protocol(models, images_np, groups, method_params, ibs, device, clock: Clock, log, prefetch: int = 0):
    """Every map of the protocol, timed by stage and method; returns {state: {method: maps}}.

    ``prefetch`` > 0: at the start of each group, that many threads compute the group's XRAI
    segments (they depend on the image alone) while the GPU computes the other methods' maps."""
    import torch

    from SaliencyTrustLib.criteria import cascading_randomization
    from SaliencyTrustLib.saliency import compute_saliency
    from SaliencyTrustLib.saliency import xrai as xrai_module

    original, replicate, second = models
    n = images_np.shape[0]
    maps: Dict[str, Dict[str, np.ndarray]] = {}
    spatial = images_np.shape[2:]
    pool = ThreadPoolExecutor(prefetch) if prefetch else None
    options = segment_options(method_params)
    pending: List[Any] = []

    def explain(stage, state, model, x, targets, index):
        clock.stage = stage
        for method in METHODS:
            if method == "xrai" and pending:
                wait(pending)  # no second computation of a segmentation still under way
                pending.clear()
            clock.sync()
            start = time.perf_counter()
            out = compute_saliency(model, x, method, target=targets, postprocess="paper",
                                   internal_batch_size=ibs, **method_params.get(method, {}))
            out = out.cpu().numpy()  # synchronizes: the maps leave the device, as the runner writes them
            clock.add(stage, method, time.perf_counter() - start)
            maps.setdefault(state, {}).setdefault(method, np.empty((n,) + spatial, np.float32))[index] = out
        clock.stage = None

    for number, group in enumerate(groups, 1):
        group_start = time.perf_counter()
        index = np.asarray(group)
        if pool is not None:
            pending.extend(pool.submit(xrai_module.cached_region_index, images_np[i], **options) for i in index)
        x = torch.from_numpy(images_np[index]).to(device)
        clock.sync()
        start = time.perf_counter()
        targets = predicted(original, x, ibs)  # the trained model's class, explained in every state
        clock.add("original", "prediction", time.perf_counter() - start)
        explain("original", "original", original, x, targets, index)
        for state, model in (("replicate", replicate), ("second_arch", second)):
            start = time.perf_counter()
            own = predicted(model, x, ibs)  # their own prediction, as the runner
            clock.add("replicate + second_arch", "prediction", time.perf_counter() - start)
            explain("replicate + second_arch", state, model, x, own, index)
        clock.sync()
        start = time.perf_counter()
        cascade = cascading_randomization(original, "blocks", seed=0, bn_policy="reset", example_input=x[:1],
                                          include_original=False)
        clock.add("cascade", "randomization", time.perf_counter() - start)
        states = iter(cascade)
        while True:
            start = time.perf_counter()
            try:
                state, model = next(states)
            except StopIteration:
                break
            clock.sync()
            clock.add("cascade", "randomization", time.perf_counter() - start)
            explain("cascade", f"cascade/{state}", model, x, targets, index)
        log(f"  group {number}/{len(groups)} ({len(group)} images): {time.perf_counter() - group_start:.1f} s")
    if pool is not None:
        pool.shutdown()
    return maps


def run_metrics(maps, masks, average_mask, clock: Clock, seed: int = 0):
    """AUPRC and SSIM of the protocol, timed; returns the mean values per method (sanity only:
    random-init weights)."""
    from SaliencyTrustLib.metrics import auprc, ssim, ssim_pairs

    n = masks.shape[0]
    rng = np.random.default_rng(seed)
    pairs = np.stack([np.repeat(np.arange(n), DIFFERENT_IMAGE_PAIRS),
                      np.concatenate([rng.choice(np.delete(np.arange(n), i), DIFFERENT_IMAGE_PAIRS)
                                      if n > 1 else np.zeros(DIFFERENT_IMAGE_PAIRS, int) for i in range(n)])], 1)
    cascade_states = [s for s in maps if s.startswith("cascade/")]
    values: Dict[str, Dict[str, float]] = {}
    tiny = np.random.default_rng(1).random((2, 16, 16), dtype=np.float32)
    ssim(tiny, tiny[::-1], preset="paper"), ssim_pairs(tiny, tiny, np.array([[0, 1]]), preset="paper")
    auprc(tiny, tiny > 0.5)  # numba compiles here, once per process: not the metrics' cost
    start = time.perf_counter()
    average = np.broadcast_to(average_mask, masks.shape)
    values["average_mask"] = {"auprc": float(np.nanmean(auprc(average, masks)))}
    for method in METHODS:
        original = maps["original"][method]
        row = {"auprc": float(np.nanmean(auprc(original, masks))),
               "auprc_randomized": float(np.nanmean(auprc(maps[cascade_states[-1]][method], masks)))}
        curve = [float(np.nanmean(ssim(maps[s][method], original, preset="paper"))) for s in cascade_states]
        row["ssim_cascade_min"] = min(curve)
        row["ssim_replicate"] = float(np.nanmean(ssim(maps["replicate"][method], original, preset="paper")))
        row["ssim_second_arch"] = float(np.nanmean(ssim(maps["second_arch"][method], original, preset="paper")))
        row["ssim_different_images"] = float(np.nanmean(ssim_pairs(original, original, pairs, preset="paper")))
        values[method] = row
    clock.add("metrics", "auprc + ssim", time.perf_counter() - start)
    return values


def run_amp(model, images_np, method_params, ibs, device, strict: bool, log):
    """Per method: float32 and bf16 time and maps on the same images; SSIM between them."""
    import torch

    from SaliencyTrustLib.metrics import ssim
    from SaliencyTrustLib.saliency import compute_saliency

    from SaliencyTrustLib.saliency import xrai as xrai_module

    x = torch.from_numpy(images_np).to(device)
    targets = predicted(model, x, ibs)
    options = segment_options(method_params)
    for image in images_np:  # segments first, so that neither precision's XRAI time holds them
        xrai_module.cached_region_index(image, **options)

    def timed(method, amp):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        out = compute_saliency(model, x, method, target=targets, postprocess="paper", internal_batch_size=ibs,
                               amp=amp, **method_params.get(method, {})).cpu().numpy()
        return time.perf_counter() - start, out

    rows = {}
    for method in METHODS:
        t32, m32 = timed(method, None)
        t16, m16 = timed(method, "bf16")
        row = {"fp32_s": t32, "bf16_s": t16, "speedup": t32 / t16}
        for label, data_range in (("dr1", 1.0), ("dr2", 2.0)):
            values = ssim(m16, m32, data_range=data_range)
            row[f"ssim_{label}_mean"], row[f"ssim_{label}_min"] = float(np.nanmean(values)), float(np.nanmin(values))
        if strict:
            flags = (torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
            torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
            try:
                row["strict_fp32_s"], m_strict = timed(method, None)
            finally:
                torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = flags
            values = ssim(m32, m_strict, data_range=1.0)
            row["ssim_dr1_tf32_vs_strict_mean"], row["ssim_dr1_tf32_vs_strict_min"] = (
                float(np.nanmean(values)), float(np.nanmin(values)))
            values = ssim(m16, m_strict, data_range=1.0)
            row["ssim_dr1_bf16_vs_strict_mean"], row["ssim_dr1_bf16_vs_strict_min"] = (
                float(np.nanmean(values)), float(np.nanmin(values)))
        rows[method] = row
        log(f"  amp {method}: fp32 {t32:.2f} s, bf16 {t16:.2f} s, SSIM(dr 1) mean {row['ssim_dr1_mean']:.4f} "
            f"min {row['ssim_dr1_min']:.4f}")
    return rows


def warm_up(models, device, size, method_params, ibs, amp=None):
    """Every method once per architecture on two random images (not the cohort's: XRAI's segment
    cache must not hold them), so that library loading and first-call set-up stay out of the stages."""
    import torch

    from SaliencyTrustLib.saliency import compute_saliency

    x = torch.rand(2, 3, size, size, device=device) * 2 - 1
    for model in (models[0], models[2]):
        for method in METHODS:
            compute_saliency(model, x, method, internal_batch_size=ibs, amp=amp, **method_params.get(method, {}))


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.threads:
        os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    quick = args.quick
    requested = args.images or (2 if quick else 100)
    size = args.size or (64 if quick else 320)
    sizes = args.sweep or ([2, 4] if quick else [16, 32, 64, 128, 256])
    amp_images = args.amp_images or (2 if quick else 16)
    method_params = QUICK_PARAMS if quick else {}
    figures: Dict[str, Any] = {"quick": quick, "size": size}
    started = time.perf_counter()

    def log(line):
        print(line, flush=True)

    def save():
        if args.json:
            Path(args.json).write_text(json.dumps(figures, indent=1, default=float))

    from SaliencyTrustLib.saliency.presets import preset_params
    from SaliencyTrustLib.saliency.xrai import SEGMENT_CACHE_SIZE

    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    header = (f"bench_gpu_protocol: {platform.node()} | {gpu} | torch {torch.__version__} | cuDNN "
              f"{torch.backends.cudnn.version()} | {os.cpu_count()} CPUs, {torch.get_num_threads()} torch threads | "
              f"TF32 conv {torch.backends.cudnn.allow_tf32}, matmul {torch.backends.cuda.matmul.allow_tf32} | "
              f"cudnn.benchmark {torch.backends.cudnn.benchmark}" + (" | QUICK" if quick else ""))
    log(f"# {header}")
    figures["header"] = header
    models = build_models(device, quick)
    instrument_xrai(clock := Clock(device))

    # 1. The bound: one batched forward+backward per batch size, per architecture, fp32 and bf16.
    start = time.perf_counter()
    repeats = 2 if quick else 5
    times32 = sweep(models, device, sizes, size, repeats)
    times16 = sweep(models, device, sizes, size, repeats, amp="bf16") if not quick or device.type == "cuda" else {}
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the sweep's largest batches leave cached blocks behind
    # The batch size every architecture ran (ResNet50 at 256 and 320^2 does not fit in 141 GB).
    common = {b: t for b, t in times32["densenet121"].items() if all(b in other for other in times32.values())}
    ibs = args.internal_batch_size or best_per_image(common)[0]
    missing = [arch for arch, t in times32.items() if ibs not in t]
    if missing:
        raise SystemExit(f"--internal-batch-size {ibs}: not timed (or out of memory) for {missing}; "
                         f"give one of {sorted(common)} or add it to --sweep")
    # The bound: one batched forward+backward at the internal_batch_size used, per image.
    per_image = {arch: t[ibs] / ibs for arch, t in times32.items()}
    figures["sweep_fp32"], figures["sweep_bf16"], figures["internal_batch_size"] = times32, times16, ibs
    log(f"\n## Forward+backward of one batch ({size}x{size}x3), best of {repeats}, ms per pass (ms per image)\n")
    log("| network | precision | " + " | ".join(f"batch {b}" for b in sizes) + " |")
    log("|---|---|" + "---|" * len(sizes))
    for label, table in (("fp32 (default)", times32), ("bf16 autocast", times16)):
        for arch, times in table.items():
            cells = [f"{times[b] * 1e3:.1f} ({times[b] / b * 1e3:.2f})" if b in times else "OOM" for b in sizes]
            log(f"| {arch} | {label} | " + " | ".join(cells) + " |")
    log(f"\ninternal_batch_size = {ibs}" + (" (the best batch size every network ran)" if not args.internal_batch_size
                                          else " (given)")
        + "; bound per image-pass at that size: " + ", ".join(f"{a} {t * 1e3:.3f} ms" for a, t in per_image.items())
        + "; best of the sweep: " + ", ".join(f"{a} {best_per_image(t)[1] * 1e3:.3f} ms (batch {best_per_image(t)[0]})"
                                             for a, t in times32.items())
        + f" (sweep {time.perf_counter() - start:.1f} s)")

    # 2. How many images fit.
    settings = {m: {**preset_params("paper", m), **method_params.get(m, {})} for m in METHODS}
    passes = {m: sum(points for points, _ in _passes(m, settings[m], (1, 3, size, size))) for m in METHODS}
    per_map_set = sum(passes.values())
    from SaliencyTrustLib.criteria import randomization_units

    n_cascade = len(randomization_units(models[0], "blocks", bn_policy="reset",
                                        example_input=torch.zeros(1, 3, size, size, device=device)))
    seconds_per_image = per_map_set * ((2 + n_cascade) * per_image["densenet121"] + per_image["resnet50"])
    n = requested
    if args.budget_s and seconds_per_image * 1.3 * n > args.budget_s:
        n = max(2, int(args.budget_s / (seconds_per_image * 1.3)))
    group_size = min(args.group_size or SEGMENT_CACHE_SIZE, SEGMENT_CACHE_SIZE)
    groups = groups_of(n, group_size)
    figures.update(images=n, requested_images=requested, cascade_states=n_cascade, passes=passes,
                   groups=[len(g) for g in groups])
    log(f"\nprotocol: {n} images" + (f" (of {requested} requested: the estimate {seconds_per_image * 1.3 * requested:.0f} s "
                                      f"exceeds --budget-s {args.budget_s:g}; figures projected to {requested})"
                                      if n < requested else "")
        + f", groups {[len(g) for g in groups]}, {n_cascade} cascade states, {per_map_set} passes per image and "
        f"state ({', '.join(f'{m} {p}' for m, p in passes.items())})")
    images, masks, average_mask = make_data(max(n, amp_images) if args.only_amp else n, size)
    if not args.only_amp:
        warm_up(models, device, size, method_params, ibs)
        save()
        run_protocol_and_metrics(args, figures, models, images, masks, average_mask, groups, method_params, ibs,
                                 device, clock, log, n, requested, n_cascade, passes, per_map_set, per_image, save)
    run_mixed_precision(figures, models, images, method_params, ibs, device, log, n if not args.only_amp else
                        images.shape[0], amp_images, args, passes, times16, size, save, started)
    return 0


def run_protocol_and_metrics(args, figures, models, images, masks, average_mask, groups, method_params, ibs, device,
                             clock, log, n, requested, n_cascade, passes, per_map_set, per_image, save):
    """Stages 3 and 4: the protocol's maps and metrics, and their tables."""
    import torch

    # 3. The protocol's maps.
    prefetch = args.prefetch_threads if args.prefetch_threads is not None else max(0, min(8, (os.cpu_count() or 1) - 2))
    figures["prefetch_threads"] = prefetch
    maps = run_protocol(models, images, groups, method_params, ibs, device, clock, log, prefetch)
    if device.type == "cuda":
        figures["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
    save()

    # 4. Metrics.
    try:
        figures["metric_means"] = run_metrics(maps, masks, average_mask, clock)
    except Exception as error:  # report, keep the timings
        figures["metrics_error"] = f"{type(error).__name__}: {error}"
        log(f"metrics failed: {figures['metrics_error']}")

    # The stage table.
    states_per_stage = {"original": [("original", 1)], "cascade": [("cascade", n_cascade)],
                        "replicate + second_arch": [("replicate", 1), ("second_arch", 1)]}
    stage_rows = {}
    for stage in STAGES:
        stage_passes = sum(count * n * per_map_set for _, count in states_per_stage[stage])
        bound = sum(count * n * per_map_set * per_image[ARCH_OF[name]] for name, count in states_per_stage[stage])
        measured = clock.total(stage)
        stage_rows[stage] = {"maps": sum(count for _, count in states_per_stage[stage]) * n * len(METHODS),
                             "passes": stage_passes, "measured_s": measured, "bound_s": bound,
                             "xrai_cpu_s": clock.xrai_cpu.get(stage, 0.0)}
    stage_rows["metrics"] = {"measured_s": clock.total("metrics")}
    figures["stages"], figures["seconds"], figures["xrai_cpu"] = stage_rows, clock.seconds, clock.xrai_cpu
    scale = requested / n
    log(f"\n## Protocol stages: {n} images{'' if n == requested else f' (and projected to {requested})'}, "
        f"internal_batch_size {ibs}, {device}\n")
    log("| stage | maps | fwd+bwd passes | measured s | bound s | ratio | of which XRAI CPU s | ratio without XRAI CPU |"
        + (f" projected s ({requested} images) |" if n != requested else ""))
    log("|---|---|---|---|---|---|---|---|" + ("---|" if n != requested else ""))
    total_measured = total_bound = total_cpu = 0.0
    for stage in STAGES:
        row = stage_rows[stage]
        total_measured += row["measured_s"]
        total_bound += row["bound_s"]
        total_cpu += row["xrai_cpu_s"]
        log(f"| {stage} | {row['maps']} | {row['passes']:,} | {row['measured_s']:.1f} | {row['bound_s']:.1f} | "
            f"{row['measured_s'] / row['bound_s']:.2f} | {row['xrai_cpu_s']:.1f} | "
            f"{(row['measured_s'] - row['xrai_cpu_s']) / row['bound_s']:.2f} |"
            + (f" {row['measured_s'] * scale:.0f} |" if n != requested else ""))
    metrics_s = stage_rows["metrics"]["measured_s"]
    log(f"| metrics (AUPRC, SSIM; CPU) | - | - | {metrics_s:.1f} | - | - | - | - |"
        + (f" {metrics_s * scale:.0f} |" if n != requested else ""))
    log(f"| **maps, all stages** | - | - | {total_measured:.1f} | {total_bound:.1f} | "
        f"**{total_measured / total_bound:.2f}** | {total_cpu:.1f} | {(total_measured - total_cpu) / total_bound:.2f} |"
        + (f" {total_measured * scale:.0f} |" if n != requested else ""))
    figures["ratio_maps"] = total_measured / total_bound
    log(f"\nXRAI segments computed ahead by {prefetch} thread(s) while the GPU worked: "
        f"{clock.xrai_cpu.get('prefetch (overlapped)', 0.0):.1f} s of thread time, not in the stages"
        + (" (0 threads: XRAI segments in its own call, as the cohort runner)" if not prefetch else ""))

    log("\n## Per method, all stages together\n")
    log("| method | passes per map | measured s | bound s | ratio |")
    log("|---|---|---|---|---|")
    per_method = {}
    for method in METHODS:
        measured = sum(clock.seconds.get(stage, {}).get(method, 0.0) for stage in STAGES)
        bound = n * passes[method] * ((1 + n_cascade + 1) * per_image["densenet121"] + per_image["resnet50"])
        per_method[method] = {"measured_s": measured, "bound_s": bound}
        log(f"| {method} | {passes[method]} | {measured:.2f} | {bound:.2f} | {measured / bound:.2f} |")
    other = {k: sum(clock.seconds.get(stage, {}).get(k, 0.0) for stage in STAGES) for k in ("prediction", "randomization")}
    log(f"\n(not in the bound: predictions {other['prediction']:.2f} s, cascade randomization {other['randomization']:.2f} s)")
    figures["per_method"], figures["outside_bound"] = per_method, other
    save()


def run_mixed_precision(figures, models, images, method_params, ibs, device, log, n, amp_images, args, passes,
                        times16, size, save, started):
    """Stage 5: bf16 against float32 on the first images, and its table."""
    m = min(amp_images, n)
    log(f"\n## bf16 autocast (amp=\"bf16\") vs float32: original model, {m} images\n")
    warm_up(models, device, size, method_params, ibs, amp="bf16")
    strict = device.type == "cuda" and not args.no_strict
    amp_rows = run_amp(models[0], images[:m], method_params, ibs, device, strict, log)
    figures["amp"] = amp_rows
    bound16 = times16["densenet121"][ibs] / ibs if times16 and ibs in times16.get("densenet121", {}) else None
    figures["bf16_per_image_pass_s"] = bound16
    log("\n| method | fp32 s | bf16 s | speed-up | bf16 / bf16 bound | SSIM bf16 vs fp32, data_range 1: mean / min "
        "| data_range 2 (study): mean / min |" + (" SSIM TF32 vs strict fp32 (dr 1): mean / min | bf16 vs strict: mean / min |" if strict else ""))
    log("|---|---|---|---|---|---|---|" + ("---|---|" if strict else ""))
    for method, row in amp_rows.items():
        ratio16 = f"{row['bf16_s'] / (m * passes[method] * bound16):.2f}" if bound16 else "-"
        log(f"| {method} | {row['fp32_s']:.2f} | {row['bf16_s']:.2f} | {row['speedup']:.2f} | {ratio16} | "
            f"{row['ssim_dr1_mean']:.4f} / {row['ssim_dr1_min']:.4f} | {row['ssim_dr2_mean']:.4f} / {row['ssim_dr2_min']:.4f} |"
            + (f" {row['ssim_dr1_tf32_vs_strict_mean']:.4f} / {row['ssim_dr1_tf32_vs_strict_min']:.4f} | "
               f"{row['ssim_dr1_bf16_vs_strict_mean']:.4f} / {row['ssim_dr1_bf16_vs_strict_min']:.4f} |" if strict else ""))
    total32 = sum(r["fp32_s"] for r in amp_rows.values())
    total16 = sum(r["bf16_s"] for r in amp_rows.values())
    log(f"| **all 8** | {total32:.2f} | {total16:.2f} | **{total32 / total16:.2f}** | - | - | - |" + (" - | - |" if strict else ""))
    figures["amp_speedup_all"] = total32 / total16
    figures["wall_s"] = time.perf_counter() - started
    log(f"\nwhole script {figures['wall_s']:.0f} s" + (f"; peak GPU memory {figures['peak_gpu_memory_gib']:.1f} GiB"
                                                     if "peak_gpu_memory_gib" in figures else ""))
    save()


if __name__ == "__main__":
    sys.exit(main())
