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

import backends
import ir

VERSION = 1
_META, _TEXT = "__repro__", "__ir__"
KINDS = ("compile", "bisect")
# The backend options a reproducer may carry: those that change the code, not where files go
# (no cache_dir), and target features only narrowing the host's ('-feature' entries or a
# preset): a file from elsewhere must not choose paths or ask for instructions this CPU lacks.
SAFE_OPTIONS = ("num_threads", "fast_math", "target_features")
MAX_THREADS = 256


class ReproError(ir.LaminaError, ValueError):
    """A file that is not a (safe, complete) Lamina reproducer."""


@dataclass
class Repro:
    graph: ir.Graph  # the unoptimised graph the pipeline starts from
    pipeline: list[str]
    inputs: list[np.ndarray]
    kind: str  # "compile" or "bisect"
    backend: str
    finding: dict  # kind / culprit / node / detail as recorded
    options: dict  # backend options, only SAFE_OPTIONS


def save(path: str | os.PathLike, graph: ir.Graph, pipeline: Sequence, inputs: Sequence, *,
         kind: str, backend: str = "reference", finding: dict | None = None,
         options: dict | None = None) -> None:
    """Write a reproducer at exactly `path`. `pipeline` holds pass names (or Pass objects,
    stored by name); of `options`, only SAFE_OPTIONS are kept (a cache_dir is left out)."""
    kept = {k: v for k, v in (options or {}).items() if k in SAFE_OPTIONS}
    meta = {"version": VERSION, "kind": kind, "backend": backend,
            "pipeline": [getattr(p, "name", p) for p in pipeline],
            "finding": finding or {}, "options": kept}
    arrays = {f"w:{k}": v for k, v in graph.weights.items()}
    arrays.update({f"in:{i}": np.asarray(a) for i, a in enumerate(inputs)})
    with open(path, "wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(f, **{_META: np.array(json.dumps(meta)), _TEXT: np.array(str(graph))},
                 **arrays)


def load(path: str | os.PathLike) -> Repro:
    """Read a reproducer, checking every field: no pickles, no options outside
    SAFE_OPTIONS, known kinds and backends (ReproError otherwise)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            meta = json.loads(str(f[_META]))
            text = str(f[_TEXT])
            weights = {k[2:]: f[k] for k in f.files if k.startswith("w:")}
            n = sum(k.startswith("in:") for k in f.files)
            inputs = [f[f"in:{i}"] for i in range(n)]
    except Exception as e:  # OSError, BadZipFile, EOFError, bad JSON, an object array...
        raise ReproError(f"{path}: not a Lamina reproducer ({type(e).__name__}: "
                         f"{e})") from None
    if not isinstance(meta, dict) or not {"pipeline", "kind", "backend"} <= set(meta):
        raise ReproError(f"{path}: not a Lamina reproducer (its metadata is incomplete)")
    if meta.get("version") != VERSION:
        raise ReproError(f"{path}: reproducer version {meta.get('version')!r}, this Lamina "
                         f"reads version {VERSION}")
    _check_meta(meta, path)
    return Repro(ir.parse(text, weights), list(meta["pipeline"]), inputs, meta["kind"],
                 meta["backend"], meta.get("finding", {}),
                 safe_options(meta.get("options", {}), path))


def _check_meta(meta: dict, path) -> None:
    pipeline = meta["pipeline"]
    if not isinstance(pipeline, list) or not all(isinstance(p, str) for p in pipeline):
        raise ReproError(f"{path}: the reproducer's pipeline must be a list of pass names, "
                         f"got {str(pipeline)[:100]}")
    if meta["kind"] not in KINDS:
        raise ReproError(f"{path}: unknown reproducer kind {str(meta['kind'])[:50]!r}; "
                         f"known: {', '.join(KINDS)}")
    if meta["backend"] not in backends.BACKENDS:
        raise ReproError(f"{path}: unknown backend {str(meta['backend'])[:50]!r}; known: "
                         f"{', '.join(backends.BACKENDS)}")
    for key in ("finding", "options"):
        if not isinstance(meta.get(key, {}), dict):
            raise ReproError(f"{path}: the reproducer's {key} must be a mapping")


def safe_options(options: dict, path) -> dict:
    """`options` when each is one a reproducer may carry, with a safe value; else
    ReproError naming it."""
    for key, value in options.items():
        if key not in SAFE_OPTIONS:
            raise ReproError(f"{path}: option {str(key)[:50]!r} is not replayed from a "
                             f"reproducer (only {', '.join(SAFE_OPTIONS)})")
        if not _safe(key, value):
            raise ReproError(f"{path}: option {key}={str(value)[:50]!r} is refused in a "
                             f"reproducer ({_WHY[key]})")
    return dict(options)


_WHY = {"num_threads": f"an integer 1..{MAX_THREADS}",
        "fast_math": "true or false",
        "target_features": "it may only narrow the host's features: a preset or '-feature' "
                           "entries"}


def _safe(key: str, value) -> bool:
    if key == "num_threads":
        return isinstance(value, int) and not isinstance(value, bool) and \
            1 <= value <= MAX_THREADS
    if key == "fast_math":
        return isinstance(value, bool)
    from backends.llvm.target import PRESETS

    if value is None or value in PRESETS:
        return True
    return isinstance(value, str) and all(
        item.strip().startswith("-") for item in value.split(",") if item.strip())
