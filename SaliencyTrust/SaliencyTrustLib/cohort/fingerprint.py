"""Configuration fingerprint: one hash of every parameter that changes a number in the results.

A results store records the fingerprint (and the configuration it came from) when it is created.
Re-running a command against the same store is allowed only with the same fingerprint, so results
of two configurations are never mixed. Parameters that do not change any number (output folder,
number of processes, progress bars, thread count) must stay out of the configuration.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Union

PathLike = Union[str, Path]


def canonical_json(config: Mapping[str, Any]) -> str:
    """Serialize ``config`` deterministically (sorted keys, no whitespace, floats as ``repr``).

    Raises:
        TypeError: when a value is not JSON-serializable (tuples become lists, paths strings).
    """
    return json.dumps(_plain(config), sort_keys=True, separators=(",", ":"), allow_nan=True)


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 (hex, 64 characters) of :func:`canonical_json` of ``config``."""
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()


def file_sha256(path: PathLike, chunk_bytes: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (model weights enter the fingerprint by content, not by name)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(chunk_bytes), b""):
            digest.update(block)
    return digest.hexdigest()


def config_differences(old: Mapping[str, Any], new: Mapping[str, Any], prefix: str = "") -> List[str]:
    """Dotted names of the keys whose values differ between two configurations (for messages)."""
    old_plain, new_plain = _plain(old), _plain(new)
    names: List[str] = []
    for key in sorted(set(old_plain) | set(new_plain)):
        a, b = old_plain.get(key, "<absent>"), new_plain.get(key, "<absent>")
        name = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            names.extend(config_differences(a, b, prefix=name + "."))
        elif a != b:
            names.append(name)
    return names


class ConfigurationChangedError(RuntimeError):
    """The results folder holds results of another configuration; mixing them is refused."""


def describe_change(store_path: PathLike, old: Dict[str, Any], new: Dict[str, Any]) -> str:
    """The message of :class:`ConfigurationChangedError`: which keys changed and the two fixes."""
    changed = config_differences(old, new)
    shown = ", ".join(changed[:12]) + (" ..." if len(changed) > 12 else "")
    return (
        f"{store_path} holds results of another configuration (changed: {shown or 'unknown'}). "
        "Refusing to mix them. Re-run with the original settings to resume, write to a new --out "
        "folder, or pass --restart to delete the old results and start over."
    )
