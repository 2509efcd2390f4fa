"""Lazy package exports (PEP 562): a package lists ``name -> submodule`` and imports on first use.

Keeps ``import SaliencyTrustLib.io`` and ``saliency-trust --help`` from importing torch, highdicom
and nibabel; ``from package import name`` and MONAI's ``_target_`` lookups work unchanged.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, List, Tuple


def lazy_exports(package: str, exports: Dict[str, str]) -> Tuple[Callable[[str], Any], Callable[[], List[str]]]:
    """``(__getattr__, __dir__)`` for ``package`` whose public ``exports`` map names to the
    submodule (relative, e.g. ``".api"``, or absolute) that defines them."""

    def __getattr__(name: str) -> Any:
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(exports[name], package), name)

    def __dir__() -> List[str]:
        return sorted(exports)

    return __getattr__, __dir__
