"""``saliency-trust evaluate``: the four trust criteria over a cohort, resumable, distributed.

Examples::

    saliency-trust evaluate --cohort synth/datalist.json --bundle MonaiBundle --out results/
    saliency-trust evaluate --cohort studies/ --ground-truth masks/ --labels labels.csv \\
        --model weights.pt --model-name densenet121 --methods gradient,gradcam --out results/
    saliency-trust evaluate --cohort synth/ --model lab.pt --model-factory labnet.py:build \\
        --model-kwargs '{"num_classes": 2}' --preprocessing study --intensity imagenet --out results/
    saliency-trust evaluate --cohort http://pacs:8042/dicom-web --ground-truth boxes.csv ...
    torchrun --nproc_per_node=4 -m SaliencyTrustLib evaluate ...     # one share per process

Re-running the same command after an interruption (even ``kill -9``) finishes the remaining units
only; a changed configuration is refused (``--restart`` deletes the old results).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict

from ..cli_options import add_model_arguments, add_preprocessing_arguments, models_from_args, preprocessing_from_args
from .settings import CHOICES

#: The study's eight methods (kept here as strings so ``--help`` does not import torch).
PAPER_METHODS = "gradient,smoothgrad,integrated_gradients,smoothgrad_ig,gradcam,guided_backprop,guided_gradcam,xrai"
CRITERIA = "localization,randomization,repeatability,reproducibility"
#: The criteria beyond the study (docs/beyond-the-study.md); ``--criteria all`` = both lists.
BEYOND = "shortcut,data_randomization,faithfulness,robustness"


def add_setting_arguments(parser: argparse.ArgumentParser, defaults: Dict[str, Any] | None = None) -> None:
    defaults = defaults or {}
    group = parser.add_argument_group("what to compute (every option here enters the configuration fingerprint)")
    group.add_argument("--methods", default=defaults.get("methods", PAPER_METHODS),
                       help="comma-separated saliency methods (default: the study's eight)")
    group.add_argument("--criteria", default=CRITERIA,
                       help=f"comma-separated subset of {CRITERIA} (the study's, default) and {BEYOND} (beyond "
                            "the study); 'all' for every one, 'study' / 'beyond' for either list")
    group.add_argument("--preset", default="paper", help="method preset: paper (the study's settings) or captum")
    group.add_argument("--method-param", action="append", default=[], metavar="METHOD.KEY=VALUE",
                       help="override one method parameter, e.g. smoothgrad.nt_samples=8 (VALUE is JSON); repeatable")
    group.add_argument("--method-postprocess", action="append", default=[], metavar="METHOD=NAME",
                       help="per-method post-processing: paper, minmax (no 99th-percentile clip: the study's Guided "
                            "GradCAM, XRAI's raw gains) or abs_sum; repeatable")
    group.add_argument("--seed", type=int, default=0, help="weight randomization, sample, noise, pairs (default 0)")
    group.add_argument("--batch-size", type=int, default=defaults.get("batch_size", 8),
                       help="studies per batch (default %(default)s)")
    group.add_argument("--sample-size", type=int, default=defaults.get("sample_size", 100),
                       help="positive studies in the randomization/repeatability/reproducibility sample (default %(default)s)")
    group.add_argument("--granularity", default="blocks", choices=("blocks", "layers"),
                       help="cascading randomization steps (default blocks)")
    group.add_argument("--bn-policy", default="reset", choices=("reset", "keep", "randomize_affine"),
                       help="how BatchNorm layers are randomized (default reset)")
    group.add_argument("--ssim-data-range", type=float, default=2.0,
                       help="SSIM data_range; the study silently used 2 for maps in [0, 1] (default 2)")
    group.add_argument("--n-pairs", type=int, default=50, help="pairs per image, different-image baseline (default 50)")
    group.add_argument("--max-studies", type=int, default=defaults.get("max_studies"),
                       help="evaluate only the first N positive studies (sorted by id)")
    group.add_argument("--study-selection", default="positive", choices=CHOICES["study_selection"],
                       help="positive (the study: label 1, or unlabeled with ground truth) or all images")
    group.add_argument("--localization-baseline", default="average_mask", choices=CHOICES["localization_baseline"],
                       help="what criterion 1 compares with: the average (training) mask, or the same method on "
                            "the fully randomized model (default average_mask)")
    group.add_argument("--target-class", type=int, default=None,
                       help="class explained for every model (default: each model's predicted class)")
    group.add_argument("--consistency-target", default="own_prediction", choices=CHOICES["consistency_target"],
                       help="class the replicate / second architecture explain (default own_prediction)")
    group.add_argument("--randomization-target", default="original_prediction", choices=CHOICES["randomization_target"],
                       help="class a randomized model explains: the trained model's (default) or each state's own "
                            "(the study's released scripts)")
    group.add_argument("--faithfulness-steps", type=int, default=20,
                       help="faithfulness: points of the deletion / insertion curves less one (default 20)")
    group.add_argument("--faithfulness-fill", default="blur", choices=CHOICES["faithfulness_fill"],
                       help="faithfulness: what a removed pixel becomes (default blur: the blurred image)")
    group.add_argument("--faithfulness-batch", type=int, default=32,
                       help="faithfulness: perturbed inputs per forward pass, the memory bound (default 32)")
    group.add_argument("--robustness-noise-sigma", type=float, default=None,
                       help="robustness: noise standard deviation in model-input units (default: each image's own "
                            "noise level, estimated)")
    group.add_argument("--robustness-shift", type=int, default=2,
                       help="robustness: input shift in model-grid pixels along every axis (default 2; 0 = none)")


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("running")
    group.add_argument("--restart", action="store_true",
                       help="delete results of another configuration in --out instead of refusing them")
    group.add_argument("--device", default="auto", help="auto, cpu or cuda (under torchrun: cuda:LOCAL_RANK)")
    group.add_argument("--threads", type=int, default=None,
                       help="torch CPU threads per process (default: all cores / processes on this node)")
    group.add_argument("--no-progress", action="store_true", help="no progress bars")
    group.add_argument("--no-report", action="store_true", help="write results.json/CSV only, no HTML report")
    group.add_argument("--write-dicom", action="store_true",
                       help="also write per study and method a Parametric Map and a SEG, and the scorecard SR, "
                            "in each DICOM study (OUT/dicom/<study>/)")
    group.add_argument("--push", metavar="URL",
                       help="with --write-dicom: store them to this DICOMweb server (e.g. the PACS the studies came "
                            "from; credentials as for --cohort)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of ``saliency-trust evaluate`` (no torch import here)."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = __doc__.split("Examples::", 1)[1]
    parser.add_argument("--cohort", required=True,
                        help="datalist JSON/CSV, a folder with datalist.json, a folder of DICOM studies, or a DICOMweb URL")
    parser.add_argument("--ground-truth", help="folder of <study id>.<ext> masks (NIfTI/NRRD/DICOM SEG) or an RSNA boxes CSV")
    parser.add_argument("--labels", help="CSV case_id,label (1 = abnormal); default: from the datalist or the ground truth")
    parser.add_argument("--split", default="test", help="datalist split to evaluate (default test)")
    parser.add_argument("--out", required=True, help="results folder (created; re-use it to resume)")
    add_model_arguments(parser)
    add_preprocessing_arguments(parser)
    add_setting_arguments(parser)
    add_run_arguments(parser)


def parse_method_params(items) -> Dict[str, Dict[str, Any]]:
    """``["smoothgrad.nt_samples=8"]`` -> ``{"smoothgrad": {"nt_samples": 8}}`` (values as JSON)."""
    params: Dict[str, Dict[str, Any]] = {}
    for item in items:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"--method-param {item!r}: write METHOD.KEY=VALUE, e.g. smoothgrad.nt_samples=8.")
        name, value = item.split("=", 1)
        method, key = name.split(".", 1)
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            parsed = value
        params.setdefault(method, {})[key] = parsed
    return params


def settings_from_args(args: argparse.Namespace, extra_params: Dict[str, Dict[str, Any]] | None = None,
                       preprocessing=None):
    """The settings the arguments give (``preprocessing``: see
    :func:`SaliencyTrustLib.cli_options.preprocessing_from_args`)."""
    from .settings import EvaluationSettings

    params = {k: dict(v) for k, v in (extra_params or {}).items()}
    for method, values in parse_method_params(args.method_param).items():
        params.setdefault(method, {}).update(values)
    methods = tuple(m.strip() for m in args.methods.split(",") if m.strip())
    unknown = sorted(set(params) - set(methods))
    if unknown:
        raise ValueError(f"--method-param names methods not in --methods: {unknown}.")
    from ..saliency import available_methods

    wrong = sorted(set(methods) - set(available_methods()))
    if wrong:
        raise ValueError(f"--methods: unknown method(s) {wrong}; choose among {available_methods()}.")
    return EvaluationSettings(
        methods=methods, preset=args.preset, method_params={m: params[m] for m in sorted(params)},
        criteria=parse_criteria(args.criteria), seed=args.seed,
        batch_size=args.batch_size, sample_size=args.sample_size,
        preprocessing=preprocessing if preprocessing is not None else preprocessing_from_args(args),
        cascade_granularity=args.granularity, bn_policy=args.bn_policy, ssim_data_range=args.ssim_data_range,
        n_pairs=args.n_pairs, max_studies=args.max_studies, study_selection=args.study_selection,
        localization_baseline=args.localization_baseline, target_class=args.target_class,
        consistency_target=args.consistency_target, randomization_target=args.randomization_target,
        method_postprocess=_method_postprocess(args.method_postprocess),
        faithfulness_steps=args.faithfulness_steps, faithfulness_fill=args.faithfulness_fill,
        faithfulness_batch=args.faithfulness_batch, robustness_noise_sigma=args.robustness_noise_sigma,
        robustness_shift=args.robustness_shift)


def parse_criteria(text: str) -> tuple:
    """``--criteria``: names, or ``all`` / ``study`` / ``beyond`` for the lists (combinable)."""
    groups = {"all": f"{CRITERIA},{BEYOND}", "study": CRITERIA, "beyond": BEYOND}
    names = []
    for item in (c.strip() for c in text.split(",") if c.strip()):
        for name in groups.get(item, item).split(","):
            if name not in names:
                names.append(name)
    return tuple(names)


def _method_postprocess(items) -> Dict[str, str]:
    """``["guided_gradcam=minmax"]`` -> ``{"guided_gradcam": "minmax"}``."""
    for item in items:
        if "=" not in item:
            raise ValueError(f"--method-postprocess {item!r}: write METHOD=NAME, e.g. guided_gradcam=minmax.")
    return dict(item.split("=", 1) for item in items)


def configure_threads(threads: int | None) -> None:
    """Use every core of the node, split between the processes torchrun started on it."""
    import torch

    if threads is None:
        local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
        threads = max(1, (os.cpu_count() or 1) // max(1, local))
    torch.set_num_threads(threads)


def run(args: argparse.Namespace) -> int:
    """Evaluate; print the report's path and a one-screen summary (rank 0). Every bad input is one
    line on stderr and a non-zero exit."""
    from ..io.errors import InputError
    from .fingerprint import ConfigurationChangedError
    from .runner import evaluate_cohort
    from .sources import load_cohort
    from .summary import summary_text

    if args.push and not args.write_dicom:
        print("saliency-trust evaluate: --push stores the DICOM results: add --write-dicom.", file=sys.stderr)
        return 2
    try:
        models = models_from_args(args)
        settings = settings_from_args(args)
        cohort = load_cohort(args.cohort, ground_truth=args.ground_truth, labels=args.labels, split=args.split)
    except (ValueError, FileNotFoundError) as error:
        print(f"saliency-trust evaluate: {error}", file=sys.stderr)
        return 2
    configure_threads(args.threads)
    try:
        results = evaluate_cohort(cohort, models, settings, args.out, restart=args.restart, device=args.device,
                                  progress=not args.no_progress)
    except (ConfigurationChangedError, InputError) as error:
        print(f"saliency-trust evaluate: {error}", file=sys.stderr)
        return 3
    if results is None:  # not rank 0
        return 0
    report = None
    if not args.no_report:
        from ..report import write_report

        report = write_report(args.out, results)
    print(summary_text(results, args.out, report))
    if args.write_dicom:
        from .dicom_results import write_dicom_results

        outputs = write_dicom_results(args.out, results, cohort, push=args.push)
        written = [s for s, o in outputs.items() if "files" in o]
        print(f"DICOM: {len(written)} of {len(outputs)} studies written to {args.out}/dicom"
              + (f", stored to {outputs[written[0]]['server']}" if written and args.push else ""))
        for study_id, entry in outputs.items():
            if "files" not in entry:
                print(f"  {study_id}: {entry.get('skipped') or entry.get('error')}", file=sys.stderr)
    return 0 if results["cohort"]["n_units_stored"] else 4
