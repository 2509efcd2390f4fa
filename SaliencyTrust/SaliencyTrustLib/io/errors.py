"""The one error type of :mod:`SaliencyTrustLib.io`: bad input named with its file and its fix."""

from __future__ import annotations

import os
from typing import Optional, Union


class InputError(ValueError):
    """Input that cannot be used, raised with the file (or argument) it came from and a fix.

    ``str(error)`` reads ``"<path>: <reason> Fix: <fix>"``; the parts stay available as
    ``error.path`` (str or None), ``error.reason`` and ``error.fix`` so front ends (CLI, Slicer
    dialog, cohort report) can show them separately.
    """

    def __init__(self, path: Optional[Union[str, os.PathLike]], reason: str,
                 fix: Optional[str] = None) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        self.fix = fix
        message = reason if self.path is None else f"{self.path}: {reason}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)


class InputWarning(UserWarning):
    """Input that was used but not as it came (a gantry tilt resampled, a duplicate file dropped...).

    Readers also keep the text of each warning in ``volume.metadata["warnings"]``.
    """
