"""The criteria beyond the study on synthetic cohorts whose answer is known: prints every verdict.

Run:  python benchmarks/check_beyond_study.py [--out DIR] [--size 64] [--n 200]

1. Two 200-image cohorts with a burned-in marker (``saliency-trust synth --shortcut``): in one the
   marker follows the label in training (``shortcut``), in the other it is independent of it
   (``marker-blind``). A tiny classifier is trained on each (``Testing/support/shortcut_models.py``);
   both are evaluated on the shortcut cohort's held-out split, every image, criterion ``shortcut``.
2. A plain cohort, a classifier and one trained on permuted labels: ``data_randomization``,
   ``faithfulness`` and ``robustness`` on its held-out split.

The same set-up as ``Testing/cohort/test_cohort_beyond_study.py`` (one torch thread), so the
printed verdicts are the ones the tests assert.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Testing"))


def _table(results, criteria) -> str:
    lines = [f"{'method':<22}{'criterion':<20}{'value':>8}{'baseline':>10}  verdict"]
    for row in results["scorecard"]["rows"]:
        if row["criterion"] not in criteria:
            continue
        verdict = {True: "pass", False: "fail", None: "undecided"}[row["passed"]]
        value = "n/a" if row["value"] is None else f"{row['value']:.3f}"
        base = "n/a" if row["baseline"] is None else f"{row['baseline']:.3f}"
        lines.append(f"{row['method']:<22}{row['criterion']:<20}{value:>8}{base:>10}  {verdict}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--n", type=int, default=200)
    args = parser.parse_args()
    import torch

    from SaliencyTrustLib.cohort import EvaluationSettings, StudyModels, evaluate_cohort, load_cohort
    from SaliencyTrustLib.io.synth import write_synthetic_cohort
    from SaliencyTrustLib.preprocessing import Preprocessing
    from SaliencyTrustLib.synthetic_shortcut import ShortcutSettings
    from support.shortcut_models import train_tiny_classifier

    torch.set_num_threads(1)
    root = Path(args.out or tempfile.mkdtemp(prefix="beyond-"))
    started = time.perf_counter()

    def settings(**values):
        return EvaluationSettings(methods=("gradient", "gradcam"), sample_size=40, batch_size=20, n_pairs=10,
                                  study_selection="all",
                                  preprocessing=Preprocessing(in_channels=1, input_size=args.size), **values)

    models = {}
    for name, correlation in (("shortcut", 1.0), ("marker-blind", 0.5)):
        write_synthetic_cohort(root / name, n=args.n, seed=0, size=args.size, write_seg=False,
                               shortcut=ShortcutSettings(correlation=correlation))
        torch.manual_seed(0)
        models[name] = train_tiny_classifier(root / name, "training", size=args.size, epochs=10, seed=0)
    held_out = load_cohort(str(root / "shortcut"), split="test")
    for name, model in models.items():
        results = evaluate_cohort(held_out, StudyModels(original=model), settings(criteria=("shortcut",)),
                                  root / f"out-{name}", progress=False, restart=True)
        reliance = results["shortcut"]["model_reliance"]
        print(f"\n== shortcut: model trained with the marker {'following' if name == 'shortcut' else 'independent of'} "
              f"the label; predicts class 1 on {reliance['positive_rate_with_marker']['rate']:.2f} of "
              f"{reliance['positive_rate_with_marker']['n']} marked and {reliance['positive_rate_without_marker']['rate']:.2f} "
              f"of {reliance['positive_rate_without_marker']['n']} unmarked held-out images")
        print(_table(results, ("shortcut",)))

    write_synthetic_cohort(root / "plain", n=args.n, seed=1, size=args.size, write_seg=False)
    torch.manual_seed(0)
    trained = train_tiny_classifier(root / "plain", "training", size=args.size, epochs=10, seed=0)
    permuted = train_tiny_classifier(root / "plain", "training", size=args.size, epochs=10, seed=0, permute_labels=True)
    beyond = ("data_randomization", "faithfulness", "robustness")
    results = evaluate_cohort(load_cohort(str(root / "plain"), split="test"),
                              StudyModels(original=trained, label_randomized=permuted), settings(criteria=beyond),
                              root / "out-plain", progress=False, restart=True)
    print(f"\n== data randomization, faithfulness, robustness: trained classifier, {results['cohort']['n_sample']} "
          "held-out images")
    print(_table(results, beyond))
    print(f"\nfinished in {time.perf_counter() - started:.0f} s; results under {root}")


if __name__ == "__main__":
    main()
