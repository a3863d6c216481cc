"""Default locations of the generated-data cache and of the shared real-data root."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir", "data_root", "source_checkout_root"]

_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


def source_checkout_root() -> Path | None:
    """The repository root if the package runs from a source checkout, else None.

    The repository root is the parent of the ``detr_efficient`` package directory; it counts
    as a checkout when it holds the project's ``pyproject.toml`` (an installed package sits
    in ``site-packages`` instead).
    """
    return _PACKAGE_PARENT if (_PACKAGE_PARENT / "pyproject.toml").is_file() else None


def cache_dir() -> Path:
    """``$DETR_EFFICIENT_CACHE``, else ``<repo root>/.cache`` in a checkout, else
    ``~/.cache/detr_efficient``."""
    env = os.environ.get("DETR_EFFICIENT_CACHE")
    if env:
        return Path(env).expanduser()
    root = source_checkout_root()
    return root / ".cache" if root else Path.home() / ".cache" / "detr_efficient"


def data_root() -> Path:
    """``$DETR_EFFICIENT_DATA``, else ``<repo root>/../shared/data``."""
    env = os.environ.get("DETR_EFFICIENT_DATA")
    if env:
        return Path(env).expanduser()
    return (_PACKAGE_PARENT.parent / "shared" / "data").resolve()
