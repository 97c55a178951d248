"""A pipeline run one pass at a time, keeping every intermediate graph: what `lamina dump`
(--diff, --dump-dir, --print-after-*), bisection and failure reproducers are built on.

    for step in steps(graph, passes.pipeline(3)):
        print(step.index, step.name, step.changed, step.diff())
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import ir
import passes as _passes


@dataclass
class Step:
    """One pass applied: `before` and `after` are separate graphs (after is a copy)."""

    index: int  # 1-based position in the pipeline
    pass_: _passes.Pass
    record: object  # the pass manager's record: counts, nodes_before/after, seconds
    before: ir.Graph
    after: ir.Graph

    @property
    def name(self) -> str:
        return self.pass_.name

    @property
    def changed(self) -> bool:
        return bool(self.record.counts)

    @property
    def what(self) -> str:
        """The rewrite counts as `kind=n, ...`, or `unchanged`."""
        counts = self.record.counts
        return ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "unchanged"

    @property
    def filename(self) -> str:
        return f"{self.index:02d}-{self.name}.ir"

    def diff(self, context: int = 0) -> str:
        """A unified diff of the IR text before and after this pass ('' when unchanged)."""
        return unified_diff(str(self.before), str(self.after), f"before {self.name}",
                            f"after {self.name}", context)


def unified_diff(a: str, b: str, from_name: str, to_name: str, context: int = 0) -> str:
    lines = difflib.unified_diff(a.splitlines(), b.splitlines(), from_name, to_name,
                                 n=context, lineterm="")
    return "\n".join(lines)


def resolve(pipeline: Sequence[str | _passes.Pass] | None = None,
            opt_level: int | str = 2) -> list[_passes.Pass]:
    """Pass objects for a list of names/passes, or for an opt level's pipeline."""
    chosen = _passes.pipeline(opt_level) if pipeline is None else list(pipeline)
    return [p if isinstance(p, _passes.Pass) else _passes.get(p) for p in chosen]


def steps(graph: ir.Graph, pipeline: Sequence[str | _passes.Pass], *,
          verify: bool = True) -> Iterator[Step]:
    """Apply the passes one at a time, yielding a Step for each. The caller's graph is never
    changed. A failing pass raises PassError reading "in pass X, after [A, B]: ..."."""
    done: list[str] = []
    current = graph
    for i, p in enumerate(resolve(pipeline), 1):
        manager = _passes.PassManager([p], verify=verify)
        try:
            after = manager.run(current)
        except _passes.PassError as e:
            raise _passes.PassError(f"in pass {p.name}, after [{', '.join(done)}]: "
                                    f"{_detail(e)}") from e
        yield Step(i, p, manager.stats.records[0], current, after)
        done.append(p.name)
        current = after


def _detail(e: _passes.PassError) -> str:
    """The underlying error of a one-pass manager's PassError, without its own prefix."""
    cause = e.__cause__
    if cause is None:
        return str(e)
    if isinstance(cause, ir.LaminaError):
        return str(cause)
    return f"{type(cause).__name__}: {cause}"


def stats_table(records: list) -> str:
    """The pass manager's statistics table for these records."""
    return str(_passes.Stats(list(records)))


def write_dump_dir(directory: str | Path, graph: ir.Graph, all_steps: list[Step]) -> list[Path]:
    """Write `00-input.ir`, one `NN-pass.ir` per pass that changed something, and
    `stats.txt` (time and rewrites per pass); returns the paths written."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    written = [d / "00-input.ir"]
    written[0].write_text(f"{graph}\n")
    for s in all_steps:
        if s.changed:
            path = d / s.filename
            path.write_text(f"# after pass {s.index} {s.name} ({s.what})\n{s.after}\n")
            written.append(path)
    stats = d / "stats.txt"
    stats.write_text(stats_table([s.record for s in all_steps]) + "\n")
    written.append(stats)
    return written
