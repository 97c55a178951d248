"""ONNX neural-network operators for the operator table: linear algebra, convolution
(1-D, 2-D and 3-D, transposed too), pooling and normalisation."""

from __future__ import annotations

import math

import numpy as np

from ir.ops.shape_rules import window_out

from ...windows import conv_transpose
from ..builder import Builder, Decline, OnnxNode, Unsupported
from .common import dtype, handler, is_const, like, norm_axis, rank


# ---- linear algebra ------------------------------------------------------------------------
@handler
def MatMul(b: Builder, n: OnnxNode, x, w):
    if is_const(w) and w.ndim == 2 and not is_const(x) and rank(x) >= 2:
        # a layer's weight: linear (x @ w.T with w stored [out, in]) is what fusion and the
        # backends know best; x @ (w.T).T multiplies exactly the same numbers
        return b.call("linear", x, b.call("transpose", w, perm=(1, 0)))
    return b.call("matmul", x, w)


@handler
def Gemm(b: Builder, n: OnnxNode, a, w, c=None):
    alpha, beta = n.get("alpha", 1.0), n.get("beta", 1.0)
    if n.get("transA", 0):
        a = b.call("transpose", a, perm=(1, 0))
    wt = w if n.get("transB", 0) else b.call("transpose", w, perm=(1, 0))  # [out, in]
    if alpha != 1:
        wt = b.call("mul", wt, like(wt, alpha))
    if c is not None and beta == 0:
        c = None
    if c is not None and beta != 1:
        c = b.call("mul", c, like(c, beta))
    if c is not None and tuple(c.shape) == (wt.shape[0],):
        return b.call("linear", a, wt, c)
    y = b.call("linear", a, wt)
    return y if c is None else b.call("add", y, c)


@handler
def SoftmaxCrossEntropyLoss(b: Builder, n: OnnxNode, scores, labels, weights=None):
    if weights is not None or "ignore_index" in n.attrs:  # cross_entropy has neither
        raise Decline("class weights or ignore_index")
    loss = b.call("cross_entropy", scores, labels, reduction=n.get("reduction", "mean"))
    return loss, b.call("log_softmax", scores, axis=1)


# ---- convolution and pooling ---------------------------------------------------------------
def window_pads(n: OnnxNode, spatial, kernel, strides, dilations) -> tuple[list, list]:
    """(begins, ends) per spatial axis from `pads` or `auto_pad`."""
    k = len(spatial)
    mode = n.get("auto_pad", "NOTSET")
    if mode in ("NOTSET", ""):
        pads = list(n.get("pads", [0] * (2 * k)))
        return pads[:k], pads[k:]
    if mode == "VALID":
        return [0] * k, [0] * k
    if mode not in ("SAME_UPPER", "SAME_LOWER"):
        raise Unsupported(f"auto_pad '{mode}'")
    begins, ends = [], []
    for size, kk, s, d in zip(spatial, kernel, strides, dilations):
        out = -(-size // s)
        total = max(0, (out - 1) * s + (kk - 1) * d + 1 - size)
        small, big = total // 2, total - total // 2
        begins.append(small if mode == "SAME_UPPER" else big)
        ends.append(big if mode == "SAME_UPPER" else small)
    return begins, ends


def _spatial(b: Builder, n: OnnxNode, x, what: str) -> int:
    r = rank(x)
    if r not in (3, 4, 5):
        raise Unsupported(f"{r - 2}-D {what} (Lamina has 1-D, 2-D and 3-D)")
    return r - 2


def _op(name: str, k: int) -> str:
    """The registry's operator for `k` spatial axes: 1-D runs as 2-D over a unit height."""
    return name.replace("2d", "3d") if k == 3 else name


def _to_2d(b: Builder, x):
    """[N, C, L] as [N, C, 1, L]; 2-D inputs pass through."""
    return b.reshape(x, (*x.shape[:2], 1, x.shape[2])) if rank(x) == 3 else x


@handler
def Conv(b: Builder, n: OnnxNode, x, w, bias=None):
    k = _spatial(b, n, x, "convolution")
    kernel = list(w.shape[2:])
    strides, dil = n.get("strides", [1] * k), n.get("dilations", [1] * k)
    begins, ends = window_pads(n, x.shape[2:], kernel, strides, dil)
    if k == 1:
        strides, dil, begins, ends = [1, *strides], [1, *dil], [0, *begins], [0, *ends]
    y = b.call(_op("conv2d", k), _to_2d(b, x), _to_2d(b, w), *([] if bias is None else [bias]),
               stride=strides, dilation=dil, pad=[*begins, *ends], groups=n.get("group", 1))
    return b.reshape(y, (*y.shape[:2], y.shape[3])) if k == 1 else y


@handler
def ConvTranspose(b: Builder, n: OnnxNode, x, w, bias=None):
    """The registry's transposed convolution, conv2d/3d_grad_input (the gradient with
    respect to the input takes ConvTranspose's weight layout [C_in, C_out/groups, kh, kw]),
    plus the bias, any output padding (frontends/windows.py); with negative pads, the
    textbook identity instead: a convolution of the input spread out by the stride and
    padded by the kernel's reach, the kernel flipped."""
    k = _spatial(b, n, x, "transposed convolution")
    g = n.get("group", 1)
    kernel = list(w.shape[2:])
    s, d = list(n.get("strides", [1] * k)), list(n.get("dilations", [1] * k))
    outpad = list(n.get("output_padding", [0] * k))
    begins, ends = _convtranspose_pads(n, x.shape[2:], kernel, s, d, outpad)
    if k == 1:
        x, w = _to_2d(b, x), _to_2d(b, w)
        kernel, s, d = [1, *kernel], [1, *s], [1, *d]
        outpad, begins, ends = [0, *outpad], [0, *begins], [0, *ends]
    if min(begins + ends) >= 0:
        y = conv_transpose(b, x, w, bias, s, begins, ends, outpad, d, g)
        return b.reshape(y, (*y.shape[:2], y.shape[3])) if k == 1 else y
    return _convtranspose_by_conv(b, x, w, bias, g, kernel, s, d, outpad, begins, ends, k)


def _convtranspose_by_conv(b, x, w, bias, g, kernel, s, d, outpad, begins, ends, k):
    nb, c, *size = x.shape
    r = len(size)
    if any(st != 1 for st in s):  # zeros between elements: [N,C,H,1,W,1] -> [N,C,H,sh,W,sw]
        x = b.reshape(x, (nb, c, *(v for n_ in size for v in (n_, 1))))
        x = b.call("pad", x, pads=[0] * (2 + 2 * r) + [0, 0, *(v for st in s
                                                                for v in (0, st - 1))])
        x = b.reshape(x, (nb, c, *(n_ * st for n_, st in zip(size, s))))
    extra = [st - 1 for st in s]  # trailing zeros past the last element: cropped below
    reach = [dd * (kk - 1) for dd, kk in zip(d, kernel)]
    pads = [reach[i] - begins[i] for i in range(r)] + \
        [reach[i] - ends[i] + outpad[i] - extra[i] for i in range(r)]
    if any(pads):
        lo = [min(p, 0) for p in pads]
        if any(lo):  # negative: crop first (convolution pads are never negative)
            x = b.call("pad", x, pads=[0, 0, *lo[:r], 0, 0, *lo[r:]])
        pads = [max(p, 0) for p in pads]
    cin, cout_g = w.shape[:2]
    wf = b.reshape(w, (g, cin // g, cout_g, *kernel))
    wf = b.call("transpose", wf, perm=(0, 2, 1, *range(3, 3 + r)))
    wf = b.reshape(wf, (g * cout_g, cin // g, *kernel))
    wf = b.call("slice", wf, starts=[kk - 1 for kk in kernel], ends=[-kk - 1 for kk in kernel],
                axes=list(range(2, 2 + r)), steps=[-1] * r)
    y = b.call(_op("conv2d", k), x, wf, *([] if bias is None else [bias]), stride=(1,) * r,
               dilation=d, pad=pads, groups=g)
    return b.reshape(y, (*y.shape[:2], y.shape[3])) if k == 1 else y


def _convtranspose_pads(n, spatial, kernel, s, d, outpad):
    k = len(spatial)
    out_shape = n.get("output_shape")
    mode = n.get("auto_pad", "NOTSET")
    if out_shape is None and mode in ("NOTSET", "", "VALID"):
        pads = list(n.get("pads", [0] * (2 * k))) if mode != "VALID" else [0] * (2 * k)
        return pads[:k], pads[k:]
    out_shape = list(out_shape)[-k:] if out_shape is not None else \
        [size * st for size, st in zip(spatial, s)]
    begins, ends = [], []
    for i in range(k):
        total = s[i] * (spatial[i] - 1) + outpad[i] + (kernel[i] - 1) * d[i] + 1 - out_shape[i]
        if mode == "SAME_UPPER":
            begins.append(total // 2)
            ends.append(total - total // 2)
        else:
            begins.append(total - total // 2)
            ends.append(total // 2)
    return begins, ends


def _pool(b: Builder, n: OnnxNode, x, op: str, **extra):
    k = _spatial(b, n, x, "pooling")
    kernel = list(n.get("kernel_shape"))
    strides, dil = list(n.get("strides", [1] * k)), list(n.get("dilations", [1] * k))
    begins, ends = window_pads(n, x.shape[2:], kernel, strides, dil)
    if k == 1:
        kernel, strides, dil = [1, *kernel], [1, *strides], [1, *dil]
        begins, ends = [0, *begins], [0, *ends]
    ceil = bool(n.get("ceil_mode", 0))
    x4 = _to_2d(b, x)
    pad = [*begins, *ends]
    if any(p > kk // 2 for p, kk in zip(pad, kernel * 2)):
        # wider than the registry's pools allow: pad explicitly, then pool without padding
        size = x4.shape[2:]
        if op == "avg_pool2d" and not extra["count_include_pad"]:
            y = _average_of_real(b, x4, kernel, strides, begins, ends, dil, ceil)
        else:
            fill = -np.inf if op == "max_pool2d" else 0.0
            padded = b.call("pad", x4, pads=[0, 0, *begins, 0, 0, *ends], value=fill)
            y = b.call(_op(op, k), padded, kernel=kernel, stride=strides, pad=[0] * len(pad),
                       dilation=dil, ceil_mode=ceil, **extra)
        if ceil:
            y = _drop_windows_in_padding(b, y, size, kernel, strides, begins, ends, dil)
    else:
        y = b.call(_op(op, k), x4, kernel=kernel, stride=strides, pad=pad, dilation=dil,
                   ceil_mode=ceil, **extra)
    return b.reshape(y, (*y.shape[:2], y.shape[3])) if k == 1 else y


def _drop_windows_in_padding(b: Builder, y, size, kernel, strides, begins, ends, dil):
    """Pooled over an explicitly padded input, ceil_mode keeps a last window that starts in
    the end padding; ONNX (and torch) drop it: the output cut to the lengths window_out's
    rule gives for the unpadded input."""
    want = [window_out(n_, kk, s, lo, hi, d, True)
            for n_, kk, s, lo, hi, d in zip(size, kernel, strides, begins, ends, dil)]
    if list(y.shape[2:]) == want:
        return y
    return b.call("slice", y, starts=[0] * len(want), ends=want,
                  axes=list(range(2, 2 + len(want))))


def _average_of_real(b: Builder, x, kernel, strides, begins, ends, dil, ceil):
    """Average pooling that counts only the input's own elements, with pads wider than the
    registry's pools take: the window sums over the input padded with zeros, divided by the
    window counts (the same pooling of ones padded with zeros: a constant, folded here).
    Both are divided by the registry's window size, which cancels."""
    pads = [0, 0, *begins, 0, 0, *ends]
    attrs = dict(kernel=kernel, stride=strides, pad=[0] * (2 * len(kernel)), dilation=dil,
                 ceil_mode=ceil, count_include_pad=True)
    op = _op("avg_pool2d", len(kernel))
    sums = b.call(op, b.call("pad", x, pads=pads, value=0.0), **attrs)
    ones = np.ones((1, 1, *x.shape[2:]), dtype(x))
    counts = b.call(op, b.call("pad", ones, pads=pads, value=0.0), **attrs)
    return b.call("div", sums, counts)


@handler
def MaxPool(b: Builder, n: OnnxNode, x):
    integer = dtype(x) == np.int32 and not is_const(x)  # (uint8, int8 read widened)
    if integer:  # exact in float64
        x = b.call("cast", x, dtype="f64")
    y = _pool(b, n, x, "max_pool2d")
    out = b.call("cast", y, dtype="i32") if integer else y
    if len(n.outputs) > 1 and n.used[1]:
        return out, _max_pool_indices(b, n, x, y)
    return out


MAX_WINDOW = 64  # window positions the Indices output is built for, one comparison each


def _max_pool_indices(b: Builder, n: OnnxNode, x, y):
    """MaxPool's Indices: the flat position in x ([N, C, H, W] read row-major, or with H and
    W swapped for storage_order=1) of each window's first maximum in row-major window order,
    padding never chosen. One strided slice of x per window position is compared with the
    pooled maximum; from the last position to the first, a match takes its (constant)
    index, so the first match wins."""
    k = _spatial(b, n, x, "pooling")
    if k == 3:
        raise Unsupported("the Indices output of a 3-D MaxPool")
    kernel = list(n.get("kernel_shape"))
    strides, dil = list(n.get("strides", [1] * k)), list(n.get("dilations", [1] * k))
    begins, _ = window_pads(n, x.shape[2:], kernel, strides, dil)
    if k == 1:
        kernel, strides, dil, begins = [1, *kernel], [1, *strides], [1, *dil], [0, *begins]
    if math.prod(kernel) > MAX_WINDOW:
        raise Unsupported(f"the Indices output of MaxPool over {math.prod(kernel)} window "
                          f"positions (Lamina builds it for up to {MAX_WINDOW})")
    x4, y4 = _to_2d(b, x), _to_2d(b, y)
    nb, c, h, w = x4.shape
    oh, ow = y4.shape[2:]
    # padded with -inf far enough for every window (ceil_mode's last ones included)
    reach = [(o - 1) * s + (kk - 1) * d + 1 for o, s, kk, d in zip((oh, ow), strides, kernel,
                                                                     dil)]
    after = [max(r - p - size, 0) for r, p, size in zip(reach, begins, (h, w))]
    xp = b.call("pad", x4, pads=[0, 0, *begins, 0, 0, *after], value=-np.inf) \
        if any(begins + after) else x4
    rows, cols = np.arange(oh)[:, None] * strides[0], np.arange(ow)[None, :] * strides[1]
    order = int(n.get("storage_order", 0))
    idx = None
    for i, j in reversed([(i, j) for i in range(kernel[0]) for j in range(kernel[1])]):
        hh, ww = rows + i * dil[0] - begins[0], cols + j * dil[1] - begins[1]
        flat = (hh * w + ww if order == 0 else hh + ww * h).astype(np.int64)[None, None]
        if idx is None:
            idx = flat
            continue
        part = b.call("slice", xp, starts=[i * dil[0], j * dil[1]],
                      ends=[i * dil[0] + (oh - 1) * strides[0] + 1,
                            j * dil[1] + (ow - 1) * strides[1] + 1],
                      axes=[2, 3], steps=strides)
        hit = b.call("equal", part, y4)
        real = ((hh >= 0) & (hh < h) & (ww >= 0) & (ww < w))[None, None]
        if not real.all():
            hit = b.call("where", real, hit, np.asarray(False))
        idx = b.call("where", hit, flat, idx)
    base = (np.arange(nb * c, dtype=np.int64) * (h * w)).reshape(nb, c, 1, 1)
    idx = b.call("add", b.call("broadcast_to", idx, shape=[nb, c, oh, ow])
                 if is_const(idx) else idx, base)
    return b.reshape(idx, y.shape)


@handler
def AveragePool(b: Builder, n: OnnxNode, x):
    return _pool(b, n, x, "avg_pool2d", count_include_pad=bool(n.get("count_include_pad", 0)))


@handler
def LpPool(b: Builder, n: OnnxNode, x):
    """(sum of |x|^p over each window)^(1/p): an average pool counting padding, times the
    window size."""
    if n.get("ceil_mode", 0):
        raise Unsupported("LpPool with ceil_mode")
    p = float(n.get("p", 2))
    mag = b.call("mul", x, x) if p == 2 else b.call("pow", b.call("abs", x), like(x, p))
    avg = _pool(b, n, mag, "avg_pool2d", count_include_pad=True)
    size = math.prod(n.get("kernel_shape"))
    total = b.call("mul", avg, like(x, size))
    return b.call("sqrt", total) if p == 2 else b.call("pow", total, like(x, 1 / p))


@handler
def GlobalAveragePool(b: Builder, n: OnnxNode, x):
    return b.call("global_avg_pool", x)


@handler
def GlobalMaxPool(b: Builder, n: OnnxNode, x):
    return b.call("reduce_max", x, axes=list(range(2, rank(x))), keepdims=True)


# ---- normalisation -------------------------------------------------------------------------
@handler
def BatchNormalization(b: Builder, n: OnnxNode, x, scale, bias, mean, var):
    if b.opset < 9 and not n.get("spatial", 1):
        raise Unsupported("BatchNormalization with spatial=0 (per-activation statistics)")
    eps = float(n.get("epsilon", 1e-5))
    if b.opset >= 14 and n.get("training_mode", 0) and any(n.used[1:3]):
        return _batch_norm_training(b, n, x, scale, bias, mean, var, eps)
    training = (b.opset < 7 and not n.get("is_test", 0)) or bool(n.get("training_mode", 0)) \
        or any(n.used[1:])
    if training:
        b.warn_training("batch norm normalised with its running statistics (inference)")
    return b.call("batch_norm", x, scale, bias, mean, var, eps=eps)


def _batch_norm_training(b: Builder, n: OnnxNode, x, scale, bias, mean, var, eps):
    """A graph that reads the updated running statistics is a training step, computed as
    ONNX says: normalised with the batch's mean and biased variance, and the running ones
    moved toward them (running * momentum + batch * (1 - momentum))."""
    y = b.call("batch_norm", x, scale, bias, mean, var, eps=eps, training=True)
    axes = [0, *range(2, rank(x))]
    batch_mean = b.call("reduce_mean", x, axes=axes, keepdims=True)
    diff = b.call("sub", x, batch_mean)
    batch_var = b.call("reduce_mean", b.call("mul", diff, diff), axes=axes)
    momentum = float(n.get("momentum", 0.9))

    def update(running, batch):
        return b.call("add", b.call("mul", running, like(running, momentum)),
                      b.call("mul", batch, like(batch, 1 - momentum)))

    return (y, update(mean, b.reshape(batch_mean, (x.shape[1],))), update(var, batch_var))


@handler
def InstanceNormalization(b: Builder, n: OnnxNode, x, scale, bias):
    if rank(x) < 3:
        raise Unsupported("InstanceNormalization of a rank-2 input")
    y = b.call("layer_norm", x, axis=2, eps=float(n.get("epsilon", 1e-5)))
    per_channel = (x.shape[1], *[1] * (rank(x) - 2))
    y = b.call("mul", y, b.reshape(scale, per_channel))
    return b.call("add", y, b.reshape(bias, per_channel))


@handler
def LayerNormalization(b: Builder, n: OnnxNode, x, scale, bias=None):
    axis = norm_axis(n.get("axis", -1), rank(x))
    eps = float(n.get("epsilon", 1e-5))
    norm = tuple(x.shape[axis:])
    params = []
    for p in (scale, bias):
        if p is not None and tuple(p.shape) != norm and is_const(p):
            p = np.ascontiguousarray(np.broadcast_to(p, norm))
        params.append(p)
    scale, bias = params
    if all(p is None or tuple(p.shape) == norm for p in params):
        if scale is None and bias is not None:
            scale = np.ones(norm, dtype(x))
        args = [p for p in (scale, bias) if p is not None]
        y = b.call("layer_norm", x, *args, axis=axis, eps=eps)
    else:  # run-time parameters that broadcast: apply them after normalising
        y = b.call("layer_norm", x, axis=axis, eps=eps)
        y = b.call("mul", y, scale)
        y = y if bias is None else b.call("add", y, bias)
    if not any(n.used[1:]):
        return y
    axes = tuple(range(axis, rank(x)))
    mean = b.call("reduce_mean", x, axes=axes, keepdims=True)
    diff = b.call("sub", x, mean)
    var = b.call("reduce_mean", b.call("mul", diff, diff), axes=axes, keepdims=True)
    inv = b.call("div", like(x, 1), b.call("sqrt", b.call("add", var, like(x, eps))))
    return y, mean, inv


@handler
def LRN(b: Builder, n: OnnxNode, x):
    """x / (bias + alpha/size * sum of squares over `size` neighbouring channels) ** beta;
    the window sum is an average pool over the channel axis (count_include_pad)."""
    size = n.get("size")
    alpha, beta, bias = n.get("alpha", 1e-4), n.get("beta", 0.75), n.get("bias", 1.0)
    nb, c = x.shape[:2]
    rest = math.prod(x.shape[2:])
    sq = b.reshape(b.call("mul", x, x), (nb, 1, c, rest))
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    avg = b.call("avg_pool2d", sq, kernel=(size, 1), stride=(1, 1), pad=(lo, 0, hi, 0),
                 count_include_pad=True)
    den = b.call("add", b.call("mul", b.reshape(avg, x.shape), like(x, alpha)), like(x, bias))
    return b.call("div", x, b.call("pow", den, like(x, beta)))


# ---- Einsum --------------------------------------------------------------------------------
@handler
def Einsum(b: Builder, n: OnnxNode, *xs):
    """Each operand's diagonals taken, its axes laid out in one shared letter order (output
    letters first, then the summed ones) with 1 for letters it lacks; the broadcast product,
    summed over the letters the output drops. Two operands that are a (batched) matrix
    product go through matmul instead of the broadcast product."""
    eq = n.get("equation")
    eq = (eq.decode() if isinstance(eq, bytes) else eq).replace(" ", "")
    lhs, arrow, out = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(xs):
        raise ValueError(f"equation '{eq}' has {len(terms)} operands, the node {len(xs)}")
    dots = max([rank(x) - len(t.replace("...", "")) for t, x in zip(terms, xs)
                if "..." in t] or [0])
    spare = [c for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ" if c not in eq][:dots]
    terms = [t.replace("...", "".join(spare[dots - (rank(x) - len(t) + 3):]))
             for t, x in zip(terms, xs)]
    if not arrow:  # implicit output: the broadcast axes, then letters used once, sorted
        once = sorted(c for c in set("".join(terms)) if "".join(terms).count(c) == 1
                      and c not in spare)
        out = "".join(spare) + "".join(once)
    out = out.replace("...", "".join(spare))
    ops = []
    for t, x in zip(terms, xs):
        if len(t) != rank(x):
            raise ValueError(f"operand '{t}' of '{eq}' has rank {rank(x)}")
        ops.append(_diagonals(b, t, x))
    sizes = {}
    for t, x in ops:
        for c, d in zip(t, x.shape):
            sizes[c] = max(sizes.get(c, 1), d)
    if len(ops) == 2:
        y = _einsum_matmul(b, ops, out, sizes)
        if y is not None:
            return y
    order = out + "".join(sorted(set(sizes) - set(out)))
    prod = None
    for t, x in ops:
        here = [c for c in order if c in t]
        perm = [t.index(c) for c in here]
        if perm != list(range(len(t))):
            x = b.call("transpose", x, perm=perm)
        x = b.reshape(x, [x.shape[here.index(c)] if c in t else 1 for c in order])
        prod = x if prod is None else b.call("mul", prod, x)
    summed = list(range(len(out), len(order)))
    if summed:
        prod = b.call("reduce_sum", prod, axes=summed, keepdims=False)
    if tuple(prod.shape) != tuple(sizes[c] for c in out):  # broadcast 1s kept in the output
        prod = b.call("broadcast_to", prod, shape=[sizes[c] for c in out])
    return prod


def _diagonals(b: Builder, t: str, x):
    """(letters, operand) with each letter repeated in `t` reduced to its diagonal."""
    while len(set(t)) < len(t):
        c = next(c for c in t if t.count(c) > 1)
        i, j = t.index(c), t.index(c, t.index(c) + 1)
        d = x.shape[i]
        eye = np.eye(d, dtype=np.bool_).reshape([d if k in (i, j) else 1
                                                 for k in range(len(t))])
        x = b.call("reduce_sum", b.call("where", eye, x, like(x, 0)), axes=[j],
                   keepdims=False)
        t = t[:j] + t[j + 1:]
    return t, x


def _einsum_matmul(b: Builder, ops, out: str, sizes: dict):
    """A two-operand einsum as [B, M, K] @ [B, K, N]; None when it is not one (a letter
    summed from one operand alone, or broadcasting between them)."""
    (ta, a), (tb, bb) = ops
    batch = [c for c in out if c in ta and c in tb]
    left = [c for c in out if c in ta and c not in tb]
    right = [c for c in out if c in tb and c not in ta]
    inner = [c for c in ta if c in tb and c not in out]
    if len(batch + left + inner) != len(ta) or len(batch + right + inner) != len(tb) \
            or any(a.shape[ta.index(c)] != bb.shape[tb.index(c)] for c in batch + inner):
        return None

    def lay(t, x, first, second):
        perm = [t.index(c) for c in batch + first + second]
        x = x if perm == list(range(len(t))) else b.call("transpose", x, perm=perm)
        return b.reshape(x, (math.prod(sizes[c] for c in batch),
                             math.prod(sizes[c] for c in first),
                             math.prod(sizes[c] for c in second)))

    y = b.call("matmul", lay(ta, a, left, inner), lay(tb, bb, inner, right))
    y = b.reshape(y, [sizes[c] for c in batch + left + right])
    now = batch + left + right
    perm = [now.index(c) for c in out]
    return y if perm == list(range(len(out))) else b.call("transpose", y, perm=perm)
