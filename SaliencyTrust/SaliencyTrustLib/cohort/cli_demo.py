"""``saliency-trust demo --out DIR``: the README's main job on a laptop CPU in minutes.

Writes the synthetic cohort (``DIR/cohort``, :func:`SaliencyTrustLib.io.write_synthetic_cohort`),
evaluates the bundle's three trained models (``MonaiBundle/models``) with every method of the
study on its test split, the four criteria with their baselines, and writes the report
(``DIR/results/report.html``). Settings are the study's, scaled down so the whole job fits in a
few CPU minutes (:data:`DEMO_METHOD_PARAMS`, :data:`DEMO`); the report states every value. The
run is resumable like ``evaluate``: run the same command again after an interruption.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict

#: Cohort and sample size of the demo: 200 synthetic radiographs -> a test split of 40 images,
#: whose 20 positives are explained (the study explains positives only) and all 20 form the
#: randomization / repeatability / reproducibility sample (the study: 100): the fewest images a
#: verdict is decided on (``EvaluationSettings.min_images``), so the demo's verdicts and controls
#: are decided, not "undecided".
DEMO: Dict[str, Any] = {"n": 200, "seed": 0, "sample_size": 20, "batch_size": 10}

#: The study's methods with fewer samples / steps, so that the demo fits in a few laptop-CPU
#: minutes (the study: SmoothGrad 25 samples, IG 10 steps, SmoothGrad-IG 25 x 10, XRAI 2 x 100 IG
#: steps). Everything else is the "paper" preset; ``--paper-settings`` runs the study's values.
DEMO_METHOD_PARAMS: Dict[str, Dict[str, Any]] = {
    "smoothgrad": {"nt_samples": 4},
    "integrated_gradients": {"n_steps": 4},
    "smoothgrad_ig": {"nt_samples": 2, "n_steps": 4},
    "xrai": {"n_steps": 4},
}


def default_bundle() -> Path:
    """``MonaiBundle/`` of this checkout (the package is installed editable from it), else ``./MonaiBundle``."""
    here = Path(__file__).resolve().parents[3] / "MonaiBundle"
    return here if here.is_dir() else Path.cwd() / "MonaiBundle"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``saliency-trust demo`` (no torch import here)."""
    from .cli_evaluate import PAPER_METHODS, add_run_arguments

    parser.add_argument("--out", default="demo-output", help="output folder (default demo-output)")
    parser.add_argument("--bundle", default=None, help="bundle folder with models/ (default: this checkout's MonaiBundle)")
    parser.add_argument("--n", type=int, default=DEMO["n"], help="synthetic cases, 20%% go to the test split (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEMO["seed"], help="seed of the cohort and the evaluation (default 0)")
    parser.add_argument("--sample-size", type=int, default=DEMO["sample_size"],
                        help="images in the randomization/repeatability/reproducibility sample (default %(default)s)")
    parser.add_argument("--methods", default=PAPER_METHODS, help="comma-separated methods (default: the study's eight)")
    parser.add_argument("--criteria", default="study",
                        help="study (the four, default), all (also data_randomization, faithfulness, robustness; "
                             "shortcut needs a shortcut cohort), or a comma-separated list")
    parser.add_argument("--paper-settings", action="store_true",
                        help="the study's full method settings instead of the demo's lighter ones (much slower)")
    add_run_arguments(parser)


def _write_cohort(target: Path, n: int, seed: int) -> None:
    """Write the synthetic cohort unless the same one is already there (keeps resumes fast)."""
    from ..io import write_synthetic_cohort

    marker = target / "demo-cohort.json"
    wanted = {"n": n, "seed": seed, "kind": "cxr"}
    if marker.exists() and json.loads(marker.read_text()) == wanted and (target / "datalist.json").exists():
        return
    write_synthetic_cohort(target, n=n, seed=seed, kind="cxr", write_seg=False)
    marker.write_text(json.dumps(wanted))


def demo_notes(args: argparse.Namespace, methods, params: Dict[str, Dict[str, Any]], n_test: int,
               positives: int) -> str:
    """The paragraph under the report's title: the cohort and how the demo's settings differ from the study's."""
    lighter = ", ".join(f"{m} " + " ".join(f"{k}={v}" for k, v in p.items()) for m, p in params.items())
    return (f"Demo run: synthetic cohort of {args.n} chest radiographs (seed {args.seed}); the {positives} positive "
            f"images of the {n_test}-image test split are explained, {min(args.sample_size, positives)} of them form "
            "the randomization / repeatability / reproducibility sample (the study: 100). "
            + (f"Lighter method settings than the study's, to fit a laptop CPU: {lighter} (the study: SmoothGrad "
               "nt_samples=25, IG n_steps=10, SmoothGrad-IG 25 x 10, XRAI n_steps=100 per baseline); every other "
               "setting is the paper preset. " if lighter else "The study's method settings. ")
            + f"Methods: {', '.join(methods)}.")


def run(args: argparse.Namespace) -> int:
    """Synthetic cohort -> maps of every method -> four criteria -> report; print where and a summary."""
    from .cli_evaluate import configure_threads, parse_criteria
    from .fingerprint import ConfigurationChangedError
    from ..io.errors import InputError
    from ..model_spec import bundle_preprocessing
    from ..preprocessing import Preprocessing
    from .settings import EvaluationSettings, StudyModels
    from .sources import load_cohort
    from .summary import summary_text

    started = time.perf_counter()
    out = Path(args.out)
    bundle = Path(args.bundle) if args.bundle else default_bundle()
    try:
        models = StudyModels.from_bundle(str(bundle))
    except ValueError as error:
        print(f"saliency-trust demo: {error}", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    print(f"[1/3] synthetic cohort: {args.n} chest radiographs -> {out / 'cohort'}", flush=True)
    _write_cohort(out / "cohort", args.n, args.seed)
    cohort = load_cohort(str(out / "cohort"), split="test")
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    params = {} if args.paper_settings else {m: dict(p) for m, p in DEMO_METHOD_PARAMS.items() if m in methods}
    settings = EvaluationSettings(methods=methods, preset="paper", method_params=params, seed=args.seed,
                                  criteria=parse_criteria(args.criteria),
                                  batch_size=DEMO["batch_size"], sample_size=args.sample_size,
                                  preprocessing=Preprocessing(**bundle_preprocessing(bundle)))
    positives = sum(1 for s in cohort.studies if s.label == 1)
    print(f"[2/3] saliency maps of {len(methods)} methods on {positives} positive test images "
          f"(of {len(cohort.studies)}), models from {bundle / 'models'}", flush=True)
    from .runner import evaluate_cohort

    results_dir = out / "results"
    try:
        results = evaluate_cohort(cohort, models, settings, results_dir, restart=args.restart, device=args.device,
                                  progress=not args.no_progress)
    except (ConfigurationChangedError, InputError) as error:
        print(f"saliency-trust demo: {error}", file=sys.stderr)
        return 3
    if results is None:
        return 0
    report = None
    if not args.no_report:
        print("[3/3] report", flush=True)
        from ..report import write_report

        report = write_report(results_dir, results, title="SaliencyTrust demo report (synthetic cohort)",
                              notes=demo_notes(args, methods, params, len(cohort.studies), positives))
    print(summary_text(results, results_dir, report))
    print(f"demo finished in {time.perf_counter() - started:.0f} s")
    return 0
