"""The fuzz harness (fuzz/fuzz_readers.py) runs briefly in CI and finds nothing.

The long measurement (20,000 runs per reader) is described in docs/robust-input.md; here the
harness runs 2,000 inputs through both readers, instrumenting only SaliencyTrustLib so that it
starts fast, bounded by libFuzzer's -max_total_time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ = ROOT / "fuzz"


def _environment() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "SaliencyTrust"), env.get("PYTHONPATH", "")])
    env["RUST_BACKTRACE"] = "0"          # a Rust panic (caught) would print a long backtrace
    return env


@pytest.mark.slow
def test_a_brief_fuzz_of_both_readers_finds_nothing(tmp_path):
    report = tmp_path / "report.json"
    (tmp_path / "corpus").mkdir()
    command = [sys.executable, str(FUZZ / "fuzz_readers.py"), "--instrument", "SaliencyTrustLib",
               "--reader", "both", "--report", str(report), "-runs=2000", "-seed=1",
               "-max_total_time=25", "-rss_limit_mb=3072", str(tmp_path / "corpus"), str(FUZZ / "corpus")]
    done = subprocess.run(command, cwd=tmp_path, env=_environment(), capture_output=True, text=True,
                          timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    tally = json.loads(report.read_text())
    assert tally["findings"] == 0, json.dumps(tally["sites"], indent=1)
    assert tally["runs"] >= 500, tally
    outcomes = tally["outcomes"]
    assert outcomes.get("image:ok", 0) > 0 and outcomes.get("ground_truth:ok", 0) > 0
    assert outcomes.get("image:InputError", 0) > 0 and outcomes.get("ground_truth:InputError", 0) > 0
    assert not list(tmp_path.glob("crash-*"))


def test_the_harness_counts_other_exceptions_unexpected_errors_and_broken_contracts(tmp_path):
    """The harness itself can fail: a reader that raises ValueError, one whose InputError is
    marked unexpected, and one that returns a NaN image are each counted as a finding."""
    script = textwrap.dedent(f"""
        import json, sys
        sys.argv = ["fuzz_readers.py", "--instrument", "SaliencyTrustLib"]
        sys.path.insert(0, {str(FUZZ)!r})
        from pathlib import Path
        import numpy as np
        import fuzz_readers as harness
        from SaliencyTrustLib.image import ImageVolume
        from SaliencyTrustLib.io import InputError

        def boom(path):
            raise ValueError("boom")

        def unexpected(path):
            try:
                raise KeyError("k")
            except KeyError as error:     # as the readers' last line of defence does
                raise InputError.from_unexpected(path, error) from error

        def nan_image(path):
            return ImageVolume(np.full((1, 2, 2), np.nan, np.float32))

        def fine(path):
            raise InputError(path, "is refused.", "Fix it.")

        work = Path({str(tmp_path)!r}) / "work"
        work.mkdir()
        tally = harness.Tally(Path({str(tmp_path)!r}) / "report.json")
        for reader in (boom, unexpected, nan_image, fine):
            harness.read_image = reader
            harness.make_target(("image",), [], work, tally, False, -1)(b"\\x00" * 200)
        tally.write()
        print(json.dumps(tally.sites))
    """)
    done = subprocess.run([sys.executable, "-c", script], env=_environment(), capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    sites = json.loads(done.stdout.strip().splitlines()[-1])
    assert {site.split(" @ ")[0] for site in sites} == {"image: ValueError", "image: KeyError",
                                                       "image: contract broken"}
    assert sites["image: contract broken"]["messages"] == ["image with NaN or inf voxels"]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["findings"] == 3 and report["outcomes"]["image:InputError"] == 1
    kept = {name for site in report["sites"].values() for name in site["inputs"]}
    assert kept and all((tmp_path / "report-findings" / name).read_bytes() == b"\x00" * 200 for name in kept)
    assert any(", in boom" in site["trace"] for site in report["sites"].values())
