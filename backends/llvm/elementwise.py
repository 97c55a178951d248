"""Elementwise kernels: unary maps, numpy-broadcasting binary ops, cast, constant, dropout.

One kernel shape serves them all (`map_kernel`): the output's index space, with every
operand's broadcast strides, is collapsed to as few axes as possible; the innermost axis is a
vector loop (16 float lanes with AVX-512, 8 with AVX2, 4 with SSE) followed by a scalar
remainder, operands broadcast along it are loaded once and splatted. Work items are
(outer index, chunk of the inner axis), so threads can share even a single long row.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import vmath
from .builder import ITEMSIZE, KBuilder, const, is_float, lanes_of, vec_type
from .emit import EMITTERS, emit
from .kernel import Buf, Kernel
from .loops import (
    broadcast_strides,
    chunking,
    collapse,
    contiguous_strides,
    offsets,
    prod,
    vector_loop,
)
from .registry import lowering

# Rough cost of one element, relative to an add, for the threading decision.
EXPENSIVE = {"exp": 15, "log": 15, "tanh": 20, "erf": 15, "sigmoid": 20, "softplus": 35,
             "gelu": 25, "elu": 20, "pow": 40, "sqrt": 4, "div": 4}


def map_kernel(k: Kernel, fn: Callable, ins: list[Buf] | None = None,
               out: Buf | None = None, cost: float = 1.0, lanes: int | None = None) -> None:
    """out[i] = fn(b, [in0[i'], in1[i'], ...]) with numpy broadcasting of the inputs."""
    ins = k.inputs if ins is None else ins
    out = k.outputs[0] if out is None else out
    shape = out.shape
    strides = [contiguous_strides(shape)] + [broadcast_strides(i.shape, shape) for i in ins]
    dims, strd = collapse(shape, strides)
    assert all(s[-1] in (0, 1) for s in strd), strd
    outer_dims, inner = dims[:-1], dims[-1]
    lanes = lanes or k.cg.lanes(max(ITEMSIZE[t.dtype] for t in [out, *ins]))
    nchunks, chunk = chunking(prod(outer_dims), inner, lanes)
    if out.size == 0:
        return

    def body(b: KBuilder, lo, hi, worker):
        with b.loop(lo, hi, name="item") as item:
            o, c = (item, None) if nchunks == 1 else (
                b.udiv(item, b.i64(nchunks)), b.urem(item, b.i64(nchunks)))
            offs = offsets(b, o, outer_dims, [s[:-1] for s in strd])
            start = b.i64(0) if c is None else b.mul(c, b.i64(chunk))
            stop = b.i64(inner) if c is None else _min(b, b.add(start, b.i64(chunk)), inner)
            splats = [None if s[-1] else b.vload(buf.ptr, off, buf.elem)
                      for buf, s, off in zip(ins, strd[1:], offs[1:])]

            def step(i, width):
                vals = [b.splat(sc, width) if sc is not None
                        else b.vload(buf.ptr, b.add(off, i), buf.elem, width)
                        for buf, sc, off in zip(ins, splats, offs[1:])]
                res = fn(b, vals) if ins else b.splat(fn(b, []), width)  # no inputs: a scalar
                b.vstore(res, out.ptr, b.add(offs[0], i))

            vector_loop(b, start, stop, lanes, step)

    k.phase(prod(outer_dims) * nchunks, body, bufs=[*ins, out], cost=out.size * cost)


def _min(b: KBuilder, x, n: int):
    c = b.i64(n)
    return b.select(b.icmp_signed("<", x, c), x, c)


UNARY = ("relu", "relu6", "leaky_relu", "elu", "sigmoid", "tanh", "softplus", "gelu", "erf",
         "exp", "log", "sqrt", "neg", "abs", "clip")
BINARY = ("add", "sub", "mul", "div", "pow", "maximum", "minimum", "greater", "equal",
          "where")


@lowering(*UNARY, *BINARY)
def lower_elementwise(k: Kernel) -> None:
    op, attrs, dtype = k.node.op, k.attrs, k.outputs[0].dtype
    assert op in EMITTERS, op
    map_kernel(k, lambda b, xs: emit(b, op, xs, dtype, attrs), cost=EXPENSIVE.get(op, 1))


@lowering("broadcast_to")
def lower_broadcast_to(k: Kernel) -> None:
    """numpy broadcasting does it: the output's index space read with stride 0 on size-1 axes."""
    map_kernel(k, lambda b, xs: xs[0])


@lowering("cast")
def lower_cast(k: Kernel) -> None:
    src, dst = k.inputs[0].dtype, k.outputs[0].dtype
    map_kernel(k, lambda b, xs: convert(b, xs[0], src, dst))


def convert(b: KBuilder, x, src: str, dst: str):
    """numpy's astype for one value: C conversions; to bool means != 0 (NaN is True)."""
    to = vec_type(dst, lanes_of(x.type))
    if src == dst:
        return x
    if dst == "bool":
        nz = (b.fcmp_unordered("!=", x, const(x.type, 0)) if is_float(x.type)
              else b.icmp_unsigned("!=", x, const(x.type, 0)))
        return b.zext(nz, to)
    if src in ("bool", "u8"):  # unsigned: zero-extended
        return b.uitofp(x, to) if dst in ("f32", "f64") else \
            b.zext(x, to) if ITEMSIZE[dst] > 1 else x
    if src in ("f32", "f64") and dst in ("f32", "f64"):
        return b.fpext(x, to) if dst == "f64" else b.fptrunc(x, to)
    if src in ("f32", "f64"):
        return b.fptoui(x, to) if dst == "u8" else b.fptosi(x, to)
    if dst in ("f32", "f64"):
        return b.sitofp(x, to)
    return b.sext(x, to) if ITEMSIZE[dst] > ITEMSIZE[src] else b.trunc(x, to)


@lowering("constant")
def lower_constant(k: Kernel) -> None:
    """Fill with the value converted exactly as numpy's np.full converts it."""
    out = k.outputs[0]
    value = np.full((), k.attrs["value"], out.type.np_dtype)
    scalar = (float(value) if out.dtype in ("f32", "f64") else int(value))

    map_kernel(k, lambda b, xs: const(out.elem, scalar), ins=[])


# ---- trigonometry, hyperbolic functions, rounding, bit operators -------------------------
# sin, cos and tan are vectorised (vmath); the rarer ones call the C library lane by lane.
LIBM = ("asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh")
for _name in LIBM:
    EMITTERS[_name] = (lambda fn: lambda b, xs, dtype: vmath.per_lane(b, fn, xs[0]))(_name)
for _name, _fn in (("sin", vmath.sin), ("cos", vmath.cos), ("tan", vmath.tan)):
    EMITTERS[_name] = (lambda fn: lambda b, xs, dtype: fn(b, xs[0]))(_fn)
EMITTERS["round"] = lambda b, xs, dtype: b.intrinsic("roundeven", xs)
EMITTERS["bitwise_and"] = lambda b, xs, dtype: b.and_(*xs)
EMITTERS["bitwise_or"] = lambda b, xs, dtype: b.or_(*xs)
EMITTERS["bitwise_xor"] = lambda b, xs, dtype: b.xor(*xs)
EMITTERS["bitwise_not"] = lambda b, xs, dtype: b.xor(xs[0], const(xs[0].type, -1))
EMITTERS["bitcast"] = lambda b, xs, out, dtype: b.bitcast(xs[0], vec_type(dtype, lanes_of(
    xs[0].type)))  # (`out` is the output dtype, the same as the attribute)


def _bit_shift(b, xs, dtype, direction):
    """shl / ashr with the count clamped below the width (LLVM makes larger ones poison);
    a left shift by more gives 0."""
    x, s = xs
    top = const(x.type, (x.type.element if lanes_of(x.type) > 1 else x.type).width - 1)
    inside = b.icmp_unsigned("<=", s, top)  # unsigned: negative counts are huge
    count = b.select(inside, s, top)
    if direction == "right":
        return b.ashr(x, count)
    return b.select(inside, b.shl(x, count), const(x.type, 0))


EMITTERS["bit_shift"] = _bit_shift
EXPENSIVE.update({"sin": 20, "cos": 20, "tan": 25, **dict.fromkeys(LIBM, 40)})


@lowering(*LIBM, "sin", "cos", "tan", "round", "bitwise_and", "bitwise_or", "bitwise_xor",
          "bitwise_not", "bit_shift", "bitcast")
def lower_math(k: Kernel) -> None:
    lower_elementwise(k)
