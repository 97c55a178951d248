"""Sequences of tensors (SequenceConstruct, SequenceAt, SplitToSequence, ConcatFromSequence,
...) and optional values (Optional, OptionalHasElement, OptionalGetElement). Lamina's graphs
hold tensors only, so both live at import time: a sequence is a Python list of the graph
values (or constants) it holds, an optional the value or None. Every position must then be
known at import time, and a sequence may not be a graph input or output (an optional tensor
input is a tensor input, present); within those limits a model that builds sequences
internally (split a tensor, edit the pieces, concatenate them) imports as the plain tensor
operators it amounts to."""

from __future__ import annotations

import numpy as np

from ir.errors import InvalidAttributeError, ShapeError

from ..builder import Builder, OnnxNode, Unsupported
from .common import handler, norm_axis, rank


class TensorSequence:
    """An ONNX sequence value during import: its tensors, in order (not a tuple: the
    importer reads a tuple a function returns as several outputs)."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __repr__(self) -> str:
        return f"a sequence of {len(self)} tensor(s)"


def _seq(x, what: str = "input 0") -> TensorSequence:
    if not isinstance(x, TensorSequence):
        raise Unsupported(f"{what} must be a sequence built inside the model")
    return x


def _position(b: Builder, seq: TensorSequence, pos, *, insert: bool = False) -> int:
    """An ONNX position: in [-n, n - 1] for n tensors, negative counting from the back
    (-1 the last); an insert may also name n, the end."""
    p, n = b.ints(pos, "the position")[0], len(seq)
    if not -n <= p < n + insert:
        raise ShapeError(f"position {p} is outside a sequence of {n} tensor(s)")
    return p + n if p < 0 else p


@handler
def SequenceEmpty(b: Builder, n: OnnxNode):
    return TensorSequence([])


@handler
def SequenceConstruct(b: Builder, n: OnnxNode, *xs):
    return TensorSequence(xs)


@handler
def SequenceLength(b: Builder, n: OnnxNode, seq):
    return np.asarray(len(_seq(seq)), np.int64)


@handler
def SequenceAt(b: Builder, n: OnnxNode, seq, pos):
    seq = _seq(seq)
    return seq.items[_position(b, seq, pos)]


@handler
def SequenceInsert(b: Builder, n: OnnxNode, seq, x, pos=None):
    items = list(_seq(seq).items)
    at = len(items) if pos is None else _position(b, seq, pos, insert=True)
    items.insert(at, x)
    return TensorSequence(items)


@handler
def SequenceErase(b: Builder, n: OnnxNode, seq, pos=None):
    items = list(_seq(seq).items)
    if not items:
        raise ShapeError("SequenceErase of an empty sequence")
    del items[-1 if pos is None else _position(b, seq, pos)]
    return TensorSequence(items)


@handler
def ConcatFromSequence(b: Builder, n: OnnxNode, seq):
    items = _seq(seq).items
    if not items:
        raise ShapeError("ConcatFromSequence of an empty sequence")
    axis = n.get("axis")
    if n.get("new_axis", 0):  # stack: each tensor gains a unit axis there first
        axis = norm_axis(axis, rank(items[0]) + 1)
        items = [b.reshape(x, [*x.shape[:axis], 1, *x.shape[axis:]]) for x in items]
    return items[0] if len(items) == 1 else b.call("concat", *items,
                                                   axis=norm_axis(axis, rank(items[0])))


@handler
def SplitToSequence(b: Builder, n: OnnxNode, x, split=None):
    axis = norm_axis(n.get("axis", 0), rank(x))
    size = x.shape[axis]
    if split is None:  # pieces of one, the axis kept or (keepdims=0) dropped
        sizes, squeeze = [1] * size, not n.get("keepdims", 1)
    else:
        split, squeeze = b.const(split, "split"), False
        if split.ndim == 0:  # pieces of that length, the last shorter
            step = int(split)
            if step <= 0:
                raise InvalidAttributeError(f"split must be positive, got {step}")
            sizes = [min(step, size - i) for i in range(0, size, step)]
        else:
            sizes = [int(s) for s in split]
            if sum(sizes) != size or min(sizes, default=0) < 0:
                raise ShapeError(f"split {sizes} does not divide axis {axis} of length {size}")
    parts = b.call("split", x, axis=axis, sizes=sizes) if len(sizes) > 1 else (x,)
    parts = parts if isinstance(parts, tuple) else (parts,)
    if squeeze:
        parts = [b.reshape(p, [d for i, d in enumerate(p.shape) if i != axis]) for p in parts]
    return TensorSequence(parts)


# ---- optionals: the value itself, or None for an empty one ----------------------------------
@handler
def Optional(b: Builder, n: OnnxNode, x=None):
    if x is None:
        raise Unsupported("an empty optional value (Lamina's graphs hold tensors only)")
    return x


@handler
def OptionalHasElement(b: Builder, n: OnnxNode, x=None):
    return np.asarray(x is not None)


@handler
def OptionalGetElement(b: Builder, n: OnnxNode, x):
    return x
