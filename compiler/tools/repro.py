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


def compile_failure(graph: ir.Graph, pipeline: Sequence, inputs: Sequence, backend: str,
                    options: dict | None = None) -> dict | None:
    """Optimise and build as `lamina compile` does; the failure as a finding, or None."""
    from .runner import build
    from .stepping import steps

    done: list[str] = []
    try:
        last = graph
        for step in steps(graph, pipeline):
            done.append(step.name)
            last = step.after
    except ir.LaminaError as e:
        culprit = list(pipeline)[len(done)] if len(done) < len(pipeline) else None
        return {"kind": "pass-error", "culprit": getattr(culprit, "name", culprit),
                "node": None, "detail": str(e)}
    try:
        build(last, backend, **(options or {}))
    except ir.LaminaError as e:
        return {"kind": "backend-error", "culprit": f"backend {backend}", "node": None,
                "detail": str(e)}
    return None


@dataclass
class Replay:
    repro: Repro
    finding: dict | None  # what happens now (None: nothing goes wrong any more)
    text: str  # the full report of the replay

    @property
    def reproduced(self) -> bool:
        """The same kind of failure from the same culprit (and node, where one was named)."""
        if self.finding is None:
            return False
        keys = ("kind", "culprit", "node")
        return all(self.finding.get(k) == self.repro.finding.get(k) for k in keys)


def replay(path: str | os.PathLike, progress: bool | None = None) -> Replay:
    """Run a reproducer again and say whether the recorded finding still happens."""
    r = load(path)
    if r.kind == "bisect":
        from .bisection import bisect

        report = bisect(r.graph, *r.inputs, passes=r.pipeline, backend=r.backend,
                        progress=progress, **r.options)
        return Replay(r, None if report.ok else report.finding(), str(report))
    if r.kind == "compile":
        finding = compile_failure(r.graph, r.pipeline, r.inputs, r.backend, r.options)
        text = "compiles without error now" if finding is None else \
            f"{finding['kind']} in {finding['culprit']}: {finding['detail']}"
        return Replay(r, finding, text)
    raise ir.LaminaError(f"{path}: unknown reproducer kind {r.kind!r}")
