"""torch.Tensor's methods and operators for traced tensors, written with registry operators.

`TensorMethods` is the body of `tracing.Tensor`: every method records operators through
`self._op` (tracing's `op`) and reports misuse through `self._fail` (a TraceError naming the
layer), so this module imports nothing of the tracer. Semantics follow torch: type
promotion (bool < integers < floats; a Python scalar only promotes across kinds), true
division, comparisons giving bool tensors, `max(dim)` returning (values, indices) with the
first index of the maximum (a NaN counting as the maximum), `var`/`std` unbiased by default.

`topk`/`sort`/`argsort` are composed in compiler/frontends/topk.py (the IR has no sort),
`scatter`/`scatter_add`/`scatter_reduce` from one-hot masks of where each write lands.
What cannot be traced is left out: indexing by a traced boolean mask, `nonzero` and
`masked_select` (their shapes depend on the data), in-place methods (the IR has no mutation;
`x[index] = v` rebinds the traced tensor instead, see tracing.Tensor.__setitem__).
"""

from __future__ import annotations

import math
import numbers
from collections import namedtuple

import numpy as np

from ir import LaminaError, ShapeError
from ir.tensor_type import DTYPES, dtype_name

from .topk import topk

# torch.return_types.max / min: a tuple with named fields
ValuesIndices = namedtuple("ValuesIndices", ["values", "indices"])

_KIND = {"bool": 0, "i32": 1, "i64": 1, "f32": 2, "f64": 2}
_WIDTH = {"bool": 0, "i32": 1, "i64": 2, "f32": 1, "f64": 2}
# torch's default dtype of a Python scalar's kind
_SCALAR = {0: "bool", 1: "i64", 2: "f32"}
# names a dtype argument may go by: numpy's, ours, torch's (by name, torch is not imported)
_ALIASES = {"float": "f32", "float32": "f32", "float64": "f64", "double": "f64",
            "int32": "i32", "int": "i32", "int64": "i64", "long": "i64", "bool": "bool"}


def promote(a: str, b: str) -> str:
    """torch's result dtype of two tensors: the higher kind, then the wider type."""
    if _KIND[a] != _KIND[b]:
        return a if _KIND[a] > _KIND[b] else b
    return a if _WIDTH[a] >= _WIDTH[b] else b


def scalar_dtype(x) -> str:
    """torch's dtype for a Python scalar: bool, i64 or f32."""
    return _SCALAR[_scalar_kind(x)]


def _is_scalar(x) -> bool:
    return isinstance(x, (numbers.Number, np.number, np.bool_))


def _scalar_kind(x) -> int:
    if isinstance(x, (bool, np.bool_)):
        return 0
    return 1 if isinstance(x, (numbers.Integral, np.integer)) else 2


def as_dtype(d) -> str | None:
    """An IR dtype name from a numpy dtype, an IR name, a torch dtype or its name, or a
    Python type (float, int, bool: f64, i64, bool as in torch); None for something else (a
    device string)."""
    for python_type, name in ((float, "f64"), (int, "i64"), (bool, "bool")):
        if d is python_type:  # not ==: np.dtype("float64") == float holds
            return name
    if isinstance(d, str) or type(d).__module__.startswith("torch"):
        name = str(d).removeprefix("torch.")
        return name if name in DTYPES else _ALIASES.get(name)
    try:
        return dtype_name(np.dtype(d))
    except (TypeError, LaminaError):  # not a dtype, or one the IR lacks (float16)
        return None


def _dtype_of(x) -> str:
    return x.dtype if isinstance(x, TensorMethods) else dtype_name(x.dtype)


def _operand(x) -> bool:
    """What a binary operator takes: tensors, arrays, scalars and (nested) lists."""
    return isinstance(x, (TensorMethods, np.ndarray, list, tuple)) or _is_scalar(x)


def _dim(d: int, rank: int) -> int:
    if not -max(rank, 1) <= d < max(rank, 1):
        raise ShapeError(f"dim {d} is out of range for a tensor of rank {rank}")
    return d % max(rank, 1)


def _dims(dim, rank: int) -> tuple[int, ...]:
    """torch's `dim` argument (None, an int or a sequence) as sorted non-negative axes."""
    if dim is None:
        return tuple(range(rank))
    return tuple(sorted({_dim(d, rank) for d in ((dim,) if isinstance(dim, int) else dim)}))


class TensorMethods:
    """torch.Tensor's surface; `tracing.Tensor` supplies `value`, `_op` and `_fail`."""

    __slots__ = ()

    # ---- helpers -------------------------------------------------------------------------
    def _const(self, value, dtype: str, shape=()):
        return self._op("constant", value=float(value), dtype=dtype, shape=tuple(shape))

    def _as(self, x, dtype: str):
        """`x` (a tensor, an array or a scalar) as an operand of `dtype`."""
        if _is_scalar(x):
            return self._const(x, dtype)
        if not isinstance(x, (TensorMethods, np.ndarray)):
            x = np.asarray(x)  # a list
        if _dtype_of(x) == dtype:
            return x  # an array stays itself: a parameter keeps its state_dict name
        return self._op("cast", x, dtype=dtype)

    def _result_dtype(self, other) -> str:
        """torch's promotion with a tensor; numpy arrays (constants and parameters, which
        torch code would hold as float32 tensors) and scalars promote only across kinds."""
        if isinstance(other, TensorMethods):
            return promote(self.dtype, other.dtype)
        if _is_scalar(other):
            kind = _scalar_kind(other)
            return self.dtype if kind <= _KIND[self.dtype] else _SCALAR[kind]
        theirs = _dtype_of(np.asarray(other))
        return self.dtype if _KIND[theirs] <= _KIND[self.dtype] else theirs

    def _binary(self, name: str, a, b, dtype: str | None = None):
        """`name(a, b)`, one of them self, after torch's type promotion."""
        other = b if a is self else a
        if not _operand(other):
            return NotImplemented
        dtype = dtype or self._result_dtype(other)
        return self._op(name, self._as(a, dtype), self._as(b, dtype))

    def _true_div(self, a, b):
        dtype = self._result_dtype(b if a is self else a)
        return self._binary("div", a, b, dtype if _KIND[dtype] == 2 else "f32")

    def _not(self, mask):
        return self._op("equal", mask, self._const(0, "bool"))

    def _bool_only(self, what: str, other=None):
        for t in (self, other):
            if isinstance(t, TensorMethods) and t.dtype != "bool":
                raise self._fail(f"{what} is supported on bool tensors only (got {t.dtype}): "
                                 "the IR has no bitwise integer operators")

    def _floats(self):
        """self in a float type reductions accept: integers exactly as f64."""
        return self if _KIND[self.dtype] == 2 else self._op("cast", self, dtype="f64")

    # ---- arithmetic ----------------------------------------------------------------------
    def __add__(self, o):
        return self._binary("add", self, o)

    def __radd__(self, o):
        return self._binary("add", o, self)

    def __sub__(self, o):
        return self._binary("sub", self, o)

    def __rsub__(self, o):
        return self._binary("sub", o, self)

    def __mul__(self, o):
        return self._binary("mul", self, o)

    def __rmul__(self, o):
        return self._binary("mul", o, self)

    def __truediv__(self, o):
        return self._true_div(self, o)

    def __rtruediv__(self, o):
        return self._true_div(o, self)

    def __pow__(self, o):
        return self._binary("pow", self, o)

    def __rpow__(self, o):
        return self._binary("pow", o, self)

    def __neg__(self):
        return self._op("neg", self)

    def __abs__(self):
        return self._op("abs", self)

    def __matmul__(self, o):
        return self._op("matmul", self, o)

    def __rmatmul__(self, o):
        return self._op("matmul", o, self)

    add, sub, mul, div = __add__, __sub__, __mul__, __truediv__

    # ---- comparisons and logic (bool tensors) --------------------------------------------
    def __gt__(self, o):
        return self._binary("greater", self, o)

    def __lt__(self, o):
        return self._binary("greater", o, self)

    def __eq__(self, o):
        return self._binary("equal", self, o)

    def __ne__(self, o):
        return self._not(self == o) if _operand(o) else NotImplemented

    def __ge__(self, o):  # (a > b) or (a == b): false when either is NaN, as torch
        if not _operand(o):
            return NotImplemented
        return self._op("where", self > o, self._const(1, "bool"), self == o)

    def __le__(self, o):
        if not _operand(o):
            return NotImplemented
        return self._op("where", self < o, self._const(1, "bool"), self == o)

    __hash__ = object.__hash__  # __eq__ builds a tensor; identity stays the hash

    gt, lt, eq, ne, ge, le = __gt__, __lt__, __eq__, __ne__, __ge__, __le__
    greater, less, greater_equal, less_equal, not_equal = gt, lt, ge, le, ne

    def __invert__(self):
        self._bool_only("~")
        return self._not(self)

    def __and__(self, o):
        self._bool_only("&", o)
        return self._op("where", self, self._as(o, "bool"), self._const(0, "bool"))

    def __or__(self, o):
        self._bool_only("|", o)
        return self._op("where", self, self._const(1, "bool"), self._as(o, "bool"))

    def __xor__(self, o):
        self._bool_only("^", o)
        return self._not(self._op("equal", self, self._as(o, "bool")))

    __rand__, __ror__, __rxor__ = __and__, __or__, __xor__

    def _truth(self, o):
        """`o` as a bool operand: nonzero is true (torch's logical_* rule)."""
        if isinstance(o, TensorMethods):
            return o.bool()
        return bool(o) if _is_scalar(o) else np.asarray(o).astype(bool)

    def logical_not(self):
        return self._not(self.bool())

    def logical_and(self, o):
        return self.bool() & self._truth(o)

    def logical_or(self, o):
        return self.bool() | self._truth(o)

    def logical_xor(self, o):
        return self.bool() ^ self._truth(o)

    def isnan(self):
        return self != self

    def masked_fill(self, mask, value):
        """`value` where `mask` (bool, broadcast to self) holds; torch keeps self's dtype."""
        mask = self._as(mask, "bool") if not isinstance(mask, TensorMethods) else mask
        if isinstance(mask, TensorMethods) and mask.dtype != "bool":
            raise self._fail(f"masked_fill needs a bool mask, got {mask.dtype}")
        return self._op("where", mask, self._as(value, self.dtype), self)

    def where(self, condition, other):
        """torch's Tensor.where: self where `condition` holds, else `other`."""
        dtype = self._result_dtype(other)
        return self._op("where", self._as(condition, "bool"), self._as(self, dtype),
                        self._as(other, dtype))

    def clamp(self, min=None, max=None):
        if min is None and max is None:
            raise self._fail("clamp needs min or max")
        if _KIND[self.dtype] == 2 and all(v is None or _is_scalar(v) for v in (min, max)):
            return self._op("clip", self, **({} if min is None else {"min": float(min)}),
                            **({} if max is None else {"max": float(max)}))
        out = self
        if min is not None:
            out = out._binary("maximum", out, min)
        if max is not None:
            out = out._binary("minimum", out, max)
        return out

    clip = clamp

    def maximum(self, other):
        return self._binary("maximum", self, other)

    def minimum(self, other):
        return self._binary("minimum", self, other)

    # ---- dtypes --------------------------------------------------------------------------
    def to(self, *args, **kwargs):
        """`to(dtype)`, `to(other)` (its dtype) or `to("cpu")`: devices are ignored."""
        for a in [*args, kwargs.get("dtype")]:
            if isinstance(a, TensorMethods):
                return self.type(a.dtype)
            device = (isinstance(a, str) and as_dtype(a) is None) or type(a).__name__ == "device"
            if a is not None and not device:
                return self.type(a)
        return self

    def type(self, dtype):
        name = as_dtype(dtype)
        if name is None:
            raise self._fail(f"unknown dtype {dtype!r} (one of {', '.join(DTYPES)})")
        return self if name == self.dtype else self._op("cast", self, dtype=name)

    def type_as(self, other):
        return self.type(other.dtype)

    def float(self):
        return self.type("f32")

    def double(self):
        return self.type("f64")

    def long(self):
        return self.type("i64")

    def int(self):
        return self.type("i32")

    def bool(self):
        return self.type("bool")

    def detach(self):
        return self._op("detach", self)

    # ---- reductions ----------------------------------------------------------------------
    def _reduce(self, name, dim, keepdim):
        axes = () if dim is None else _dims(dim, self.ndim)
        return self._op(name, self, axes=axes, keepdims=keepdim)

    def sum(self, dim=None, keepdim: bool = False, dtype=None):
        """Integers and bools sum exactly (as f64, below 2**53) to i64, as torch's do."""
        x = self if dtype is None else self.type(dtype)
        if _KIND[x.dtype] == 2:
            return x._reduce("reduce_sum", dim, keepdim)
        return x._floats()._reduce("reduce_sum", dim, keepdim).type("i64")

    def mean(self, dim=None, keepdim: bool = False, dtype=None):
        x = self if dtype is None else self.type(dtype)
        if _KIND[x.dtype] != 2:
            raise self._fail(f"mean needs a float tensor, got {x.dtype} (torch's rule): "
                             "call .float() first")
        return x._reduce("reduce_mean", dim, keepdim)

    def var(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        """Sum of squared deviations / (n - correction); correction 1 (unbiased) by default.
        Deviations are taken about each group's first element first (exact for values with
        a large common offset), then about the mean."""
        if correction is None:
            correction = 1 if unbiased is None or unbiased else 0
        axes = _dims(dim, self.ndim)
        x = self._floats() if _KIND[self.dtype] != 2 else self
        first = self._op("slice", x, starts=[0] * len(axes), ends=[1] * len(axes), axes=axes)
        d = x - first
        d = d - d._reduce("reduce_mean", axes, True)
        n = math.prod(self.shape[a] for a in axes)
        total = (d * d)._reduce("reduce_sum", axes, keepdim)
        return total / x._const(max(n - correction, 0), x.dtype)

    def std(self, dim=None, unbiased=None, keepdim: bool = False, *, correction=None):
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def any(self, dim=None, keepdim: bool = False):
        """Whether any element (along `dim`) is nonzero, as a bool tensor."""
        return self._truths("reduce_max", dim, keepdim)

    def all(self, dim=None, keepdim: bool = False):
        return self._truths("reduce_min", dim, keepdim)

    def _truths(self, name: str, dim, keepdim: bool):
        ones = self._op("where", self.bool(), self._const(1, "f32"), self._const(0, "f32"))
        return ones._reduce(name, dim, keepdim) > 0.5

    def amax(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_max", dim, keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_min", dim, keepdim)

    def _extreme(self, largest: bool, dim, keepdim: bool):
        """(values, indices) of the first maximum (minimum) along `dim`; NaN counts as the
        extreme. Values are read at the index, so the gradient goes to that element only
        (torch's rule for max(dim); amax shares it between ties)."""
        d = _dim(dim, self.ndim)
        x = self._floats()
        n = x.shape[d]
        if n >= 2**24:
            raise self._fail(f"max/min/argmax along an axis of {n} elements: indices are "
                             "counted in float32 and would round")
        best = x._reduce("reduce_max" if largest else "reduce_min", d, True)
        hit = x._op("where", x == best, x._const(1, "bool"), x.isnan())
        pos = np.arange(n, dtype=np.float32).reshape((n,) + (1,) * (x.ndim - d - 1))
        first = hit._op("where", hit, pos, hit._const(n, "f32"))._reduce("reduce_min", d, True)
        values = self._op("where", x._op("equal", pos, first), self, self._const(0, self.dtype))
        values = values.sum(d, keepdim=True) if _KIND[self.dtype] == 2 else best.type(self.dtype)
        if not keepdim:
            values, first = values.squeeze(d), first.squeeze(d)
        return ValuesIndices(values, first.type("i64"))

    def _max_min(self, largest: bool, dim, keepdim: bool):
        if isinstance(dim, (TensorMethods, np.ndarray)):
            return self._binary("maximum" if largest else "minimum", self, dim)
        if dim is None:
            return self._floats()._reduce("reduce_max" if largest else "reduce_min", None,
                                          False).type(self.dtype)
        return self._extreme(largest, dim, keepdim)

    def max(self, dim=None, keepdim: bool = False):
        return self._max_min(True, dim, keepdim)

    def min(self, dim=None, keepdim: bool = False):
        return self._max_min(False, dim, keepdim)

    def _arg(self, largest: bool, dim, keepdim: bool):
        if dim is None:
            flat = self.reshape(-1)._extreme(largest, 0, False).indices
            return flat.reshape(*(1,) * self.ndim) if keepdim else flat
        return self._extreme(largest, dim, keepdim).indices

    def argmax(self, dim=None, keepdim: bool = False):
        return self._arg(True, dim, keepdim)

    def argmin(self, dim=None, keepdim: bool = False):
        return self._arg(False, dim, keepdim)

    def cumsum(self, dim: int):
        """Prefix sums in log2(n) steps: x += x shifted by 1, 2, 4, ... along `dim` (pad
        with zeros in front, crop as much at the end)."""
        d = _dim(dim, self.ndim)
        out = self if _KIND[self.dtype] == 2 else self.long()  # integers sum to i64
        n, shift = self.shape[d], 1
        while shift < n:
            pads = [0] * (2 * self.ndim)
            pads[d], pads[d + self.ndim] = shift, -shift
            out = out + self._op("pad", out, pads=pads)
            shift *= 2
        return out

    # ---- element selection ---------------------------------------------------------------
    def gather(self, dim: int, index):
        """torch.gather: out[..., i, ...] = self[..., index[..., i, ...], ...] along `dim`,
        by a one-hot selection (each output element reads one input element)."""
        d = _dim(dim, self.ndim)
        if index.ndim != self.ndim:
            raise self._fail(f"gather: index of rank {index.ndim} for a tensor of rank "
                             f"{self.ndim} (they must be equal)")
        x = self
        for a, (i, s) in enumerate(zip(index.shape, self.shape)):
            if a != d and i != s:
                if i > s:
                    raise self._fail(f"gather: index {list(index.shape)} is larger than the "
                                     f"input {list(self.shape)} on axis {a}")
                x = x.narrow(a, 0, i)
        n = x.shape[d]
        rows = x.movedim(d, -1).unsqueeze(d)  # index's shape with 1 at d, then n
        sel = self._op("one_hot", index, depth=n, axis=-1, dtype="bool")
        rows = rows._floats()
        picked = self._op("where", sel, rows, rows._const(0, rows.dtype))
        return picked.sum(-1).type(self.dtype)

    take_along_dim = gather

    def index_select(self, dim: int, index):
        """torch.index_select: whole slices along `dim` at a 1-D integer index."""
        if getattr(index, "ndim", 1) != 1:
            raise self._fail(f"index_select needs a 1-D index, got {list(index.shape)}")
        return self._op("gather", self, index, axis=_dim(dim, self.ndim))

    # ---- ordering (compiler/frontends/topk.py: the IR has no sort) -----------------------
    def topk(self, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
        """torch.topk: (values, indices) of the k largest (smallest) along `dim`, in order.
        Equal values come lower index first; NaN is the largest, as torch orders it. Each
        value is read at its element, so the gradient goes there (torch's rule)."""
        d = _dim(dim, self.ndim)
        n = self.shape[d] if self.ndim else 0
        if not self.ndim or not 0 <= k <= n:
            raise self._fail(f"topk: k={k} for {list(self.shape)} along dim {dim} (0 <= k <= "
                             "the axis length, on a tensor of rank >= 1)")
        if n >= 2**24:
            raise self._fail(f"topk/sort along an axis of {n} elements: places are counted "
                             "in float32 and would round")
        x = self._floats()
        values, index = topk(self._op, x, x.shape, x.dtype, k, d, largest)
        return ValuesIndices(values.type(self.dtype), index.type("i64"))

    def sort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        """torch.sort, always stable (equal values keep their order); NaN last ascending,
        first descending, as torch."""
        return self.topk(self.shape[_dim(dim, self.ndim)] if self.ndim else 0, dim,
                         descending)

    def argsort(self, dim: int = -1, descending: bool = False, stable: bool = False):
        return self.sort(dim, descending).indices

    # ---- scatter: torch.scatter / scatter_add / scatter_reduce ---------------------------
    def scatter(self, dim: int, index, src=None, value=None, *, reduce=None):
        """self with src (a tensor, or a scalar `value`) written at `index` along `dim`:
        out[..., index[..., i, ...], ...] = src[..., i, ...]. Where an index repeats, the
        last write wins (torch leaves it undefined). reduce='add' adds instead."""
        src = value if src is None else src
        if reduce not in (None, "add"):
            raise self._fail(f"scatter reduce={reduce!r} is not supported ('add' is; "
                             "scatter_reduce takes 'sum', 'mean', 'amax', 'amin')")
        return self._scatter(dim, index, src, "sum" if reduce else "last", True)

    def scatter_add(self, dim: int, index, src):
        return self._scatter(dim, index, src, "sum", True)

    def scatter_reduce(self, dim: int, index, src, reduce: str, *, include_self: bool = True):
        """torch.scatter_reduce for 'sum', 'mean', 'amax' and 'amin' ('prod' has no product
        reduction to build on)."""
        if reduce not in ("sum", "mean", "amax", "amin"):
            raise self._fail(f"scatter_reduce reduce={reduce!r} is not supported (one of "
                             "'sum', 'mean', 'amax', 'amin')")
        return self._scatter(dim, index, src, reduce, include_self)

    def _scatter(self, dim, index, src, how: str, include_self: bool):
        d = _dim(dim, self.ndim)
        index = index if isinstance(index, TensorMethods) else np.asarray(index)
        if _dtype_of(index) not in ("i32", "i64") or index.ndim != self.ndim or any(
                i > s for a, (i, s) in enumerate(zip(index.shape, self.shape)) if a != d):
            raise self._fail(f"scatter: index must be integers of the input's rank, no larger "
                             f"off dim {d}; got {_dtype_of(index)} {list(index.shape)} for "
                             f"{list(self.shape)}")
        if isinstance(index, np.ndarray) and index.size and not (
                index.min() >= 0 and index.max() < self.shape[d]):
            raise self._fail(f"scatter: index values {index.min()}..{index.max()} out of range "
                             f"for dim {d} of size {self.shape[d]}")
        x = self._floats()
        if _is_scalar(src):
            src = x._const(src, x.dtype, index.shape)
        src = x._as(src, x.dtype)
        for a, (i, s) in enumerate(zip(index.shape, src.shape)):
            if s < i:
                raise self._fail(f"scatter: src {list(src.shape)} is smaller than index "
                                 f"{list(index.shape)} on axis {a}")
            if s > i:  # torch reads src's leading corner of index's shape
                src = self._op("slice", src, starts=[0], ends=[i], axes=[a])
        placed, count = x._scattered(d, index, src, how)
        hit = count > 0
        if how == "mean":
            mean = (x + placed) / (count + 1) if include_self else placed / count.clamp(min=1)
            out = x._op("where", hit, mean, x)
        elif how == "last" or not include_self:
            out = x._op("where", hit, placed, x)
        elif how == "sum":
            out = x + placed
        else:
            out = x._op("where", hit, x._binary("maximum" if how == "amax" else "minimum",
                                                x, placed), x)
        return out.type(self.dtype)

    def _scattered(self, d: int, index, src, how: str):
        """(what lands on each element of self, how many writes it gets), both self's shape:
        with `d` moved last, a mask [..., n, m] of where each of the m writes lands."""
        n, m = self.shape[d], index.shape[d]
        idx = self._op("transpose", index, perm=_last(d, self.ndim))
        upd = self._op("transpose", src, perm=_last(d, self.ndim)).unsqueeze(-2)  # [.., 1, m]
        hot = self._op("one_hot", idx, depth=n, axis=-2, dtype="bool")  # [..., n, m]
        zero = self._const(0, self.dtype)
        count = self._op("where", hot, self._const(1, self.dtype), zero).sum(-1)
        if how == "last":  # the write with the greatest position along d
            iota = np.arange(m, dtype=np.float32)
            last = self._op("where", hot, iota, self._const(-1, "f32")).amax(-1, keepdim=True)
            hot = self._op("where", hot, self._op("equal", last, iota), hot)
        if how in ("amax", "amin"):
            fill = self._const(-math.inf if how == "amax" else math.inf, self.dtype)
            placed = self._op("where", hot, upd, fill)._reduce(f"reduce_{how[1:]}", -1, False)
            placed = self._op("where", count > 0, placed, zero)
        else:
            placed = self._op("where", hot, upd, zero).sum(-1)
        back = [int(a) for a in np.argsort(_last(d, self.ndim))]
        placed, count = (t._op("transpose", t, perm=back) for t in (placed, count))
        if tuple(placed.shape) != tuple(self.shape):  # a corner of self: pad the rest
            pads = [0] * self.ndim + [s - i for s, i in zip(self.shape, placed.shape)]
            placed, count = (t._op("pad", t, pads=pads) for t in (placed, count))
        return placed, count

    def narrow(self, dim: int, start: int, length: int):
        d = _dim(dim, self.ndim)
        start = start + self.shape[d] if start < 0 else start  # torch counts it from the end
        return self._op("slice", self, starts=[start], ends=[start + length], axes=[d])

    # ---- shapes --------------------------------------------------------------------------
    def expand(self, *sizes):
        sizes = _sizes(sizes)
        lead = len(sizes) - self.ndim
        if lead < 0:
            raise self._fail(f"expand to {list(sizes)}: fewer sizes than the tensor's "
                             f"{self.ndim} axes")
        shape = tuple(self.shape[i - lead] if s == -1 and i >= lead else s
                      for i, s in enumerate(sizes))
        return self if shape == self.shape else self._op("broadcast_to", self, shape=shape)

    def expand_as(self, other):
        return self.expand(*other.shape)

    def repeat(self, *sizes):
        """Tile: each axis repeated sizes[i] times (extra leading sizes add axes)."""
        sizes = _sizes(sizes)
        if len(sizes) < self.ndim:
            raise self._fail(f"repeat needs at least {self.ndim} sizes, got {list(sizes)}")
        x = self.reshape(*(1,) * (len(sizes) - self.ndim), *self.shape)
        # [.., d, ..] -> [.., r, d, ..] (broadcast) -> [.., r * d, ..], all axes at once
        paired = [v for d in x.shape for v in (1, d)]
        tiled = [v for r, d in zip(sizes, x.shape) for v in (r, d)]
        out = x.reshape(*paired).expand(*tiled)
        return out.reshape(*(r * d for r, d in zip(sizes, x.shape)))

    def movedim(self, source: int, destination: int):
        s, d = _dim(source, self.ndim), _dim(destination, self.ndim)
        perm = [a for a in range(self.ndim) if a != s]
        perm.insert(d, s)
        return self if perm == list(range(self.ndim)) else self.permute(*perm)

    def unbind(self, dim: int = 0):
        d = _dim(dim, self.ndim)
        return tuple(t.squeeze(d) for t in self.split(1, d))

    def tril(self, diagonal: int = 0):
        return self._triangle(np.tril, diagonal)

    def triu(self, diagonal: int = 0):
        return self._triangle(np.triu, diagonal)

    def _triangle(self, fn, diagonal: int):
        if self.ndim < 2:
            raise self._fail(f"tril/triu need a tensor of rank >= 2, got {list(self.shape)}")
        keep = fn(np.ones(self.shape[-2:], bool), diagonal)
        return self._op("where", keep, self, self._const(0, self.dtype))


def _last(d: int, rank: int) -> list[int]:
    """The permutation that moves axis `d` last."""
    return [a for a in range(rank) if a != d] + [d]


def _sizes(sizes) -> tuple[int, ...]:
    if len(sizes) == 1 and not isinstance(sizes[0], (int, np.integer)):
        sizes = tuple(sizes[0])
    return tuple(int(s) for s in sizes)
