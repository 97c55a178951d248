"""Replaying a reproducer (`lamina repro FILE`): run its graph again the way it failed and say
whether the recorded finding still happens."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import ir
import passes as _passes

from .bisection import bisect
from .repro import Repro, ReproError, load
from .runner import build
from .stepping import steps


def compile_failure(graph: ir.Graph, pipeline: Sequence, inputs: Sequence, backend: str,
                    options: dict | None = None) -> dict | None:
    """Optimise and build as `lamina compile` does; the failure as a finding, or None."""
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
    _check_registered(r.pipeline, path)
    if r.kind == "bisect":
        report = bisect(r.graph, *r.inputs, passes=r.pipeline, backend=r.backend,
                        progress=progress, **r.options)
        return Replay(r, None if report.ok else report.finding(), str(report))
    if r.kind == "compile":
        finding = compile_failure(r.graph, r.pipeline, r.inputs, r.backend, r.options)
        text = "compiles without error now" if finding is None else \
            f"{finding['kind']} in {finding['culprit']}: {finding['detail']}"
        return Replay(r, finding, text)
    raise ReproError(f"{path}: unknown reproducer kind {r.kind!r}")


def _check_registered(pipeline: Sequence[str], path) -> None:
    """Every pass of the pipeline is registered here; one that is not probably came from a
    plugin, which must be loaded again (and an unknown pass must not pass for the failure
    it recorded)."""
    missing = [name for name in pipeline if name not in _passes.names()]
    if missing:
        raise ReproError(f"{path}: unknown pass {', '.join(map(repr, missing))}: not "
                         f"registered here. A pass from a plugin must be loaded again: "
                         f"`lamina --plugin FILE.py repro {path}`. Known passes: "
                         f"{', '.join(_passes.names())}")
