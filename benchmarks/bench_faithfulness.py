#!/usr/bin/env python
"""Benchmark: deletion / insertion curves (``DeletionInsertion``) per image, internal_batch_size 1 vs 32.

On ``densenet_small`` (``SaliencyTrustLib.networks.build_classifier``, untrained, seed 0) at
1x224x224, 8 images, 20 steps, blur fill, probability score (the defaults). For each
``internal_batch_size`` (default 1 and 32), in a fresh child process so that each gets its own
peak memory:

* ``ours``: wall time (``--clock cpu``: process CPU time) of one ``DeletionInsertion(...)(model, images, maps, targets)`` call on the
  whole batch, per image (minimum of ``--repeats`` runs, default 3);
* ``bound``: the same number of forward passes (``2 * steps`` per image), batched
  ``internal_batch_size`` at a time, timed as plain ``model(x)`` under ``torch.no_grad()``, in
  the same process alternately with ours: the time the curves cannot go below; ``ours / bound``
  is the metric's own overhead (building the perturbed inputs, the blur, the ranking);
* ``peak``: the process' memory high-water mark (CPU: ``ru_maxrss``; CUDA:
  ``torch.cuda.max_memory_allocated``) after the bound's passes alone and after the metric's
  calls, beside the bound the metric states for what it holds itself (images, fill images, int64
  ranks, and about ``3 * internal_batch_size`` perturbed images), excluding the model's
  activations for one batch of ``internal_batch_size`` inputs.

Usage::

    python benchmarks/bench_faithfulness.py                   # 8 images 224^2, 20 steps, ibs 1 and 32
    python benchmarks/bench_faithfulness.py --quick           # 2 images 64^2, 10 steps
    python benchmarks/bench_faithfulness.py --device cuda --threads 16
    python benchmarks/bench_faithfulness.py --batch-sizes 1 8 32 128
    python benchmarks/bench_faithfulness.py --clock cpu       # process CPU time, for a shared machine
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SaliencyTrust"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 images 64^2, 10 steps (a smoke run)")
    parser.add_argument("--n", type=int, default=None, help="images (default 8)")
    parser.add_argument("--size", type=int, default=None, help="image side in pixels (default 224)")
    parser.add_argument("--steps", type=int, default=None, help="curve steps (default 20)")
    parser.add_argument("--fill", default="blur", help="blur (default), zero or mean")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32],
                        help="internal_batch_size values to compare (default 1 32)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs, minimum reported")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (all threads), "
                             "steadier on a machine shared with other jobs (CPU devices only)")
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.n = args.n or (2 if args.quick else 8)
    args.size = args.size or (64 if args.quick else 224)
    args.steps = args.steps or (10 if args.quick else 20)
    return args


def _peak_bytes(torch, device) -> int:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024     # KiB on Linux


def child(args) -> dict:
    """One internal_batch_size in this process: times and peak memory, as a dict."""
    import numpy as np
    import torch

    from SaliencyTrustLib.metrics import DeletionInsertion
    from SaliencyTrustLib.networks import build_classifier

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ibs = args.child
    torch.manual_seed(0)
    model = build_classifier("densenet_small").to(device).eval()
    images = torch.rand(args.n, 1, args.size, args.size, device=device)
    maps = np.random.default_rng(0).random((args.n, args.size, args.size), dtype=np.float32)
    with torch.no_grad():
        targets = model(images[:1]).argmax(1).expand(args.n).cpu().numpy()
    metric = DeletionInsertion(steps=args.steps, fill=args.fill, internal_batch_size=ibs)
    passes = 2 * args.steps * args.n

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    def bound():
        with torch.no_grad():
            for lo in range(0, passes, ibs):
                model(torch.rand(min(ibs, passes - lo), 1, args.size, args.size, device=device))

    clock = time.process_time if args.clock == "cpu" and device.type == "cpu" else time.perf_counter

    def timed(fn):
        sync()
        start = clock()
        fn()
        sync()
        return clock() - start

    with torch.no_grad():
        model(images[:1])                                                  # warm-up
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    base = _peak_bytes(torch, device)
    bound()                                                                # warm-up
    peak_bound = _peak_bytes(torch, device)
    ours_times, bound_times = [], []
    for _ in range(args.repeats):
        bound_times.append(timed(bound))
        ours_times.append(timed(lambda: metric(model, images, maps, targets)))
    peak_ours = _peak_bytes(torch, device)
    item = 4 * args.size * args.size                                        # one float32 image
    held = 2 * args.n * item + args.n * args.size ** 2 * 8 + 3 * min(ibs, passes) * item
    return dict(ibs=ibs, ours_s=min(ours_times), bound_s=min(bound_times), passes=passes,
                base_mib=base / 2 ** 20, peak_bound_mib=peak_bound / 2 ** 20,
                peak_ours_mib=peak_ours / 2 ** 20, held_mib=held / 2 ** 20)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    import torch

    device = torch.device(args.device)
    print(f"# bench_faithfulness: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__} threads={args.threads} | "
          f"device={device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f" | repeats={args.repeats} | clock={args.clock}{' | QUICK' if args.quick else ''} | load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"# densenet_small, {args.n} images 1x{args.size}x{args.size}, steps={args.steps}, "
          f"fill={args.fill}, score=probability: {2 * args.steps} forward passes per image\n")
    memory = "GPU max_memory_allocated" if device.type == "cuda" else "process ru_maxrss"
    print("| internal_batch_size | ours s/image | bound s/image | ours/bound | peak, passes alone "
          "(MiB) | peak, with the metric (MiB) | metric's own bound (MiB) |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for ibs in args.batch_sizes:
        command = [sys.executable, str(Path(__file__).resolve()), "--child", str(ibs),
                   "--n", str(args.n), "--size", str(args.size), "--steps", str(args.steps),
                   "--fill", args.fill, "--repeats", str(args.repeats), "--device", args.device,
                   "--threads", str(args.threads), "--clock", args.clock]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        row = json.loads(out.strip().splitlines()[-1])
        rows.append(row)
        n = args.n
        print(f"| {ibs} | {row['ours_s'] / n:.3f} | {row['bound_s'] / n:.3f} | "
              f"{row['ours_s'] / row['bound_s']:.2f} | {row['peak_bound_mib']:.0f} | "
              f"{row['peak_ours_mib']:.0f} | {row['held_mib']:.1f} |", flush=True)
    if len(rows) > 1:
        first, last = rows[0], rows[-1]
        print(f"\ninternal_batch_size {first['ibs']} -> {last['ibs']}: speed-up per image "
              f"{first['ours_s'] / last['ours_s']:.2f}x (time at {first['ibs']} / time at "
              f"{last['ibs']}; below 1: the larger batch is slower); peak memory "
              f"{first['peak_ours_mib']:.0f} -> {last['peak_ours_mib']:.0f} MiB ({memory}; the "
              f"model's activations for {last['ibs']} inputs dominate)")
    print("memory bound: the metric holds the images and their fill images (2 x B x C x N x 4 B), "
          "one int64 rank per pixel (B x N x 8 B) and about 3 x internal_batch_size perturbed "
          "images, plus the model's activations for one batch of internal_batch_size inputs; "
          "nothing grows with steps")
    return 0


if __name__ == "__main__":
    sys.exit(main())
