"""ONNX trigonometry, hyperbolic functions, Round, the bitwise operators, BitShift and
BitCast on run-time inputs: onnx's node cases through the native backend (the conformance
test runs them on the reference interpreter), and models of our own against numpy
computed here, including the values the node cases leave out (halves, domains, IEEE
specials, wide arguments, shift counts, unsigned types the importer widens)."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import TensorProto, helper  # noqa: E402

import compiler  # noqa: E402
from compiler import load_onnx  # noqa: E402

from .onnx_util import model  # noqa: E402
from .test_onnx_import import NODE_CASES, _check_expected, _import_case, _tensor  # noqa: E402

N = helper.make_node
_rng = np.random.default_rng(11)
OPS = ("Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh",
       "Round", "BitwiseAnd", "BitwiseOr", "BitwiseXor", "BitwiseNot", "BitShift", "BitCast")
MATH_CASES = [c for c in NODE_CASES if {n.op_type for n in c.model.graph.node} & set(OPS)]


@pytest.mark.parametrize("c", MATH_CASES, ids=lambda c: c.name)
def test_node_case_native(c):
    for inputs, outputs in c.data_sets:
        inputs, outputs = [_tensor(t) for t in inputs], [_tensor(t) for t in outputs]
        g, inputs = _import_case(c.model, inputs)
        _check_expected(g, inputs, outputs, c.rtol, c.atol, c.name, backend="llvm")


def test_the_node_cases_are_found():
    names = {c.name for c in MATH_CASES}
    assert {"test_sin", "test_round", "test_bitwise_not_2d", "test_bitcast_float32_to_int32",
            "test_bitshift_left_uint8"} <= names


def _native(m, *feeds):
    """The model compiled for the native backend (narrow integer inputs and outputs are
    converted at the boundary, as for any ONNX file)."""
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "m.onnx")
        onnx.save(m, path)
        out = compiler.compile(path, *feeds, backend="llvm")(*feeds)
    return out if isinstance(out, tuple) else (out,)


def _unary_model(op, x, opset=21):
    return model([N(op, ["x"], ["y"])], {"x": x}, opset=opset, out_dtype=x.dtype)


# numpy's own functions on float64, rounded once: the exact answer to float32's precision
UNARY = {"Sin": np.sin, "Cos": np.cos, "Tan": np.tan, "Asin": np.arcsin, "Acos": np.arccos,
         "Atan": np.arctan, "Sinh": np.sinh, "Cosh": np.cosh, "Asinh": np.arcsinh,
         "Acosh": np.arccosh, "Atanh": np.arctanh}
WIDE = np.concatenate([_rng.uniform(-30, 30, 61), [0.0, -0.0, math.inf, -math.inf, math.nan,
                                                     2e5, -6e5, 3e9, 1e-30]]).astype(np.float32)
UNIT = np.concatenate([_rng.uniform(-1, 1, 37), [1, -1, 1.0001, -2, 0, -0.0,
                                                 math.nan]]).astype(np.float32)
ABOVE_ONE = np.concatenate([_rng.uniform(1, 1e4, 37), [1, 0.5, math.inf]]).astype(np.float32)
DOMAIN = {"Asin": UNIT, "Acos": UNIT, "Atanh": UNIT, "Acosh": ABOVE_ONE}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("op", list(UNARY))
def test_unary_against_numpy(op, dtype):
    x = DOMAIN.get(op, WIDE).astype(dtype)
    with np.errstate(all="ignore"):
        want = UNARY[op](x.astype(np.float64)).astype(dtype)
    (got,) = _native(_unary_model(op, x), x)
    assert got.dtype == dtype
    tol = 3e-7 if dtype == np.float32 else 1e-15
    np.testing.assert_allclose(got, want, rtol=tol, atol=1e-37, equal_nan=True, err_msg=op)


def test_sin_cos_tan_keep_precision_over_a_wide_range():
    """The vectorised path (|x| < 2**19) against float64 numpy, within 1 ulp-ish absolute
    relative to the result scale (near zeros of sin the result is as exact as float32 x)."""
    x = np.linspace(-5.2e5, 5.2e5, 100_003, dtype=np.float32)
    xd = x.astype(np.float64)
    for op, fn in (("Sin", np.sin), ("Cos", np.cos)):
        (got,) = _native(_unary_model(op, x), x)
        np.testing.assert_allclose(got, fn(xd), rtol=0, atol=1.2e-7, err_msg=op)
    (got,) = _native(_unary_model("Tan", x), x)
    np.testing.assert_allclose(got, np.tan(xd), rtol=2.5e-7, atol=1.2e-7)


def test_sin_and_tan_keep_the_sign_of_zero():
    x = np.array([-0.0, 0.0], np.float32)
    for op in ("Sin", "Tan", "Asin", "Atan", "Sinh", "Asinh", "Atanh", "Round"):
        (got,) = _native(_unary_model(op, x), x)
        assert list(np.signbit(got)) == [True, False], op


def test_round_halves_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 3.5, 0.49999997, -0.50000006, 2.0**23 + 1,
                  1e30, math.inf, math.nan, -1.2, 7.7], np.float32)
    want = [-2, -2, -0.0, 0, 2, 2, 4, 0, -1, 2.0**23 + 1, 1e30, math.inf, math.nan, -1, 8]
    for dtype in (np.float32, np.float64):
        (got,) = _native(_unary_model("Round", x.astype(dtype)), x.astype(dtype))
        np.testing.assert_array_equal(got, np.array(want, np.float32).astype(dtype))


# ---- bit operators -------------------------------------------------------------------------
def _binary_model(op, a, b, **attrs):
    return model([N(op, ["a", "b"], ["y"], **attrs)], {"a": a, "b": b}, opset=21,
                 out_dtype=a.dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.uint32,
                                   np.int64, np.uint64])
def test_bitwise_on_every_integer_type(dtype):
    info = np.iinfo(dtype)
    a = _rng.integers(info.min, info.max, (3, 5), dtype=dtype, endpoint=True)
    b = _rng.integers(info.min, info.max, (5,), dtype=dtype, endpoint=True)
    for op, fn in (("BitwiseAnd", np.bitwise_and), ("BitwiseOr", np.bitwise_or),
                   ("BitwiseXor", np.bitwise_xor)):
        (got,) = _native(_binary_model(op, a, b), a, b)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, fn(a, b), err_msg=op)
    (got,) = _native(_unary_model("BitwiseNot", a), a)
    np.testing.assert_array_equal(got, ~a)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.uint32, np.uint64, np.int32])
def test_bit_shift(dtype):
    """Unsigned types (the importer computes them widened): the bits shifted past the type
    are gone, a right shift brings in zeros; int32 (opset 25 allows signed): arithmetic."""
    bits = 8 * np.dtype(dtype).itemsize
    info = np.iinfo(dtype)
    top = info.max if dtype != np.uint64 else 2**62  # uint64 past 2**63 wraps (documented)
    x = _rng.integers(info.min, top, (4, 9), dtype=dtype, endpoint=True)
    s = _rng.integers(0, bits, (9,)).astype(dtype)
    opset = 25 if dtype == np.int32 else 21
    for direction in ("LEFT", "RIGHT"):
        m = model([N("BitShift", ["a", "b"], ["y"], direction=direction)], {"a": x, "b": s},
                  opset=opset, out_dtype=dtype)
        (got,) = _native(m, x, s)
        py = [[(int(v) << int(c) if direction == "LEFT" else int(v) >> int(c))
               for v, c in zip(row, s)] for row in x]
        unsigned = np.dtype(f"u{bits // 8}")
        want = np.array([[v % 2**bits for v in row] for row in py], np.uint64).astype(unsigned)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got.view(unsigned), want, err_msg=direction)


def test_bit_shift_counts_past_the_width():
    """A shift by the width or more: 0 to the left, the sign to the right (not C's
    undefined behaviour); a negative count reads as huge."""
    x = np.array([5, -5, 1, -1, 7], np.int32)
    s = np.array([32, 40, 100, -1, 31], np.int32)
    for direction, want in (("LEFT", [0, 0, 0, 0, -2**31]), ("RIGHT", [0, -1, 0, -1, 0])):
        m = model([N("BitShift", ["a", "b"], ["y"], direction=direction)], {"a": x, "b": s},
                  opset=25, out_dtype=np.int32)
        (got,) = _native(m, x, s)
        np.testing.assert_array_equal(got, want, err_msg=direction)


@pytest.mark.parametrize("src,to", [(np.float32, np.int32), (np.int32, np.float32),
                                    (np.float64, np.int64), (np.int64, np.float64),
                                    (np.float64, np.uint64)])
def test_bitcast(src, to):
    x = (_rng.standard_normal(37) * 1e3).astype(src) if np.dtype(src).kind == "f" else \
        _rng.integers(-2**20, 2**20, 37).astype(src)
    m = model([N("BitCast", ["x"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype(to)))],
              {"x": x}, opset=26, out_dtype=to)
    (got,) = _native(m, x)
    assert got.dtype == to
    np.testing.assert_array_equal(got.view(np.uint8), x.view(np.uint8))


def test_bitcast_between_sizes_is_refused():
    x = np.zeros(3, np.float32)
    m = model([N("BitCast", ["x"], ["y"], to=TensorProto.INT64)], {"x": x}, opset=26,
              out_dtype=np.int64)
    with pytest.raises(compiler.OnnxImportError, match="BitCast"):
        load_onnx(m)


@pytest.mark.parametrize("src,to", [(np.int8, np.uint8), (np.uint8, np.int8),
                                    (np.uint16, np.int16), (np.int16, np.uint16),
                                    (np.int32, np.uint32), (np.uint32, np.int32),
                                    (np.uint32, np.float32), (np.bool_, np.uint8)])
def test_bitcast_of_types_the_importer_widens(src, to):
    """Narrow and unsigned types run widened: the stored bits are what is reinterpreted."""
    if src == np.bool_:
        x = _rng.integers(0, 2, 17).astype(np.bool_)
    else:
        info = np.iinfo(src)
        x = _rng.integers(info.min, info.max, 17, dtype=src, endpoint=True)
        if to == np.float32:  # finite floats only (NaN payloads compare unequal)
            x = x & np.uint32(0xBFFFFFFF)
    m = model([N("BitCast", ["x"], ["y"], to=helper.np_dtype_to_tensor_dtype(np.dtype(to)))],
              {"x": x}, opset=26, out_dtype=to)
    (got,) = _native(m, x)
    assert got.dtype == to
    np.testing.assert_array_equal(got, x.view(to))


# ---- pooling, batch norm and GatherND paths (issue 15's "other" node cases) ---------------
OTHER = ("test_averagepool_2d_pads", "test_batchnorm_epsilon_training_mode",
         "test_batchnorm_example_training_mode", "test_gathernd_example_int32_batch_dim1",
         "test_maxpool_with_argmax_2d_precomputed_pads",
         "test_maxpool_with_argmax_2d_precomputed_strides", "test_gathernd_example_int32",
         "test_maxpool_2d_uint8", "test_pow_types_int32_float32", "test_pow_types_int32_int32",
         "test_pow_types_int64_float32", "test_pow_types_int64_int64",
         "test_reduce_max_bool_inputs", "test_reduce_min_bool_inputs",
         "test_reduce_max_empty_set_bool")


@pytest.mark.parametrize("c", [c for c in NODE_CASES if c.name in OTHER], ids=lambda c: c.name)
def test_other_node_case_native(c):
    test_node_case_native(c)


def _windows(h, w, kernel, strides, pads, dil, ceil):
    """(out_h, out_w, [(oh, ow, [(hh, ww) real positions in row-major window order])])."""
    def out(size, k, s, lo, hi, d):
        span = size + lo + hi - d * (k - 1) - 1
        o = (-(-span // s) if ceil else span // s) + 1
        return o - 1 if ceil and (o - 1) * s >= size + lo else o

    oh = out(h, kernel[0], strides[0], pads[0], pads[2], dil[0])
    ow = out(w, kernel[1], strides[1], pads[1], pads[3], dil[1])
    cells = []
    for i in range(oh):
        for j in range(ow):
            pos = [(i * strides[0] - pads[0] + a * dil[0], j * strides[1] - pads[1] + c * dil[1])
                   for a in range(kernel[0]) for c in range(kernel[1])]
            cells.append((i, j, [(p, q) for p, q in pos if 0 <= p < h and 0 <= q < w]))
    return oh, ow, cells


def _pool_model(op, x, outputs=("y",), **attrs):
    outs = [("y", x.dtype), ("i", np.int64)][:len(outputs)]
    return model([N(op, ["x"], list(outputs), **attrs)], {"x": x}, outputs=outs, opset=12)


@pytest.mark.parametrize("kernel,strides,pads,dil,ceil,order", [
    ((3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 0, 0),
    ((2, 3), (2, 1), (0, 1, 1, 2), (1, 1), 0, 1),
    ((3, 2), (2, 2), (2, 0, 2, 1), (2, 1), 1, 0),  # pads over half the kernel, ceil_mode
    ((2, 2), (3, 3), (0, 0, 0, 0), (1, 2), 1, 1)])
def test_max_pool_indices(kernel, strides, pads, dil, ceil, order):
    x = _rng.integers(-4, 4, (2, 3, 7, 8)).astype(np.float32)  # many ties: first one wins
    x[0, 0] = -np.inf  # a window of -inf values still points at one of them, never padding
    m = _pool_model("MaxPool", x, ("y", "i"), kernel_shape=kernel, strides=strides, pads=pads,
                    dilations=dil, ceil_mode=ceil, storage_order=order)
    y, idx = _native(m, x)
    nb, c, h, w = x.shape
    oh, ow, cells = _windows(h, w, kernel, strides, pads, dil, ceil)
    assert y.shape == idx.shape == (nb, c, oh, ow)
    for n in range(nb):
        for ch in range(c):
            for i, j, pos in cells:
                vals = [x[n, ch, p, q] for p, q in pos]
                p, q = pos[int(np.argmax(vals))]  # numpy's argmax: the first maximum
                assert y[n, ch, i, j] == max(vals)
                flat = p * w + q if order == 0 else p + q * h
                assert idx[n, ch, i, j] == (n * c + ch) * h * w + flat, (n, ch, i, j)


def test_max_pool_indices_1d():
    x = _rng.standard_normal((2, 3, 11)).astype(np.float32)
    m = _pool_model("MaxPool", x, ("y", "i"), kernel_shape=[3], strides=[2], pads=[1, 1])
    y, idx = _native(m, x)
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1)), constant_values=-np.inf)
    win = np.stack([padded[..., k:k + 11:2] for k in range(3)], -1)
    pos = np.argmax(win, -1) + np.arange(6) * 2 - 1
    np.testing.assert_array_equal(y, win.max(-1))
    np.testing.assert_array_equal(idx, pos + np.arange(6).reshape(2, 3, 1) * 11)


@pytest.mark.parametrize("ceil", [0, 1])
def test_average_pool_wide_pads_not_counted(ceil):
    x = _rng.standard_normal((1, 2, 6, 5)).astype(np.float32)
    kernel, strides, pads = (3, 3), (2, 1), (2, 2, 1, 2)
    m = _pool_model("AveragePool", x, kernel_shape=kernel, strides=strides, pads=pads,
                    ceil_mode=ceil, count_include_pad=0)
    (y,) = _native(m, x)
    oh, ow, cells = _windows(6, 5, kernel, strides, pads, (1, 1), ceil)
    want = np.zeros((1, 2, oh, ow), np.float64)
    for i, j, pos in cells:
        want[:, :, i, j] = np.mean([x[:, :, p, q] for p, q in pos], axis=0)
    np.testing.assert_allclose(y, want, rtol=1e-6, atol=1e-6)


def test_batch_norm_training_outputs():
    x = (_rng.standard_normal((4, 3, 2, 5)) * 3 + 1).astype(np.float32)
    scale, bias = _rng.standard_normal(3).astype(np.float32), _rng.standard_normal(3)
    mean, var = _rng.standard_normal(3), _rng.uniform(0.5, 2, 3)
    bias, mean, var = (v.astype(np.float32) for v in (bias, mean, var))
    m = model([N("BatchNormalization", ["x", "s", "b", "m", "v"], ["y", "rm", "rv"],
                 epsilon=1e-3, momentum=0.8, training_mode=1)],
              {"x": x, "s": scale, "b": bias, "m": mean, "v": var},
              outputs=("y", "rm", "rv"), opset=15)
    y, rm, rv = _native(m, x, scale, bias, mean, var)
    xd = x.astype(np.float64)
    bm, bv = xd.mean((0, 2, 3)), xd.var((0, 2, 3))
    c = (1, 3, 1, 1)
    want = (xd - bm.reshape(c)) / np.sqrt(bv.reshape(c) + 1e-3) * scale.reshape(c) + \
        bias.reshape(c)
    np.testing.assert_allclose(y, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(rm, mean * 0.8 + bm * 0.2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rv, var * 0.8 + bv * 0.2, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.int32, np.int64])
def test_gather_nd_batch_dims(dtype):
    data = (_rng.standard_normal((2, 3, 4, 5, 6)) * 100).astype(dtype)
    idx = np.stack([_rng.integers(-4, 4, (2, 3, 7)), _rng.integers(-5, 5, (2, 3, 7))], -1)
    m = model([N("GatherND", ["d", "i"], ["y"], batch_dims=2)], {"d": data, "i": idx},
              opset=13, out_dtype=dtype)
    (y,) = _native(m, data, idx)
    want = np.array([[[data[a, b, p, q] for p, q in idx[a, b]] for b in range(3)]
                     for a in range(2)])
    np.testing.assert_array_equal(y, want)


def test_integer_pow_and_bool_reductions():
    x = np.array([[2, -3, 0, 7], [1, 5, -2, 4]], np.int32)
    e = np.array([3, 2, 5, 1], np.int32)
    m = model([N("Pow", ["x", "e"], ["y"])], {"x": x, "e": e}, opset=15, out_dtype=np.int32)
    (got,) = _native(m, x, e)
    np.testing.assert_array_equal(got, [[8, 9, 0, 7], [1, 25, -32, 4]])
    b = np.array([[True, False, False], [False, False, False]])
    for op, want in (("ReduceMax", [True, False]), ("ReduceMin", [False, False])):
        m = model([N(op, ["b"], ["y"], axes=[1], keepdims=0)], {"b": b}, opset=13,
                  out_dtype=np.bool_)
        (got,) = _native(m, b)
        np.testing.assert_array_equal(got, want, err_msg=op)
