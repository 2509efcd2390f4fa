"""Paths built from values that a PACS, a datalist or a file supplies, kept inside their folder.

A StudyInstanceUID, a SOPInstanceUID or a datalist ``case_id`` is text someone else chose. Joined
into a path as it is, ``../../x`` or ``/etc/x`` writes, renames or deletes outside the output
folder. Every such path is built here:

* :func:`validate_uid` for DICOM UIDs (PS3.5 9.1: digits and dots, at most 64 characters);
* :func:`safe_name` for free text used as a file name (a case id): kept when it is already a plain
  name, otherwise made one and suffixed with a hash of the original, so two ids never share a name;
* :func:`child_path` joins name components under a root and checks, after resolving symbolic
  links, that the result lies inside the root; :func:`remove_child` deletes such a path.

Each raises :class:`~SaliencyTrustLib.io.errors.InputError` naming the value (``repr``, so control
characters show) and where it came from.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path, PureWindowsPath
from typing import Any, Optional, Union

from .errors import InputError

PathLike = Union[str, os.PathLike]

#: Longest UID the standard allows (PS3.5 9.1).
MAX_UID_LENGTH = 64
#: Components of digits separated by single dots. Leading zeros in a component break PS3.5 but are
#: common in archives and harmless in a path, so they are accepted.
_UID_PATTERN = re.compile(r"[0-9]+(\.[0-9]+)*")
#: A name that is safe as it is: ASCII letters, digits, ``-``, ``_``, ``.``; no leading dot.
_PLAIN_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
#: Characters that separate path components on some platform, and NUL.
_SEPARATORS = ("/", "\\", "\x00")


def is_valid_uid(value: Any) -> bool:
    """True when ``value`` is a str of digits and dots (no empty component), 1..64 characters."""
    return isinstance(value, str) and 0 < len(value) <= MAX_UID_LENGTH \
        and _UID_PATTERN.fullmatch(value) is not None


def validate_uid(value: Any, what: str = "UID", source: Optional[PathLike] = None) -> str:
    """``value`` as a str when it is a valid DICOM UID (see :func:`is_valid_uid`), else InputError.

    Args:
        value: the UID (a ``pydicom.uid.UID`` is a str; None or another type is refused).
        what: the attribute, named in the error (``"SeriesInstanceUID"``).
        source: where the value came from (a file, a server URL with its password masked), named
            as the error's path.

    Returns:
        ``str(value)``, safe as one path component.
    """
    if is_valid_uid(value):
        return str(value)
    shown = repr(value if not isinstance(value, str) or len(value) <= 80 else value[:80] + "...")
    raise InputError(source, f"{what} {shown} is not a DICOM UID (digits and dots, at most "
                     f"{MAX_UID_LENGTH} characters); it is not used to build a path.",
                     "Correct the UID at its source (the PACS or the file); a value like this is "
                     "either corrupt or crafted to write outside the output folder.")


def safe_name(value: Any, max_length: int = 80) -> str:
    """A file-name component for free text (a case id, a study id).

    Plain names (ASCII letters, digits, ``-``, ``_``, ``.``, not starting with a dot, at most
    ``max_length`` characters) are returned unchanged. Any other text becomes its plain characters
    (others replaced by ``_``, leading dots dropped, cut to fit) followed by ``-`` and the first 12
    hex digits of the SHA-256 of the original, so distinct ids keep distinct names.

    Examples: ``"cxr-0-0001"`` -> ``"cxr-0-0001"``; ``"../../../x"`` -> ``"x-0274b71897ca"``;
    ``".."`` -> ``"5ec1f7e700f3"``.
    """
    text = str(value)
    if len(text) <= max_length and _PLAIN_NAME.fullmatch(text) and text not in (".", ".."):
        return text
    digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", text).lstrip("._")[: max(max_length - 13, 1)]
    return f"{stem}-{digest}" if stem else digest


def _check_component(part: Any, root: Path) -> str:
    text = os.fspath(part) if isinstance(part, os.PathLike) else part
    if not isinstance(text, str):
        raise InputError(root, f"path component {part!r} is a {type(part).__name__}, not text.",
                         "Pass names as str.")
    reason = None
    if text in ("", ".", ".."):
        reason = "is empty or a reference to the current or parent folder"
    elif any(sep in text for sep in _SEPARATORS):
        reason = "holds a path separator or NUL"
    elif os.path.isabs(text) or PureWindowsPath(text).anchor:
        reason = "is an absolute path"
    if reason:
        shown = repr(text if len(text) <= 80 else text[:80] + "...")
        raise InputError(root, f"refused to build a path from {shown}: it {reason}, so it could "
                         "lead outside this folder.",
                         "Use a plain name (validate_uid for UIDs, safe_name for free text).")
    return text


def child_path(root: PathLike, *parts: Any) -> Path:
    """``root / part1 / part2 ...``, guaranteed to lie inside ``root``.

    Each part must be one name component: not empty, not ``.`` or ``..``, without ``/``, ``\\`` or
    NUL, not absolute (a Windows drive counts). The joined path is then resolved (symbolic links
    followed, as far as they exist) and must still be inside the resolved ``root``; this also
    refuses a link planted inside ``root`` that points elsewhere.

    Args:
        root: the folder that must contain the result (need not exist yet).
        *parts: name components (str or path-like), e.g. validated UIDs and a file name.

    Returns:
        The joined path, ``root`` kept as given (not resolved), so messages show what the user
        passed.

    Raises:
        InputError: a part is not one safe component, or the result resolves outside ``root``.
    """
    root = Path(root)
    names = [_check_component(part, root) for part in parts]
    path = root.joinpath(*names)
    real_root = root.resolve()
    real_path = path.resolve()
    if real_path != real_root and real_root not in real_path.parents:
        raise InputError(path, f"resolves to {real_path}, outside {real_root} (a symbolic link?).",
                         "Remove the link, or choose an output folder without links in it.")
    return path


def remove_child(root: PathLike, *parts: Any) -> bool:
    """Delete ``child_path(root, *parts)`` (a file, or a folder and its content) if it exists.

    A symbolic link is removed itself, never followed. Returns True when something was removed.
    """
    path = child_path(root, *parts) if parts else None
    if path is None:
        raise InputError(root, "remove_child needs at least one component below the root.",
                         "Name the child to remove; the root itself is never removed.")
    if path.is_symlink() or path.is_file():
        path.unlink()
        return True
    if path.is_dir():
        shutil.rmtree(path)
        return True
    return False
