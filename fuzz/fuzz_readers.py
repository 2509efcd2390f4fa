"""Coverage-guided fuzzing (atheris / libFuzzer) of ``read_image`` and ``read_ground_truth``.

The contract under test (docs/robust-input.md): for any bytes, each reader returns a usable result
(a finite image; a bool mask of the reference's shape) or raises :class:`InputError`. Anything else
is a *finding*: another exception type, an InputError marked ``unexpected`` (the readers' last line
of defence caught an exception no check anticipated), or a result that breaks the contract (NaN /
inf voxels, wrong mask shape or type).

Usage, from the repository root (``-runs``, ``-seed``, ``-max_total_time`` ... are libFuzzer's)::

    python fuzz/fuzz_readers.py -runs=2000 -seed=1                    # both readers
    python fuzz/fuzz_readers.py --reader image -runs=20000 -seed=1
    python fuzz/fuzz_readers.py --reader ground_truth -runs=20000 -seed=1 --report out.json
    python fuzz/fuzz_readers.py --stop-on-finding -runs=100000        # keep the crashing input

Options of the harness itself (taken out of the command line before libFuzzer sees it):

``--reader image|ground_truth|both`` (default both), ``--report FILE`` (JSON tally, rewritten as the
run goes: libFuzzer ends the process without running Python's exit handlers; the first inputs of
each finding are kept whole in ``FILE``'s folder, under ``<FILE stem>-findings/``), ``--instrument
PKG,PKG`` (packages instrumented for coverage; default ``SaliencyTrustLib,pydicom,highdicom``;
the CI test uses ``SaliencyTrustLib`` alone to start fast),
``--stop-on-finding`` (re-raise the first finding, so libFuzzer writes ``crash-<sha1>``; by default
findings are counted and the run goes on, so one run measures them all).

Positional arguments are libFuzzer corpus folders. Without any, a fresh temporary folder (where
libFuzzer writes the inputs it finds interesting; its path is printed, and it is left for you to
look at or delete) and the seed corpus ``fuzz/corpus`` are used, so the repository's corpus is
never written to. Each input is written to a file whose name ending
follows its content (gzip -> ``.nii.gz``, NIfTI-1 magic -> ``.nii``, ``NRRD`` -> ``.nrrd``, a CSV
header of the RSNA / SIIM layouts -> ``.csv``, anything else -> ``.dcm``), since both readers
dispatch on it. Ground truth is read against the two references in ``fuzz/reference/`` (a 2D CR,
a 3-frame enhanced CT).

The fuzzed process lowers :data:`SaliencyTrustLib.io.dicom_checks.MAX_DECODED_BYTES` to 64 MiB
so that a header claiming a huge matrix is refused before any allocation (the limit is part of
what is tested).
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _folder in (ROOT / "SaliencyTrust", HERE):
    if str(_folder) not in sys.path:
        sys.path.insert(0, str(_folder))

import atheris  # noqa: E402

#: Packages whose code atheris instruments for coverage (``--instrument`` changes it: instrumenting
#: pydicom and highdicom guides the mutations deeper but costs ~8 s at start and slows each run).
DEFAULT_INSTRUMENTED = "SaliencyTrustLib,pydicom,highdicom"


def _instrumented_packages(argv) -> list:
    for index, arg in enumerate(argv):
        if arg.startswith("--instrument="):
            return [p for p in arg.split("=", 1)[1].split(",") if p]
        if arg == "--instrument" and index + 1 < len(argv):
            return [p for p in argv[index + 1].split(",") if p]
    return DEFAULT_INSTRUMENTED.split(",")


# Imported inside the block so that their code is instrumented (coverage guides the mutations).
with atheris.instrument_imports(include=_instrumented_packages(sys.argv) or ["SaliencyTrustLib"]):
    import highdicom.seg  # noqa: F401
    import highdicom.sr  # noqa: F401
    import pydicom.pixels  # noqa: F401

    from SaliencyTrustLib.io import dicom_read, ground_truth, volumes  # noqa: F401
    from SaliencyTrustLib.io import InputError, read_ground_truth, read_image

from contract import check_image, check_mask, sniff_suffix  # noqa: E402

FINDING_EXAMPLES = 3        # inputs kept per finding site (files beside the report, tracebacks)


class Tally:
    """Outcomes per reader, findings per site, written to ``report`` as the run goes."""

    def __init__(self, report: Path | None) -> None:
        self.report = report
        # the first inputs of each finding site, whole, so that a finding can be replayed
        self.kept = None if report is None else report.with_name(report.stem + "-findings")
        self.runs = 0
        self.outcomes = collections.Counter()
        self.sites: dict = {}
        self.started = time.monotonic()

    def finding(self, reader: str, site: str, message: str, data: bytes, trace: str = "") -> None:
        entry = self.sites.setdefault(f"{reader}: {site}", {"count": 0, "messages": [], "inputs": [],
                                                            "trace": trace})
        entry["count"] += 1
        if len(entry["inputs"]) < FINDING_EXAMPLES:
            entry["messages"].append(message)
            name = f"{hashlib.sha1(data).hexdigest()[:16]}{sniff_suffix(data)}"
            if self.kept is not None:
                self.kept.mkdir(exist_ok=True)
                (self.kept / name).write_bytes(data)
            entry["inputs"].append(name)
        self.outcomes[f"{reader}:finding"] += 1
        if entry["count"] == 1:
            print(f"\nFINDING {reader}: {site}: {message}", file=sys.stderr, flush=True)
            self.write()

    def write(self) -> None:
        if self.report is None:
            return
        payload = {"runs": self.runs, "seconds": round(time.monotonic() - self.started, 1),
                   "outcomes": dict(self.outcomes),
                   "findings": sum(v["count"] for v in self.sites.values()),
                   "sites": dict(sorted(self.sites.items(), key=lambda kv: -kv[1]["count"]))}
        tmp = self.report.with_name(self.report.name + ".tmp")
        tmp.write_text(json.dumps(payload, indent=1) + "\n")
        os.replace(tmp, self.report)


def _site(error: BaseException) -> tuple:
    """(``Type @ file:line`` of the innermost frame, the message's first line, the last frames
    of the traceback): findings are grouped by the first; the others are kept as examples."""
    frames = traceback.extract_tb(error.__traceback__) if error.__traceback__ else []
    where = f" @ {Path(frames[-1].filename).name}:{frames[-1].lineno}" if frames else ""
    lines = str(error).splitlines()
    trace = "".join(traceback.format_list(frames[-8:]))
    return f"{type(error).__name__}{where}", (lines[0][:200] if lines else ""), trace


def make_target(readers, references, workdir: Path, tally: Tally, stop_on_finding: bool, runs: int):
    def run_one(reader: str, call, check, data: bytes) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = call()
        except InputError as error:
            if error.unexpected:   # the readers' last line of defence caught it: still a bug
                site, message, trace = _site(error.__cause__ or error)
                tally.finding(reader, site, message, data, trace)
                if stop_on_finding:
                    raise
            elif not str(error):
                tally.finding(reader, "InputError with an empty message", "", data)
            else:
                tally.outcomes[f"{reader}:InputError"] += 1
            return
        except KeyboardInterrupt:
            raise
        except BaseException as error:  # noqa: BLE001 - every other type is a finding, even a
            # BaseException: a Rust decoder's panic reaches Python as pyo3's PanicException.
            site, message, trace = _site(error)
            tally.finding(reader, site, message, data, trace)
            if stop_on_finding:
                raise
            return
        problem = check(result)
        if problem:
            tally.finding(reader, "contract broken", problem, data)
            if stop_on_finding:
                raise AssertionError(problem)
        else:
            tally.outcomes[f"{reader}:ok"] += 1

    def target(data: bytes) -> None:
        tally.runs += 1
        path = workdir / f"input{sniff_suffix(data)}"
        for stale in workdir.iterdir():
            stale.unlink()
        path.write_bytes(data)
        if "image" in readers:
            run_one("image", lambda: read_image(path), check_image, data)
        if "ground_truth" in readers:
            for reference in references:
                run_one("ground_truth", lambda: read_ground_truth(path, reference),
                        lambda mask: check_mask(mask, reference), data)
        if tally.runs % 50 == 0 or tally.runs == runs:
            tally.write()

    return target


def main(argv=None) -> None:
    argv = list(sys.argv if argv is None else argv)
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--reader", choices=("image", "ground_truth", "both"), default="both")
    parser.add_argument("--report", type=Path, default=None)
    parser.add_argument("--stop-on-finding", action="store_true")
    parser.add_argument("--instrument", default=DEFAULT_INSTRUMENTED)   # read before the imports
    parser.add_argument("--help", action="store_true")
    own, rest = parser.parse_known_args(argv[1:])
    if own.help:
        print(__doc__)
        return
    from SaliencyTrustLib.io import dicom_checks

    dicom_checks.MAX_DECODED_BYTES = 64 * 1024 ** 2
    readers = ("image", "ground_truth") if own.reader == "both" else (own.reader,)
    runs = next((int(a.split("=", 1)[1]) for a in rest if a.startswith("-runs=")), -1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        references = [read_image(HERE / "reference" / "cr.dcm"),
                      read_image(HERE / "reference" / "ct_enhanced.dcm")]
    scratch = Path(tempfile.mkdtemp(prefix="fuzz-readers-"))
    workdir = scratch / "input"
    workdir.mkdir()
    corpus_dirs = [a for a in rest if not a.startswith("-")]
    flags = [a for a in rest if a.startswith("-")]
    if not corpus_dirs:
        (scratch / "corpus").mkdir()
        corpus_dirs = [str(scratch / "corpus"), str(HERE / "corpus")]
    tally = Tally(own.report)
    print(f"fuzzing {', '.join(readers)}; corpus {' '.join(corpus_dirs)}; report {own.report or 'none'}",
          file=sys.stderr, flush=True)
    try:
        atheris.Setup([argv[0], *flags, *corpus_dirs],
                      make_target(readers, references, workdir, tally, own.stop_on_finding, runs))
        atheris.Fuzz()
    finally:   # reached only when a finding is re-raised (libFuzzer exits on its own otherwise)
        tally.write()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
