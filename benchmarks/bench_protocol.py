"""Benchmark: the study's whole protocol on a cohort, against the bound of its model passes.

The protocol (Arun et al. 2021): N positive 224 x 224 images, the bundle's models (DenseNet-small
original + a replicate trained apart, ResNet-small second architecture), 8 saliency methods with
the study's settings, the full cascading randomization of the original model, the four criteria
with their baselines, and the report -- all through ``SaliencyTrustLib.cohort.evaluate_cohort``,
exactly what ``saliency-trust evaluate`` runs.

The **bound** of a stage is (number of forward+backward passes it needs) x (time of one batched
forward+backward pass of that architecture at 224 x 224, measured in the same run on the same
device). Passes per map: gradient 1, SmoothGrad ``nt_samples``, IG ``n_steps``, SmoothGrad-IG
``nt_samples x n_steps``, GradCAM 1, Guided Backprop 1, Guided GradCAM 2, XRAI ``2 x n_steps``.
The ratio (measured / bound) says how much time goes elsewhere (segmentation of XRAI, metrics,
I/O, Python). Goal: <= 1.5 end to end, every core busy.

It then projects the same protocol for DenseNet121 (the study's second architecture) from its
measured pass time, on this device.

Usage::

    python benchmarks/bench_protocol.py            # N = 100, the study's settings (GPU work)
    python benchmarks/bench_protocol.py --quick    # N = 4, the demo's lighter method settings (~1-2 CPU minutes)
    python benchmarks/bench_protocol.py --n 20 --device cuda --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "SaliencyTrust"))

from SaliencyTrustLib.cohort.cli_demo import DEMO_METHOD_PARAMS  # noqa: E402

#: The --quick settings: the demo's lighter methods (SaliencyTrustLib.cohort.cli_demo).
QUICK_PARAMS = DEMO_METHOD_PARAMS


def passes_per_map(method: str, settings: Dict) -> float:
    """Forward+backward passes one map of ``method`` needs with its effective ``settings``."""
    if method == "smoothgrad":
        return settings.get("nt_samples", 25)
    if method == "integrated_gradients":
        return settings.get("n_steps", 10)
    if method == "smoothgrad_ig":
        return settings.get("nt_samples", 25) * settings.get("n_steps", 10)
    if method == "xrai":
        baselines = settings.get("baselines", ("min", "max"))
        return settings.get("n_steps", 100) * (len(baselines) if isinstance(baselines, (list, tuple)) else 1)
    if method == "guided_gradcam":
        return 2
    return 1


def time_pass(model, device: str, batch: int, size: int = 224, repeats: int = 5) -> float:
    """Seconds per image of one batched forward+backward (input gradient) pass, best of ``repeats``."""
    import torch

    x = torch.rand(batch, 1, size, size, device=device, requires_grad=True)
    model = model.to(device).eval()

    def step():
        x.grad = None
        model(x).max(dim=1).values.sum().backward()
        if device.startswith("cuda"):
            torch.cuda.synchronize()

    for _ in range(2):
        step()
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - start)
    return best / batch


def write_npy_cohort(root: Path, n: int, seed: int) -> Path:
    """N positive synthetic radiographs (224 x 224) + a training set of masks, as .npy + datalist."""
    from SaliencyTrustLib.synthetic import make_cohort

    (root / "img").mkdir(parents=True, exist_ok=True)
    test = make_cohort(n, seed=seed, kind="cxr", positive_fraction=1.0)
    train = make_cohort(max(20, n // 2), seed=seed + 1, kind="cxr", positive_fraction=1.0)
    items, training = [], []
    for part, cases, target in (("test", test, items), ("train", train, training)):
        for case in cases:
            np.save(root / "img" / f"{case.case_id}.npy", case.image)
            np.save(root / "img" / f"{case.case_id}.mask.npy", case.mask.astype(np.uint8))
            target.append({"image": f"img/{case.case_id}.npy", "mask": f"img/{case.case_id}.mask.npy",
                           "label": 1, "case_id": f"{part}-{case.case_id}"})
    (root / "datalist.json").write_text(json.dumps({"training": training, "test": items}))
    return root / "datalist.json"


def model_files(work: Path, bundle: Path):
    """The bundle's trained weights, or (none trained yet) random weights of the same networks:
    the timing does not depend on the weights' values."""
    import torch

    from SaliencyTrustLib.cohort import ModelFiles
    from SaliencyTrustLib.networks import build_classifier, save_classifier

    models = bundle / "models"
    names = {"original": "model.pt", "replicate": "model_replicate.pt", "second_arch": "model_second_arch.pt"}
    if all((models / f).is_file() for f in names.values()):
        return ModelFiles(**{k: str(models / f) for k, f in names.items()}), "trained (MonaiBundle/models)"
    for seed, (state, arch) in enumerate((("original", "densenet_small"), ("replicate", "densenet_small"),
                                          ("second_arch", "resnet_small"))):
        torch.manual_seed(seed)
        save_classifier(build_classifier(arch), work / "models" / names[state], arch)
    return ModelFiles(**{k: str(work / "models" / f) for k, f in names.items()}), "random weights (bundle not trained)"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 images, lighter method settings")
    parser.add_argument("--n", type=int, default=None, help="positive images (default 100; 4 with --quick)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda")
    parser.add_argument("--sample-size", type=int, default=None,
                        help="images in the randomization/repeatability/reproducibility sample (default: all N)")
    parser.add_argument("--batch-size", type=int, default=None, help="studies per batch (default 16 CPU, 50 GPU)")
    parser.add_argument("--bundle", default=str(REPO / "MonaiBundle"))
    parser.add_argument("--methods", default=None, help="comma-separated subset of the 8 methods (smoke tests)")
    parser.add_argument("--keep", default=None, help="keep the results folder here")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)

    import torch

    from SaliencyTrustLib.cohort import EvaluationSettings, evaluate_cohort, load_cohort
    from SaliencyTrustLib.cohort.engines import make_method, method_settings
    from SaliencyTrustLib.networks import build_classifier

    device = ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    n = args.n or (4 if args.quick else 100)
    batch = args.batch_size or (min(n, 16) if device == "cpu" else min(n, 50))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(cores)
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_protocol_"))
    if args.keep and (work / "results").exists():
        shutil.rmtree(work / "results")
    stage: Dict[str, float] = {}
    total_start = time.perf_counter()

    start = time.perf_counter()
    datalist = write_npy_cohort(work / "cohort", n, seed=11)
    files, weights = model_files(work, Path(args.bundle))
    stage["cohort + models"] = time.perf_counter() - start

    methods = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam", "guided_backprop",
               "guided_gradcam", "xrai")
    if args.methods:
        methods = tuple(m for m in args.methods.split(",") if m)
    params = {m: p for m, p in QUICK_PARAMS.items() if m in methods} if args.quick else {}
    sample = min(args.sample_size or n, n)
    settings = EvaluationSettings(methods=methods, method_params=params, batch_size=batch, sample_size=sample, seed=0)
    effective = {m: method_settings(make_method(m, "paper", params.get(m, {}))) for m in methods}

    start = time.perf_counter()
    pass_time = {arch: time_pass(build_classifier(arch), device, batch) for arch in ("densenet_small", "resnet_small")}
    stage["pass timing"] = time.perf_counter() - start

    cpu_before = os.times()
    start = time.perf_counter()
    cohort = load_cohort(str(datalist), split="test")
    results = evaluate_cohort(cohort, files, settings, work / "results", device=device, progress=True)
    protocol_wall = time.perf_counter() - start
    cpu_after = os.times()
    busy = ((cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)) / (protocol_wall * cores)
    timing = json.loads((work / "results" / "timing.json").read_text())
    stage["protocol (maps + metrics + assembly)"] = protocol_wall

    start = time.perf_counter()
    from SaliencyTrustLib.report import write_report

    write_report(work / "results", results)
    stage["report"] = time.perf_counter() - start

    cascade_states = [s for s in results["randomization"]["states"] if s != "original"]
    arch_of = {"original": "densenet_small", "replicate": "densenet_small", "second_arch": "resnet_small",
               "cascade": "densenet_small"}
    maps_per_state = {"original": n, "replicate": sample, "second_arch": sample,
                      "cascade": sample * len(cascade_states) + (n - sample)}
    per_image_passes = sum(passes_per_map(m, effective[m]) for m in methods)
    bound = {state: maps_per_state[state] * per_image_passes * pass_time[arch_of[state]] for state in maps_per_state}
    total_bound = sum(bound.values())
    measured = timing["map_seconds_by_state"]
    total_passes = sum(maps_per_state.values()) * per_image_passes

    print(f"\n== bench_protocol: {n} positive images 224x224, {len(methods)} methods "
          f"({'--quick settings' if args.quick else 'the study settings'}), device {device} "
          f"({torch.get_num_threads()} threads), batch {batch}, models: {weights}")
    print(f"cascade: {len(cascade_states)} randomized states of densenet_small; sample {sample} of {n} images "
          f"(the others: original + fully randomized state only)")
    print(f"passes per image and model state: {per_image_passes:g} "
          + ", ".join(f"{m} {passes_per_map(m, effective[m]):g}" for m in methods))
    print("batched forward+backward at 224: " + ", ".join(f"{a} {t * 1e3:.2f} ms/image" for a, t in pass_time.items()))
    print(f"{'stage':<38}{'measured s':>12}{'bound s':>12}{'ratio':>8}")
    for state in ("original", "replicate", "second_arch", "cascade"):
        got = measured.get(state, 0.0)
        print(f"{'maps: ' + state:<38}{got:>12.1f}{bound[state]:>12.1f}{got / bound[state] if bound[state] else float('nan'):>8.2f}")
    other = {k: v for k, v in stage.items()}
    for name, seconds in other.items():
        print(f"{name:<38}{seconds:>12.1f}")
    end_to_end = time.perf_counter() - total_start
    ratio = protocol_wall / total_bound
    print(f"{'END TO END (protocol wall / bound)':<38}{protocol_wall:>12.1f}{total_bound:>12.1f}{ratio:>8.2f}   "
          f"goal <= 1.5; whole script {end_to_end:.1f} s")
    print(f"CPU busy during the protocol: {100 * busy:.0f}% of {cores} cores")

    # DenseNet121 projection: the same protocol with every densenet_small state replaced by DenseNet121.
    from SaliencyTrustLib.cohort import engines

    d121 = build_classifier("densenet121")
    t121 = time_pass(d121, device, min(batch, 16), repeats=3)
    states121 = sum(1 for _ in engines.cascade(d121, "blocks", 0, "reset")) - 1
    paper_methods = ("gradient", "smoothgrad", "integrated_gradients", "smoothgrad_ig", "gradcam", "guided_backprop",
                     "guided_gradcam", "xrai")
    paper_passes = sum(passes_per_map(m, method_settings(make_method(m, "paper", {}))) for m in paper_methods)
    maps121 = 100 * (3 + states121)
    projected = maps121 * paper_passes * t121 * max(ratio, 1.0)
    print(f"DenseNet121: {t121 * 1e3:.1f} ms per batched forward+backward at 224 on {device}; cascade of "
          f"{states121} states. The study protocol (100 images x {3 + states121} model states, paper settings: "
          f"{paper_passes:g} passes per image and state over the 8 methods) = {maps121 * paper_passes:,.0f} passes -> "
          f"bound {maps121 * paper_passes * t121 / 3600:.2f} h, projected {projected / 3600:.2f} h at the measured ratio "
          + ("on this GPU (GPU-hours)" if device.startswith("cuda") else "on this CPU: GPU work (README: one-GPU figure)"))
    figures = {"n": n, "device": device, "batch": batch, "quick": args.quick, "pass_seconds": pass_time,
               "bound_seconds": bound, "measured_seconds": measured, "protocol_wall": protocol_wall,
               "ratio": ratio, "cpu_busy": busy, "stages": stage, "densenet121_pass_seconds": t121,
               "densenet121_cascade_states": states121, "densenet121_projected_hours": projected / 3600,
               "total_passes": total_passes, "sample": sample}
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
