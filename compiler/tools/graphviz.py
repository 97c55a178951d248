"""Pictures of graphs: the IR's DOT export (fused regions as clusters) rendered by Graphviz."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import ir
from ir.dot import to_dot

__all__ = ["render", "to_dot"]


# ---- rendering ----------------------------------------------------------------------------
def render(dot_text: str, path: str | Path, fmt: str | None = None) -> None:
    """Write `dot_text` to `path` rendered by Graphviz as `fmt` (default: the suffix)."""
    fmt = fmt or Path(path).suffix.lstrip(".") or "svg"
    exe = shutil.which("dot")
    if exe is None:
        raise ir.LaminaError(
            f"Graphviz `dot` is not installed, so {path} cannot be rendered; install Graphviz "
            "(e.g. `apt-get install graphviz`), or write DOT text instead with -o FILE.dot")
    done = subprocess.run([exe, f"-T{fmt}", "-o", str(path)], input=dot_text.encode(),
                          capture_output=True, check=False)
    if done.returncode != 0:
        msg = done.stderr.decode(errors="replace").strip().splitlines()
        raise ir.LaminaError(f"Graphviz `dot -T{fmt}` failed: {msg[-1] if msg else 'no output'}")
