"""The one error type of :mod:`SaliencyTrustLib.io`: bad input named with its file and its fix."""

from __future__ import annotations

import os
from typing import Optional, Union


class InputError(ValueError):
    """Input that cannot be used, raised with the file (or argument) it came from and a fix.

    ``str(error)`` reads ``"<path>: <reason> Fix: <fix>"``; the parts stay available as
    ``error.path`` (str or None), ``error.reason`` and ``error.fix`` so front ends (CLI, Slicer
    dialog, cohort report) can show them separately.

    ``error.unexpected`` is True for an error that no check of the readers anticipated (see
    :meth:`from_unexpected`): the input is still refused with one clear line, and tests and the fuzz
    harness count such errors as bugs.
    """

    def __init__(self, path: Optional[Union[str, os.PathLike]], reason: str,
                 fix: Optional[str] = None, *, unexpected: bool = False) -> None:
        self.path = None if path is None else os.fspath(path)
        self.reason = reason
        self.fix = fix
        self.unexpected = bool(unexpected)
        message = reason if self.path is None else f"{self.path}: {reason}"
        if fix:
            message += f" Fix: {fix}"
        super().__init__(message)

    @classmethod
    def from_unexpected(cls, path: Optional[Union[str, os.PathLike]], error: BaseException) -> "InputError":
        """The last line of defence of the public readers (``read_image``, ``read_ground_truth``):
        an exception that escaped every check, as an InputError keeping its type and message.

        Raise it ``from error`` so the traceback stays available for the bug report.
        """
        return cls(path, f"could not be read: unexpected {type(error).__name__}: {error}",
                   "This input is refused, but the error was not anticipated: please report it "
                   "with the file (it is a bug in SaliencyTrust or a library it uses).",
                   unexpected=True)


class InputWarning(UserWarning):
    """Input that was used but not as it came (a gantry tilt resampled, a duplicate file dropped...).

    Readers also keep the text of each warning in ``volume.metadata["warnings"]``.
    """
