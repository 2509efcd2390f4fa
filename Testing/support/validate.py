"""Run the DICOM validator ``dciodvfy`` (Debian package ``dicom3tools``) on a written object."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from typing import List


class ValidatorNotInstalled(RuntimeError):
    """``dciodvfy`` is missing: install dicom3tools (``make system-deps``)."""


@dataclass
class ValidationReport:
    """What ``dciodvfy`` said: the IOD it recognized, its ``Error`` and ``Warning`` lines."""

    iod: str
    errors: List[str] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    output: str = ""


def dciodvfy(path: os.PathLike) -> ValidationReport:
    """Validate one DICOM file against its IOD (PS3.3) with ``dciodvfy``."""
    executable = shutil.which("dciodvfy")
    if executable is None:
        raise ValidatorNotInstalled("dciodvfy was not found: install the Debian package dicom3tools "
                                    "(`make system-deps`).")
    completed = subprocess.run([executable, os.fspath(path)], capture_output=True, text=True,
                               timeout=60)
    output = completed.stdout + completed.stderr
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    return ValidationReport(
        iod=lines[0] if lines else "",
        errors=[line for line in lines if line.startswith("Error")],
        warnings=[line for line in lines if line.startswith("Warning")],
        output=output,
    )
