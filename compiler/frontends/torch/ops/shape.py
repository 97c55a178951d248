"""Shape ATen operators: views (view, permute, expand, squeeze, select, slice, as_strided),
joining and cutting (cat, split, pad), flips, and indexing by integer tensors (index,
index_select, embedding) as `gather`. Exported programs are functional, so a view is simply
a new tensor of the same elements."""

from __future__ import annotations

import math

import numpy as np

from .common import (
    Builder,
    TorchNode,
    Unsupported,
    alias,
    dtype_of,
    handler,
    is_const,
    is_tensor,
    norm_axis,
    rank,
)


def _sizes(size, x) -> tuple[int, ...]:
    """A view's size with its -1 worked out."""
    size = [int(d) for d in size]
    if -1 in size:
        known = math.prod(d for d in size if d != -1)
        size[size.index(-1)] = math.prod(x.shape) // known if known else 0
    return tuple(size)


@handler
def view(b: Builder, n: TorchNode, x, size):
    return b.reshape(x, _sizes(size, x))


@handler
def _unsafe_view(b: Builder, n: TorchNode, x, size):
    return view(b, n, x, size)


@handler
def reshape(b: Builder, n: TorchNode, x, shape):
    return view(b, n, x, shape)


@handler
def permute(b: Builder, n: TorchNode, x, dims):
    perm = [norm_axis(int(d), rank(x)) for d in dims]
    if perm == list(range(rank(x))):
        return x
    if is_const(x):
        out = b.derive(np.transpose(x, perm), x)
        if perm == [1, 0]:  # a linear layer's weight on its way to addmm
            b.transposed[id(out)] = x
            b.keep(out)
        return out
    return b.call("transpose", x, perm=perm)


@handler
def t(b: Builder, n: TorchNode, x):
    return permute(b, n, x, [1, 0]) if rank(x) == 2 else x


@handler
def transpose(b: Builder, n: TorchNode, x, dim0, dim1):
    perm = list(range(rank(x)))
    a, c = norm_axis(dim0, rank(x)), norm_axis(dim1, rank(x))
    perm[a], perm[c] = perm[c], perm[a]
    return permute(b, n, x, perm)


@handler
def expand(b: Builder, n: TorchNode, x, size, implicit=False):
    size = [int(d) for d in size]
    lead = len(size) - rank(x)
    shape = tuple(x.shape[k - lead] if d == -1 else d for k, d in enumerate(size))
    if tuple(x.shape) == shape:
        return x
    if is_const(x):
        return b.derive(np.broadcast_to(x, shape), x)
    return b.call("broadcast_to", x, shape=shape)


@handler
def unsqueeze(b: Builder, n: TorchNode, x, dim):
    d = norm_axis(int(dim), rank(x) + 1)
    return b.reshape(x, (*x.shape[:d], 1, *x.shape[d:]))


@handler
def squeeze(b: Builder, n: TorchNode, x, dim=None):
    r = rank(x)
    dims = range(r) if dim is None else [dim] if isinstance(dim, int) else dim
    drop = {norm_axis(int(d), r) for d in dims} if r else set()
    return b.reshape(x, [s for k, s in enumerate(x.shape) if not (k in drop and s == 1)])


def _slice(b: Builder, x, dim: int, start, end, step: int):
    size = x.shape[dim]
    start, end, step = slice(start, end, step).indices(size)
    if (start, end, step) == (0, size, 1):
        return x
    if is_const(x):
        index = [slice(None)] * rank(x)
        index[dim] = slice(start, end, step)
        return b.derive(x[tuple(index)], x)
    if end < 0:  # an empty negative-step range: python's slice(.., -1) means "to the end"
        end = -size - 1
    return b.call("slice", x, starts=[start], ends=[end], axes=[dim], steps=[step])


def slice_(b: Builder, n: TorchNode, x, dim=0, start=None, end=None, step=1):
    return _slice(b, x, norm_axis(int(dim), rank(x)), start, end, int(step))


alias("slice", slice_)  # not named slice: the module uses Python's


@handler
def select(b: Builder, n: TorchNode, x, dim, index):
    d = norm_axis(int(dim), rank(x))
    i = int(index) + (x.shape[d] if index < 0 else 0)
    part = _slice(b, x, d, i, i + 1, 1)
    return b.reshape(part, (*x.shape[:d], *x.shape[d + 1:]))


@handler
def cat(b: Builder, n: TorchNode, tensors, dim=0):
    parts = [t for t in tensors if math.prod(t.shape) > 0]
    if not parts:
        return np.zeros(n.shape, n.dtype)
    if len(parts) == 1:
        return parts[0]
    axis = norm_axis(int(dim), rank(parts[0]))
    dt = np.result_type(*[dtype_of(p) for p in parts])
    return b.call("concat", *[b.cast(p, dt) for p in parts], axis=axis)


@handler
def split_with_sizes(b: Builder, n: TorchNode, x, split_sizes, dim=0):
    axis = norm_axis(int(dim), rank(x))
    sizes = [int(s) for s in split_sizes]
    if len(sizes) == 1:
        return (x,)
    out = b.call("split", x, axis=axis, sizes=sizes)
    return tuple(out) if isinstance(out, tuple) else (out,)


@handler
def split(b: Builder, n: TorchNode, x, split_size, dim=0):
    if not isinstance(split_size, int):  # split.sizes
        return split_with_sizes(b, n, x, split_size, dim)
    size = x.shape[norm_axis(int(dim), rank(x))]
    sizes = [min(split_size, size - k) for k in range(0, size, split_size)] or [0]
    return split_with_sizes(b, n, x, sizes, dim)


@handler
def unbind(b: Builder, n: TorchNode, x, dim=0):
    d = norm_axis(int(dim), rank(x))
    parts = split_with_sizes(b, n, x, [1] * x.shape[d], d)
    return tuple(b.reshape(p, (*x.shape[:d], *x.shape[d + 1:])) for p in parts)


@handler
def flip(b: Builder, n: TorchNode, x, dims):
    for d in dims:
        x = _slice(b, x, norm_axis(int(d), rank(x)), None, None, -1)
    return x


@handler
def constant_pad_nd(b: Builder, n: TorchNode, x, pad, value=0):
    r = rank(x)
    begins, ends = [0] * r, [0] * r
    for k in range(len(pad) // 2):  # torch lists (begin, end) pairs from the last axis
        begins[r - 1 - k], ends[r - 1 - k] = int(pad[2 * k]), int(pad[2 * k + 1])
    if not any(begins + ends):
        return x
    return b.call("pad", x, pads=[*begins, *ends], value=float(value))


@handler
def as_strided(b: Builder, n: TorchNode, x, size, stride, storage_offset=None):
    """Only as a view in row-major order of all the elements (what exported programs use
    it for after a reduction); strides that skip or repeat elements are unsupported."""
    size, stride = [int(d) for d in size], [int(s) for s in stride]
    contiguous, step = True, 1
    for d, s in zip(reversed(size), reversed(stride)):
        if d != 1 and s != step:
            contiguous = False
        step *= d
    if contiguous and not storage_offset and math.prod(size) == math.prod(x.shape):
        return b.reshape(x, size)
    raise Unsupported("as_strided with strides that are not a row-major view")


# ---- indexing --------------------------------------------------------------------------------
def _indices(b: Builder, idx):
    if dtype_of(idx) == np.bool_:
        raise Unsupported("indexing with a boolean mask (its result size depends on the "
                          "data)")
    return b.cast(idx, np.int64) if dtype_of(idx).kind in "iu" else idx


@handler
def index(b: Builder, n: TorchNode, x, indices):
    """x[..., idx, ...] with one index tensor: gather along its axis; several are
    supported only on constants."""
    given = [(k, i) for k, i in enumerate(indices) if i is not None]
    if len(given) == 1:
        axis, idx = given[0]
        return b.call("gather", x, _indices(b, idx), axis=axis)
    if is_const(x) and all(is_const(i) for _, i in given):
        key = tuple(slice(None) if i is None else i for i in indices)
        return b.derive(np.asarray(x[key]), x)
    raise Unsupported("indexing with several index tensors")


@handler
def index_select(b: Builder, n: TorchNode, x, dim, idx):
    return b.call("gather", x, _indices(b, idx), axis=norm_axis(int(dim), rank(x)))


@handler
def embedding(b: Builder, n: TorchNode, weight, indices, padding_idx=-1,
              scale_grad_by_freq=False, sparse=False):
    return b.call("gather", weight, _indices(b, indices), axis=0)


@handler
def gather(b: Builder, n: TorchNode, x, dim, idx, sparse_grad=False):
    if is_const(x) and is_const(idx):
        return b.derive(np.take_along_axis(x, idx, axis=int(dim)), x)
    raise Unsupported("torch.gather (elementwise indices) at run time")


# ---- writing into slices (functional) --------------------------------------------------------
@handler
def copy(b: Builder, n: TorchNode, dst, src, non_blocking=False):
    src = b.cast(src, dtype_of(dst))
    return expand(b, n, src, list(dst.shape))


@handler
def slice_scatter(b: Builder, n: TorchNode, x, src, dim=0, start=None, end=None, step=1):
    d = norm_axis(int(dim), rank(x))
    lo, hi, step = slice(start, end, step).indices(x.shape[d])
    if is_const(x) and is_const(src):
        out = x.copy()
        index = [slice(None)] * rank(x)
        index[d] = slice(lo, hi, step)
        out[tuple(index)] = src
        return b.derive(out, x)
    if step != 1:
        raise Unsupported("slice_scatter with a step at run time")
    src = b.cast(src, dtype_of(x))
    parts = [_slice(b, x, d, 0, lo, 1), src, _slice(b, x, d, hi, None, 1)]
    parts = [p for p in parts if p.shape[d] > 0]
    return parts[0] if len(parts) == 1 else b.call("concat", *parts, axis=d)


@handler
def select_scatter(b: Builder, n: TorchNode, x, src, dim, index):
    d = norm_axis(int(dim), rank(x))
    i = int(index) + (x.shape[d] if index < 0 else 0)
    src = b.reshape(src, (*x.shape[:d], 1, *x.shape[d:][1:]))
    return slice_scatter(b, n, x, src, d, i, i + 1, 1)


@handler
def masked_fill(b: Builder, n: TorchNode, x, mask, value):
    fill = value if is_tensor(value) else np.asarray(value, dtype_of(x))
    return b.call("where", mask, b.cast(fill, dtype_of(x)), x)
