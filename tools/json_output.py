"""How the tools write their JSON results: the folder made, the file replaced atomically
(never left half-written), and where it went printed."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | Path, payload) -> Path:
    """``payload`` as indented JSON at ``path`` (its folder made); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(partial, path)
    print(f"wrote {path}")
    return path
