"""3-D (volumetric) convolution, transposed convolution and pooling.

The operators are declared like their 2-D peers (attributes, shape inference, numpy
reference semantics), so a dump shows the `conv3d` the user wrote. Each also has ONE
decomposition into 2-D operators (`EXPANSIONS`), built from registered operators with
any builder that has `Graph.call`'s signature. Two consumers read it, so the arithmetic
is written once:
- the gradient rules: the gradient of the decomposition, by the 2-D operators' own rules
  (`grad_by_expansion`);
- the LLVM backend, which lowers a 3-D node by lowering its decomposition with the fast
  2-D kernels (backends/llvm/volumetric.py).

The decompositions:
- conv3d: the KD depth-shifted slices of the (depth-padded) input stacked along channels,
  group-major, x [N,C,D,H,W] -> [N*OD, G*KD*Cg, H, W]; then ONE conv2d with weight
  [O, KD*Cg, KH, KW] (groups unchanged), and [N*OD, O, OH, OW] back to [N, O, OD, OH, OW];
- conv3d_grad_input (the transposed convolution): the adjoint of that, conv2d_grad_input
  on the unfolded channels, then each depth slice scattered back (stride-spread, shifted,
  summed) and the depth padding cropped;
- max/avg_pool3d: separable, a 2-D pool over (H, W) on [N, C*D, H, W], then a (KD, 1)
  pool over depth on [N, C, D, OH*OW]. Max of maxima is the max; for the average, every
  window's divisor (with or without padding, ceil_mode margins excluded) is a product of
  per-axis counts, so the mean of means is the mean.
Attributes: stride and dilation [d, h, w]; pad [front, top, left, back, bottom, right]
(begins then ends, as ONNX orders them, like conv2d's [top, left, bottom, right]).
"""

from __future__ import annotations

import itertools

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ..errors import ShapeError
from ..tensor_type import TensorType
from . import grad_rules as G
from .registry import Attr, Fusion, OpDef, register
from .shape_rules import floats, window_out

triple = (lambda v: len(v) == 3 and all(x > 0 for x in v), "three positive integers")
sextet = (lambda v: len(v) == 6 and all(x >= 0 for x in v), "six non-negative integers "
          "[front, top, left, back, bottom, right]")
WINDOW3 = {"stride": Attr("ints", (1, 1, 1), *triple),
           "pad": Attr("ints", (0,) * 6, *sextet),
           "dilation": Attr("ints", (1, 1, 1), *triple)}
CONV3 = {**WINDOW3, "groups": Attr("int", 1, lambda g: g > 0, "positive")}
POOL3 = {"kernel": Attr("ints", check=triple[0], rule=triple[1]), **WINDOW3,
         "ceil_mode": Attr("bool", False)}


def out_sizes(sizes, kernel, stride, pad, dilation, ceil=False) -> tuple[int, ...]:
    """Window output sizes per spatial axis (pad: begins then ends)."""
    r = len(sizes)
    return tuple(window_out(n, k, s, pad[i], pad[i + r], d, ceil) for i, (n, k, s, d) in
                 enumerate(zip(sizes, kernel, stride, dilation)))


def windows(xp, kernel, stride, dilation, out):
    """[N, C, *out, *kernel] view of the (already padded) input's sliding windows."""
    r = len(kernel)
    span = tuple(d * (k - 1) + 1 for k, d in zip(kernel, dilation))
    v = sliding_window_view(xp, span, axis=tuple(range(2, 2 + r)))
    index = (slice(None),) * 2 + tuple(slice(0, o * s, s) for o, s in zip(out, stride))
    return v[index + tuple(slice(None, None, d) for d in dilation)]


# ---- conv3d ------------------------------------------------------------------------------
def _check_conv(x, w, groups, what):
    if x.rank != 5 or w.rank != 5:
        raise ShapeError(f"{what} wants x [N,C,D,H,W] and weight [O,C/groups,KD,KH,KW], got "
                         f"{x}, {w}")
    c, (o, cg) = x.shape[1], w.shape[:2]
    if c % groups or o % groups or cg * groups != c:
        raise ShapeError(f"input has {c} channels, weight {w} expects {cg * groups} "
                         f"(groups={groups}, which must also divide {o} outputs)")


def _conv_infer(x, w, b=None, *, stride, pad, dilation, groups):
    dtype = floats(x, w, *([b] if b else []))
    _check_conv(x, w, groups, "conv3d")
    if b is not None and b.shape != (w.shape[0],):
        raise ShapeError(f"bias must be [{w.shape[0]}], got {b}")
    out = out_sizes(x.shape[2:], w.shape[2:], stride, pad, dilation)
    return TensorType((x.shape[0], w.shape[0], *out), dtype)


def _conv(x, w, b=None, *, stride, pad, dilation, groups):
    n, (o, cg, *kernel) = x.shape[0], w.shape
    out = out_sizes(x.shape[2:], kernel, stride, pad, dilation)
    xp = np.pad(x, ((0, 0), (0, 0), *((pad[i], pad[i + 3]) for i in range(3))))
    win = windows(xp, kernel, stride, dilation, out).reshape(n, groups, cg, *out, *kernel)
    wg = w.reshape(groups, o // groups, cg, *kernel)
    y = np.einsum("ngcdhwxyz,gocxyz->ngodhw", win, wg, optimize=True).reshape(n, o, *out)
    y = y + b.reshape(1, o, 1, 1, 1) if b is not None else y
    return np.ascontiguousarray(y, x.dtype)


def _pads2(pad):
    """The (H, W) part of a 3-D pad as conv2d's [top, left, bottom, right]."""
    return (pad[1], pad[2], pad[4], pad[5])


def _flat_weight(b, w):
    """[O, Cg, KD, KH, KW] -> [O, KD*Cg, KH, KW], channel kd*Cg + c (per group)."""
    o, cg, kd, kh, kw = w.shape
    return G.reshape(b, b.call("transpose", w, perm=(0, 2, 1, 3, 4)), (o, kd * cg, kh, kw))


def _pad_depth(b, v, begin: int, end: int):
    """Zeros (negative: cropping) before and after axis 2 of a 5-D value."""
    return v if begin == end == 0 else b.call("pad", v, pads=[0, 0, begin, 0, 0,
                                                               0, 0, end, 0, 0])


def _unfold_depth(b, x, kd, stride, pads, dilation, groups, od):
    """x [N,C,D,H,W] -> [N*OD, G*KD*Cg, H, W]: output depth i's KD input slices stacked
    along channels, group-major (channel g*KD*Cg + k*Cg + c)."""
    n, c, _, h, w = x.shape
    cg = c // groups
    x = _pad_depth(b, x, *pads)
    pieces = []
    for k in range(kd):
        start, stop = k * dilation, k * dilation + (od - 1) * stride + 1
        p = x if (start, stop, stride) == (0, x.shape[2], 1) else b.call(
            "slice", x, starts=[start], ends=[stop], axes=[2], steps=[stride])
        pieces.append(G.reshape(b, p, (n, groups, 1, cg, od, h, w)))
    stacked = pieces[0] if kd == 1 else b.call("concat", *pieces, axis=2)
    t = b.call("transpose", stacked, perm=(0, 4, 1, 2, 3, 5, 6))  # N OD G KD Cg H W
    return G.reshape(b, t, (n * od, c * kd, h, w))


def expand_conv3d(b, x, w, bias=None, *, stride, pad, dilation, groups):
    n, od = x.shape[0], out_sizes(x.shape[2:3], w.shape[2:3], stride, pad[::3], dilation)[0]
    x2 = _unfold_depth(b, x, w.shape[2], stride[0], pad[::3], dilation[0], groups, od)
    y2 = b.call("conv2d", x2, _flat_weight(b, w), *([bias] if bias is not None else []),
                stride=stride[1:], pad=_pads2(pad), dilation=dilation[1:], groups=groups)
    o, oh, ow = y2.shape[1:]
    return b.call("transpose", G.reshape(b, y2, (n, od, o, oh, ow)), perm=(0, 2, 1, 3, 4))


def grad_by_expansion(expand):
    """A gradient rule: rebuild the operator's decomposition in the backward graph, then
    apply the rules of its (2-D) operators in reverse. What only feeds gradients nobody
    asked for is dead code, which autodiff removes."""

    def rule(b, node, grads):
        rec = _Recorder(b)
        out = expand(rec, *node.inputs, **node.attrs)
        acc = {id(out): grads[0]}
        for n in reversed(rec.nodes):
            dy = acc.get(id(n.outputs[0]))
            if dy is None:
                continue
            for v, dv in zip(n.inputs, n.opdef.grad(b, n, [dy])):
                if dv is not None:
                    acc[id(v)] = dv if id(v) not in acc else b.call("add", acc[id(v)], dv)
        return [acc.get(id(v)) for v in node.inputs]

    return rule


class _Recorder:
    """A builder that remembers the nodes it made, in order."""

    def __init__(self, b):
        self.b, self.nodes = b, []

    def call(self, op, *inputs, **attrs):
        v = self.b.call(op, *inputs, **attrs)
        self.nodes.append(v.node)
        return v


register(OpDef(
    name="conv3d",
    infer=_conv_infer,
    compute=_conv,
    attrs=CONV3,
    arity=(2, 3),
    fusion=Fusion.COMPLEX,
    doc="3-D cross-correlation, weight [O, C/groups, KD, KH, KW], optional bias [O]; "
        "pad=[front, top, left, back, bottom, right]",
    grad=grad_by_expansion(expand_conv3d)))


# ---- conv3d_grad_input: the transposed convolution ---------------------------------------
def _grad_input_infer(dy, w, *, stride, pad, dilation, groups, shape):
    dtype = floats(dy, w)
    if len(shape) != 5:
        raise ShapeError(f"conv3d_grad_input wants a 5-D input shape, got {list(shape)}")
    _check_conv(TensorType(tuple(shape), dtype), w, groups, "conv3d_grad_input")
    if dy.rank != 5 or dy.shape[:2] != (shape[0], w.shape[0]):
        raise ShapeError(f"dy {dy} does not fit weight {w} and input {list(shape)}")
    fits = [dy.shape[2 + i] in {window_out(shape[2 + i], w.shape[2 + i], stride[i], pad[i],
                                           pad[i + 3], dilation[i], ceil) for ceil in (0, 1)}
            for i in range(3)]
    if not all(fits):
        raise ShapeError(f"dy {dy} is not the output size of a {list(w.shape[2:])} window "
                         f"over {list(shape)}")
    return TensorType(tuple(shape), dtype)


def _conv_grad_input(dy, w, *, stride, pad, dilation, groups, shape):
    n, c, *size = shape
    o, cg, *kernel = w.shape
    out = dy.shape[2:]
    wg = w.reshape(groups, o // groups, cg, *kernel)
    dyg = dy.reshape(n, groups, o // groups, *out)
    cols = np.einsum("ngodhw,gocxyz->ngcxyzdhw", dyg, wg, optimize=True)
    cols = cols.reshape(n, c, *kernel, *out)
    full = [max(size[i] + pad[i] + pad[i + 3], (out[i] - 1) * stride[i]
                + dilation[i] * (kernel[i] - 1) + 1) for i in range(3)]
    dxp = np.zeros((n, c, *full), dy.dtype)
    for ks in itertools.product(*map(range, kernel)):
        at = tuple(slice(k * d, k * d + (m - 1) * s + 1, s)
                   for k, d, m, s in zip(ks, dilation, out, stride))
        dxp[(slice(None), slice(None), *at)] += cols[(slice(None), slice(None), *ks)]
    crop = tuple(slice(pad[i], pad[i] + size[i]) for i in range(3))
    return np.ascontiguousarray(dxp[(slice(None), slice(None), *crop)])


def _spread(b, v, stride: int):
    """v [N,C,M,H,W] -> [N,C,(M-1)*stride+1,...] with v[m] at m*stride, zeros between."""
    if stride == 1:
        return v
    n, c, m, h, w = v.shape
    v = G.reshape(b, v, (n, c, m, 1, h, w))
    v = b.call("pad", v, pads=[0] * 9 + [stride - 1, 0, 0])
    v = G.reshape(b, v, (n, c, m * stride, h, w))
    return _pad_depth(b, v, 0, 1 - stride)


def expand_conv3d_grad_input(b, dy, w, *, stride, pad, dilation, groups, shape):
    """The adjoint of expand_conv3d in x."""
    n, c, d, h, wd = shape
    od, kd = dy.shape[2], w.shape[2]
    dy2 = G.reshape(b, b.call("transpose", dy, perm=(0, 2, 1, 3, 4)), (n * od, *dy.shape[1:2],
                                                                         *dy.shape[3:]))
    dx2 = b.call("conv2d_grad_input", dy2, _flat_weight(b, w), stride=stride[1:],
                 pad=_pads2(pad), dilation=dilation[1:], groups=groups,
                 shape=(n * od, kd * c, h, wd))
    cg = c // groups
    t = b.call("transpose", G.reshape(b, dx2, (n, od, groups, kd, cg, h, wd)),
               perm=(0, 2, 3, 4, 1, 5, 6))  # N G KD Cg OD H W
    full = max(d + pad[0] + pad[3], (od - 1) * stride[0] + dilation[0] * (kd - 1) + 1)
    acc = None
    for k in range(kd):
        piece = t if kd == 1 else b.call("slice", t, starts=[k], ends=[k + 1], axes=[2])
        piece = _spread(b, G.reshape(b, piece, (n, c, od, h, wd)), stride[0])
        at = k * dilation[0]
        piece = _pad_depth(b, piece, at, full - at - piece.shape[2])
        acc = piece if acc is None else b.call("add", acc, piece)
    return _pad_depth(b, acc, -pad[0], d + pad[0] - full)


register(OpDef(
    name="conv3d_grad_input",
    infer=_grad_input_infer,
    compute=_conv_grad_input,
    attrs={**CONV3, "shape": Attr("ints", check=lambda s: all(x >= 0 for x in s),
                                  rule="non-negative sizes")},
    arity=(2, 2),
    fusion=Fusion.COMPLEX,
    doc="conv3d's gradient with respect to its input of `shape` (a transposed 3-D "
        "convolution): dy [N,O,OD,OH,OW], weight [O,C/groups,KD,KH,KW]",
    grad=grad_by_expansion(expand_conv3d_grad_input)))


# ---- pooling -----------------------------------------------------------------------------
def _pool_infer(x, *, kernel, stride, pad, dilation, ceil_mode, **_):
    if x.rank != 5:
        raise ShapeError(f"3-D pooling wants x [N,C,D,H,W], got {x}")
    if any(pad[i] > kernel[i % 3] // 2 for i in range(6)):
        raise ShapeError(f"padding {list(pad)} must be at most half the kernel {list(kernel)}")
    out = out_sizes(x.shape[2:], kernel, stride, pad, dilation, ceil_mode)
    return TensorType((*x.shape[:2], *out), floats(x))


def _pool_windows(x, fill, kernel, stride, pad, dilation, ceil_mode):
    out = out_sizes(x.shape[2:], kernel, stride, pad, dilation, ceil_mode)
    # ceil_mode may need room past the end padding: filled like padding
    widths = [(pad[i], pad[i + 3] + max(0, (out[i] - 1) * stride[i] + dilation[i]
                                         * (kernel[i] - 1) + 1 - (x.shape[2 + i] + pad[i]
                                                                  + pad[i + 3])))
              for i in range(3)]
    xp = np.pad(x, ((0, 0), (0, 0), *widths), constant_values=fill)
    return windows(xp, kernel, stride, dilation, out), widths


def _max_pool(x, *, kernel, stride, pad, dilation, ceil_mode):
    return _pool_windows(x, -np.inf, kernel, stride, pad, dilation, ceil_mode)[0].max(
        axis=(5, 6, 7))


def _avg_pool(x, *, kernel, stride, pad, dilation, ceil_mode, count_include_pad):
    win, widths = _pool_windows(x, 0, kernel, stride, pad, dilation, ceil_mode)
    total = win.sum(axis=(5, 6, 7))
    # divisor: cells inside the input (or inside input + explicit pads), never the ceil_mode
    # margin, as torch and onnxruntime count
    inside = np.zeros((1, 1, *(n + a + z for n, (a, z) in zip(x.shape[2:], widths))), x.dtype)
    keep = tuple(slice(0 if count_include_pad else pad[i],
                       x.shape[2 + i] + pad[i] + (pad[i + 3] if count_include_pad else 0))
                 for i in range(3))
    inside[(0, 0, *keep)] = 1
    count = windows(inside, kernel, stride, dilation, total.shape[2:]).sum(axis=(5, 6, 7))
    return (total / count).astype(x.dtype)


def _expand_pool(op2d, extra):
    def expand(b, x, *, kernel, stride, pad, dilation, ceil_mode, **attrs):
        n, c, d, h, w = x.shape
        same = {"ceil_mode": ceil_mode, **{k: attrs[k] for k in extra}}
        y = b.call(op2d, G.reshape(b, x, (n, c * d, h, w)), kernel=kernel[1:],
                   stride=stride[1:], pad=_pads2(pad), dilation=dilation[1:], **same)
        oh, ow = y.shape[2:]
        y = b.call(op2d, G.reshape(b, y, (n, c, d, oh * ow)), kernel=(kernel[0], 1),
                   stride=(stride[0], 1), pad=(pad[0], 0, pad[3], 0),
                   dilation=(dilation[0], 1), **same)
        return G.reshape(b, y, (n, c, y.shape[2], oh, ow))

    return expand


expand_max_pool3d = _expand_pool("max_pool2d", ())
expand_avg_pool3d = _expand_pool("avg_pool2d", ("count_include_pad",))

register(OpDef(
    name="max_pool3d",
    infer=_pool_infer,
    compute=_max_pool,
    attrs=POOL3,
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="max over 3-D windows; padding never wins (it is -inf)",
    grad=grad_by_expansion(expand_max_pool3d)))
register(OpDef(
    name="avg_pool3d",
    infer=_pool_infer,
    compute=_avg_pool,
    attrs={**POOL3, "count_include_pad": Attr("bool", True)},
    arity=(1, 1),
    fusion=Fusion.OPAQUE,
    doc="mean over 3-D windows; count_include_pad counts explicit padding in the divisor",
    grad=grad_by_expansion(expand_avg_pool3d)))

# operator -> its decomposition into 2-D operators (the LLVM backend lowers these)
EXPANSIONS = {"conv3d": expand_conv3d, "conv3d_grad_input": expand_conv3d_grad_input,
              "max_pool3d": expand_max_pool3d, "avg_pool3d": expand_avg_pool3d}
