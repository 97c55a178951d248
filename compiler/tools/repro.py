"""Reproducers: one `.npz` file holding the IR, the pipeline, the failing inputs and what went
wrong, so a bug report is that file and `lamina repro FILE` replays it.

Written when compilation fails (kind "compile") or bisection finds a culprit (kind
"bisect"). Like `ir.save`, it holds no pickles: loading runs no code from the file. Passes
registered outside `passes/` (a plugin) must be registered again before replaying
(`lamina --plugin FILE.py repro ...`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

import ir

VERSION = 1
_META, _TEXT = "__repro__", "__ir__"


@dataclass
class Repro:
    graph: ir.Graph  # the unoptimised graph the pipeline starts from
    pipeline: list[str]
    inputs: list[np.ndarray]
    kind: str  # "compile" or "bisect"
    backend: str
    finding: dict  # kind / culprit / node / detail as recorded
    options: dict  # backend options


def save(path: str | os.PathLike, graph: ir.Graph, pipeline: Sequence, inputs: Sequence, *,
         kind: str, backend: str = "reference", finding: dict | None = None,
         options: dict | None = None) -> None:
    """Write a reproducer. `pipeline` holds pass names (or Pass objects, stored by name)."""
    meta = {"version": VERSION, "kind": kind, "backend": backend,
            "pipeline": [getattr(p, "name", p) for p in pipeline],
            "finding": finding or {}, "options": options or {}}
    arrays = {f"w:{k}": v for k, v in graph.weights.items()}
    arrays.update({f"in:{i}": np.asarray(a) for i, a in enumerate(inputs)})
    np.savez(path, **{_META: np.array(json.dumps(meta)), _TEXT: np.array(str(graph))},
             **arrays)


def load(path: str | os.PathLike) -> Repro:
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f[_META]))
            text = str(f[_TEXT])
            weights = {k[2:]: f[k] for k in f.files if k.startswith("w:")}
            n = sum(k.startswith("in:") for k in f.files)
            inputs = [f[f"in:{i}"] for i in range(n)]
    except Exception as e:  # OSError, BadZipFile, EOFError, bad JSON, an object array...
        raise ir.LaminaError(f"{path}: not a Lamina reproducer ({type(e).__name__}: "
                             f"{e})") from None
    if not isinstance(meta, dict) or not {"pipeline", "kind", "backend"} <= set(meta):
        raise ir.LaminaError(f"{path}: not a Lamina reproducer (its metadata is incomplete)")
    if meta.get("version") != VERSION:
        raise ir.LaminaError(f"{path}: reproducer version {meta.get('version')}, this Lamina "
                             f"reads version {VERSION}")
    return Repro(ir.parse(text, weights), list(meta["pipeline"]), inputs, meta["kind"],
                 meta["backend"], meta.get("finding", {}), meta.get("options", {}))
