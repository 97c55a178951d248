"""Saving a graph: its text and its weights in one `.npz` file, no pickles."""

from __future__ import annotations

import os

import numpy as np

from .errors import ParseError
from .graph import Graph
from .printer import print_graph
from .text import parse

_TEXT = "__ir__"


def save(g: Graph, path: str | os.PathLike) -> None:
    arrays = {f"w:{k}": v for k, v in g.weights.items()}
    np.savez(path, **{_TEXT: np.array(print_graph(g))}, **arrays)


def load(path: str | os.PathLike) -> Graph:
    """Read a graph written by `save`. Never unpickles: loading runs no code from the file."""
    try:
        with np.load(path, allow_pickle=False) as f:
            text = str(f[_TEXT])
            weights = {k[2:]: f[k] for k in f.files if k.startswith("w:")}
    except Exception as e:  # OSError, BadZipFile, EOFError, zlib.error, an object array...
        raise ParseError(f"{path}: not a saved Lamina graph ({type(e).__name__}: {e})") from None
    return parse(text, weights)
