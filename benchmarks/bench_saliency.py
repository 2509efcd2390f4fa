#!/usr/bin/env python
"""Saliency engine benchmark: time of each method against the lower bound of its work.

For each method, on a MONAI DenseNet121 at 1x1x224x224 and a small 3D MONAI DenseNet at 1x1x64^3:

* ``ours``: wall time of ``compute_saliency(model, x, method, postprocess="none")`` with the
  paper preset (minimum of ``--repeats`` runs, default 5, fewer once 30 s are spent);
* ``bound``: the method's model passes, batched ``internal_batch_size`` at a time, each chunk
  timed as one batched forward+backward (forward only for Occlusion) of the same size, measured
  in the same run, alternating with the method's own runs: the time the method cannot go below;
* ``ratio`` = ours / bound (goal: <= 1.25 for the gradient-based methods; XRAI adds the
  segmentation and region ranking on the CPU, which is not model work);
* ``captum`` / ``monai``: the same method with captum's classes as their documentation shows
  (target from a separate forward pass, ``internal_batch_size`` / ``nt_samples_batch_size`` /
  ``perturbations_per_eval`` set to the same bound) and ``monai.visualize`` where it has the method.

Usage::

    python benchmarks/bench_saliency.py            # full (a few minutes on 2 CPU cores)
    python benchmarks/bench_saliency.py --quick    # fewer samples/steps, coarser occlusion, 3D at 32^3
    python benchmarks/bench_saliency.py --clock cpu   # process CPU time: steadier on a shared machine
    python benchmarks/bench_saliency.py --device cuda --threads 16
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "SaliencyTrust"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="reduced sample/step counts, 3D at 32^3")
    parser.add_argument("--device", default="cpu", help="torch device (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--repeats", type=int, default=None, help="timing runs per method, minimum reported (default 5, fewer past 30 s)")
    parser.add_argument("--internal-batch-size", type=int, default=8)
    parser.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                        help="wall: elapsed time; cpu: this process's CPU time (all threads), steadier "
                             "than wall time on a machine shared with other jobs")
    parser.add_argument("--no-compare", action="store_true", help="skip the captum / monai columns")
    parser.add_argument("--only", nargs="*", default=None, help="methods to run (default all)")
    parser.add_argument("--dims", nargs="*", type=int, default=[2, 3], help="2 and/or 3")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch
    import warnings

    warnings.filterwarnings("ignore")
    torch.set_num_threads(args.threads)
    from monai.networks.nets import DenseNet, DenseNet121

    from SaliencyTrustLib.saliency import available_methods, compute_saliency
    from SaliencyTrustLib.saliency.presets import preset_params

    device = torch.device(args.device)
    repeats = args.repeats or 5
    ibs = args.internal_batch_size
    quick = {"smoothgrad": {"nt_samples": 5}, "integrated_gradients": {"n_steps": 5},
             "smoothgrad_ig": {"nt_samples": 3, "n_steps": 4}, "xrai": {"n_steps": 10}} if args.quick else {}

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    clock = time.perf_counter if args.clock == "wall" or device.type == "cuda" else time.process_time

    def timed_once(fn):
        sync()
        start = clock()
        fn()
        sync()
        return clock() - start

    def timed(fn, budget_s=30.0):
        """Minimum wall time over up to ``repeats`` runs (fewer once ``budget_s`` is spent): the
        minimum is the figure least disturbed by other load on a shared machine."""
        times = []
        for _ in range(repeats):
            times.append(timed_once(fn))
            if sum(times) > budget_s:
                break
        return min(times)

    print(f"# bench_saliency: {platform.node()} | {platform.processor() or platform.machine()} | "
          f"{os.cpu_count()} CPUs | torch {torch.__version__} threads={torch.get_num_threads()} | "
          f"device={device}" + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else "")
          + f" | internal_batch_size={ibs} | repeats={repeats} | clock={args.clock}"
          + f"{' | QUICK' if args.quick else ''} | load average {os.getloadavg()[0]:.1f}")
    torch.manual_seed(0)
    setups = []
    if 2 in args.dims:
        setups.append(("DenseNet121 2D 1x1x224x224",
                       DenseNet121(spatial_dims=2, in_channels=1, out_channels=2), (1, 1, 224, 224)))
    if 3 in args.dims:
        side = 32 if args.quick else 64
        setups.append((f"DenseNet(16,8,(2,4,6,4)) 3D 1x1x{side}^3",
                       DenseNet(spatial_dims=3, in_channels=1, out_channels=2, init_features=16, growth_rate=8,
                                block_config=(2, 4, 6, 4)), (1, 1, side, side, side)))
    methods = args.only or available_methods()
    for title, model, shape in setups:
        model = model.to(device).eval()
        x = torch.rand(shape, device=device)
        def one_pass(batch, backward=True):
            """One batched forward(+backward) of ``batch`` copies of the image, as a callable."""
            inputs = x.expand(batch, *x.shape[1:]).clone()

            def run():
                if backward:
                    leaf = inputs.clone().requires_grad_(True)
                    torch.autograd.grad(model(leaf)[:, 0].sum(), leaf)
                else:
                    with torch.no_grad():
                        model(inputs)
            return run

        def measure(call, passes):
            """(ours, bound): the method and the passes of its bound are timed alternately, run by
            run, and each figure is the minimum over the runs, so that both see the same load."""
            pieces = []  # (count, callable)
            for points, backward in passes:
                full, rest = divmod(points, ibs)
                if full:
                    pieces.append((full, one_pass(ibs, backward)))
                if rest:
                    pieces.append((1, one_pass(rest, backward)))
            for _, piece in pieces:
                piece()  # warm-up
            ours_times, piece_times = [], [[] for _ in pieces]
            for _ in range(repeats):
                ours_times.append(timed_once(call))
                for times, (_, piece) in zip(piece_times, pieces):
                    times.append(timed_once(piece))
                if sum(ours_times) > 30.0:
                    break
            return min(ours_times), sum(count * min(times) for (count, _), times in zip(pieces, piece_times))

        print(f"\n## {title}\n")
        print("| method | passes | ours (s) | bound (s) | ratio | captum (s) | monai (s) |")
        print("|---|---|---|---|---|---|---|")
        for method in methods:
            overrides = dict(quick.get(method, {}))
            if method == "occlusion" and args.quick:  # coarser grid: 13^2 (2D) / 3^3 (3D) windows
                overrides.update(sliding_window_shapes=32 if len(shape) == 4 else 16,
                                 strides=16 if len(shape) == 4 else 8)
            params = {**preset_params("paper", method), **overrides}
            passes = _passes(method, params, shape)
            call = lambda: compute_saliency(model, x, method, postprocess="none",  # noqa: E731
                                            internal_batch_size=ibs, **overrides)
            call()  # warm-up (imports, allocator)
            ours, lower = measure(call, passes)
            captum_time = monai_time = "-"
            if not args.no_compare:
                captum_time = _fmt(_compare(timed, _captum_call(method, model, x, params, ibs)))
                monai_time = _fmt(_compare(timed, _monai_call(method, model, x, params, ibs, len(shape) - 2)))
            total = sum(p for p, _ in passes)
            print(f"| {method} | {total} | {ours:.3f} | {lower:.3f} | {ours / lower:.2f} | {captum_time} | "
                  f"{monai_time} |", flush=True)
    return 0


def _passes(method, params, shape):
    """[(points, with_backward)] of a method on one image under ``params``."""
    if method in ("gradient", "input_x_gradient", "gradcam", "gradcam_pp", "guided_backprop"):
        return [(1, True)]
    if method == "guided_gradcam":
        return [(1, True), (1, True)]
    if method == "smoothgrad":
        return [(params["nt_samples"], True)]
    if method == "integrated_gradients":
        return [(params["n_steps"], True)]
    if method == "smoothgrad_ig":
        return [(params["nt_samples"] * params["n_steps"], True)]
    if method == "xrai":
        return [(params["n_steps"], True)] * len(params["baselines"])
    if method == "occlusion":
        spatial = shape[2:]
        window, stride = params["sliding_window_shapes"], params["strides"]
        count = math.prod((n - min(window, n)) // stride + 1 for n in spatial)
        return [(count, False)]
    raise ValueError(method)


def _fmt(value):
    return value if isinstance(value, str) else f"{value:.3f}"


def _compare(timed, fn):
    if fn is None:
        return "-"
    try:
        fn()
        return timed(fn)
    except Exception as error:  # report, do not hide: e.g. captum and in-place ReLU
        return f"error: {type(error).__name__}: {str(error).splitlines()[0][:60]}"


def _predicted(model, x):
    import torch

    with torch.no_grad():
        return model(x).argmax(1).tolist()


def _captum_call(method, model, x, params, ibs):
    """captum as its documentation shows, same settings as ours."""
    from captum import attr

    span = float(x.max() - x.min())
    base = float(x.min())
    if method == "gradient":
        return lambda: attr.Saliency(model).attribute(x, target=_predicted(model, x), abs=False)
    if method == "input_x_gradient":
        return lambda: attr.InputXGradient(model).attribute(x, target=_predicted(model, x))
    if method == "smoothgrad":
        return lambda: attr.NoiseTunnel(attr.Saliency(model)).attribute(
            x, nt_type="smoothgrad_sq", nt_samples=params["nt_samples"], stdevs=0.15 * span,
            nt_samples_batch_size=ibs, target=_predicted(model, x), abs=False)
    if method == "integrated_gradients":
        return lambda: attr.IntegratedGradients(model).attribute(
            x, baselines=base, target=_predicted(model, x), n_steps=params["n_steps"], internal_batch_size=ibs)
    if method == "smoothgrad_ig":
        return lambda: attr.NoiseTunnel(attr.IntegratedGradients(model)).attribute(
            x, nt_type="smoothgrad_sq", nt_samples=params["nt_samples"], stdevs=0.15 * span,
            nt_samples_batch_size=max(1, ibs // params["n_steps"]), baselines=base, target=_predicted(model, x),
            n_steps=params["n_steps"], internal_batch_size=ibs)
    layer = _layer(model)
    if method == "gradcam":
        def run():
            coarse = attr.LayerGradCam(model, layer).attribute(x, target=_predicted(model, x), relu_attributions=True)
            return attr.LayerAttribution.interpolate(coarse, tuple(x.shape[2:]),
                                                     interpolate_mode="bilinear" if x.ndim == 4 else "trilinear")
        return run
    if method == "guided_backprop":
        return lambda: attr.GuidedBackprop(model).attribute(x, target=_predicted(model, x))
    if method == "guided_gradcam":
        return lambda: attr.GuidedGradCam(model, layer).attribute(x, target=_predicted(model, x))
    if method == "occlusion":
        window, stride = params["sliding_window_shapes"], params["strides"]
        spatial = x.ndim - 2
        return lambda: attr.Occlusion(model).attribute(
            x, sliding_window_shapes=(1,) + (window,) * spatial, strides=(1,) + (stride,) * spatial,
            baselines=0.0, target=_predicted(model, x), perturbations_per_eval=ibs)
    return None


def _layer(model):
    from SaliencyTrustLib.saliency.cam import _monai_default_layer

    return dict(model.named_modules())[_monai_default_layer(model)]


def _monai_call(method, model, x, params, ibs, spatial_dims):
    """monai.visualize where it has the method."""
    from monai import visualize

    if method == "gradient":
        return lambda: visualize.VanillaGrad(model)(x)
    if method == "smoothgrad":
        return lambda: visualize.SmoothGrad(model, stdev_spread=0.15, n_samples=params["nt_samples"],
                                            magnitude=True, verbose=False)(x)
    if method == "guided_backprop":
        return lambda: visualize.GuidedBackpropGrad(model)(x)
    if method == "gradcam":
        return lambda: visualize.GradCAM(model, target_layers="class_layers.relu")(x)
    if method == "gradcam_pp":
        return lambda: visualize.GradCAMpp(model, target_layers="class_layers.relu")(x)
    if method == "occlusion":
        window, stride = params["sliding_window_shapes"], params["strides"]
        return lambda: visualize.OcclusionSensitivity(model, mask_size=window, n_batch=ibs, verbose=False,
                                                      mode=0.0, overlap=1.0 - stride / window)(x)
    return None


if __name__ == "__main__":
    sys.exit(main())
