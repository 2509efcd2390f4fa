"""Helpers of the cohort tests: the tiny run's command line, subprocess runs, store inspection."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Dict, List


def evaluate_command(tiny: Dict[str, Path], out: Path, *extra: str) -> List[str]:
    """The ``saliency-trust evaluate`` arguments of the tiny run (2 methods, 8 positives)."""
    models = tiny["models"]
    return ["evaluate", "--cohort", str(tiny["cohort"]), "--split", "test", "--out", str(out),
            "--model", str(models / "a.pt"), "--replicate", str(models / "b.pt"),
            "--second-arch", str(models / "c.pt"), "--methods", "gradient,smoothgrad",
            "--method-param", "smoothgrad.nt_samples=3", "--input-size", "32", "--batch-size", "2",
            "--sample-size", "5", "--n-pairs", "4", "--device", "cpu", "--threads", "1", "--no-progress", *extra]


def subprocess_env() -> Dict[str, str]:
    env = dict(os.environ)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg", "PYTHONHASHSEED": "0"})
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(name, None)
    return env


def run_cli(args: List[str], **kwargs) -> subprocess.CompletedProcess:
    """``python -m SaliencyTrustLib ARGS`` in a fresh process (as a user runs it)."""
    return subprocess.run([sys.executable, "-m", "SaliencyTrustLib", *args], env=subprocess_env(),
                          capture_output=True, text=True, **kwargs)


def stored_unit_count(out: Path) -> int:
    """Units committed so far over every rank's database (read-only; safe while a run writes)."""
    total = 0
    for path in sorted((out / "store").glob("units-rank*.sqlite")):
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
            total += db.execute("SELECT COUNT(*) FROM units").fetchone()[0]
            db.close()
        except sqlite3.OperationalError:  # the table is not created yet
            pass
    return total


def map_files(out: Path) -> Dict[str, bytes]:
    """Every stored map, by relative path, as bytes (for bit-exact comparisons)."""
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted((out / "maps").rglob("*.npy"))}
