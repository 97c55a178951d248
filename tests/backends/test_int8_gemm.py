"""The int8 kernels (backends/llvm/int8.py) against the reference semantics, bit for bit:
the qlinear GEMM on VNNI and on the portable path, over odd shapes, extreme values and
thread counts; the u8 guard of the LLVM backend; u8 conversions of `cast`."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends import llvm
from backends.llvm.int8 import has_vnni, pack_weights
from backends.reference import run

RNG = np.random.default_rng(17)
HOST = llvm.host_target()
VNNI = "+avx512vnni" in HOST.features.split(",")


def qlinear_graph(lead, k, n, xdt, dtype="u8", relu=False, bias=True, w=None, b=None):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((*lead, k), xdt))
    w = RNG.integers(-128, 128, (n, k)).astype(np.int8) if w is None else w
    ins = [x, g.add_weight("w", w)]
    if bias:
        b = RNG.integers(-(2**20), 2**20, n).astype(np.int32) if b is None else b
        ins.append(g.add_weight("b", b))
    w_scale = tuple(float(s) for s in RNG.uniform(1e-4, 1e-2, n or 1))
    g.outputs = [g.call("qlinear", *ins, x_scale=0.013, x_zero_point=3 if xdt == "u8" else -9,
                        w_scale=w_scale, y_scale=0.2, y_zero_point=0 if dtype == "f32" else 11,
                        dtype=dtype, relu=relu)]
    return g


def x_for(lead, k, xdt):
    lo, hi = (0, 256) if xdt == "u8" else (-128, 128)
    return RNG.integers(lo, hi, (*lead, k)).astype(np.uint8 if xdt == "u8" else np.int8)


def check(g, x, **options):
    got = llvm.compile_graph(g, **options)(x)
    want = run(g, x)[0]
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # integer outputs: exact; f32: the same ops


SHAPES = [((1,), 1, 1), ((3,), 5, 7), ((8,), 64, 32), ((9,), 4, 16), ((17,), 33, 45),
          ((2, 5), 100, 3), ((31,), 7, 65), ((40,), 128, 96)]


@pytest.mark.parametrize("lead,k,n", SHAPES, ids=str)
@pytest.mark.parametrize("xdt,dtype,relu", [("u8", "u8", False), ("u8", "u8", True),
                                            ("i8", "i8", False), ("i8", "f32", True),
                                            ("u8", "f32", False)])
def test_qlinear_bit_exact_host(lead, k, n, xdt, dtype, relu):
    g = qlinear_graph(lead, k, n, xdt, dtype, relu, bias=n % 2 == 1)
    check(g, x_for(lead, k, xdt), num_threads=1)


@pytest.mark.parametrize("lead,k,n", [((5,), 9, 17), ((33,), 40, 70)], ids=str)
@pytest.mark.parametrize("xdt", ["u8", "i8"])
def test_qlinear_portable_path_bit_exact(lead, k, n, xdt):
    """target_features="avx2": no VNNI, the plain-IR four-byte dot product."""
    g = qlinear_graph(lead, k, n, xdt, "u8", relu=True)
    check(g, x_for(lead, k, xdt), num_threads=1, target_features="avx2")


def test_fast_math_keeps_the_integers_exact():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((9, 21)))
    q = g.call("quantize", x, scale=(0.037,), zero_point=(131,))
    w = g.add_weight("w", RNG.integers(-128, 128, (13, 21)).astype(np.int8))
    y = g.call("qlinear", q, w, x_scale=0.037, x_zero_point=131, w_scale=(0.01,),
               y_scale=0.09, y_zero_point=5, dtype="i8")
    g.outputs = [q, y, g.call("dequantize", y, scale=(0.09,), zero_point=(5,))]
    xv = (RNG.standard_normal((9, 21)) * 4).astype(np.float32)
    for got, want in zip(llvm.compile_graph(g, fast_math=True, num_threads=1)(xv), run(g, xv)):
        np.testing.assert_array_equal(got, want)


def test_qlinear_threads_give_the_same_bits():
    g = qlinear_graph((70,), 96, 130, "u8", "u8")
    x = x_for((70,), 96, "u8")
    one = llvm.compile_graph(g, num_threads=1)(x)
    two = llvm.compile_graph(g, num_threads=2)(x)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, run(g, x)[0])


@pytest.mark.parametrize("features", [None, "avx2"])
@pytest.mark.parametrize("xdt", ["u8", "i8"])
def test_extreme_values_and_saturation(xdt, features):
    """All-extreme operands: the +128 compensation of signed inputs and the largest sums
    (K = 1000: 255 * 128 * 1000 fits int32), outputs saturating at both ends."""
    k, n = 1000, 20
    w = np.where(np.arange(n)[:, None] % 2 == 0, -128, 127) * np.ones((n, k), np.int64)
    g = qlinear_graph((3,), k, n, xdt, "i8", w=w.astype(np.int8))
    lo, hi = (0, 255) if xdt == "u8" else (-128, 127)
    x = np.array([[lo] * k, [hi] * k, [lo, hi] * (k // 2)],
                 np.uint8 if xdt == "u8" else np.int8)
    out = llvm.compile_graph(g, num_threads=1, target_features=features)(x)
    np.testing.assert_array_equal(out, run(g, x)[0])
    assert out.min() == -128 and out.max() == 127  # both ends reached


def test_hand_computed_value():
    """One output worked by hand: x = [10, 20], x_zp = 3, w = [[1, -2]], bias 5:
    acc = 7*1 + 17*(-2) + 5 = -22; y = round(-22 * (0.5 * 0.25 / 0.125)) + 11 = -11."""
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 2), "u8"))
    w = g.add_weight("w", np.array([[1, -2]], np.int8))
    b = g.add_weight("b", np.array([5], np.int32))
    g.outputs = [g.call("qlinear", x, w, b, x_scale=0.5, x_zero_point=3, w_scale=(0.25,),
                        y_scale=0.125, y_zero_point=11, dtype="i8")]
    out = llvm.compile_graph(g, num_threads=1)(np.array([[10, 20]], np.uint8))
    assert out.tolist() == [[-11]]


def test_vnni_instruction_is_used_where_the_host_has_it():
    g = qlinear_graph((16,), 64, 32, "u8")
    model = llvm.compile_graph(g, num_threads=1)
    if VNNI:
        assert "vpdpbusd" in model.asm
    narrowed = llvm.compile_graph(g, num_threads=1, target_features="avx2")
    assert "vpdpbusd" not in narrowed.asm


def test_vnni_detection_follows_the_target():
    class K:  # the part of a Kernel has_vnni reads
        class cg:
            target = llvm.host_target("avx2")
    assert not has_vnni(K)


def test_packed_layout_is_four_bytes_per_column():
    """[N, K] -> panels of NR columns, K in groups of 4: byte (g, col, j) = w[col, 4g + j]."""
    w = np.arange(2 * 6, dtype=np.int8).reshape(2, 6)  # N = 2, K = 6 (padded to 8)
    p = pack_weights(w, 4).reshape(1, 2, 4, 4)  # panels, groups, columns, bytes
    assert p[0, 0, 1].tolist() == [6, 7, 8, 9] and p[0, 1, 0].tolist() == [4, 5, 0, 0]
    assert not p[0, :, 2:].any()  # columns past N are zero


def test_runtime_weight_is_refused_by_name():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 4), "u8"))
    w = g.add_input("w", ir.TensorType((3, 4), "i8"))
    g.outputs = [g.call("qlinear", x, w, x_scale=0.1, w_scale=(0.1,), name="fc")]
    with pytest.raises(ir.LaminaError, match=r"%fc \(qlinear\).*graph weights"):
        llvm.compile_graph(g)


def test_u8_operands_of_signed_lowerings_are_refused():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((4,), "u8"))
    g.outputs = [g.call("maximum", x, x, name="m")]
    with pytest.raises(ir.LaminaError, match=r"%m \(maximum\).*u8"):
        llvm.compile_graph(g)


@pytest.mark.parametrize("to", ["f32", "i32", "i64", "bool", "i8"])
def test_cast_from_u8_zero_extends(to):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((5,), "u8"))
    g.outputs = [g.call("cast", x, dtype=to)]
    xv = np.array([0, 1, 127, 128, 255], np.uint8)
    out = llvm.compile_graph(g)(xv)
    np.testing.assert_array_equal(out, xv.astype(ir.DTYPES[to]))


def test_cast_float_to_u8():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((4,), "f32"))
    g.outputs = [g.call("cast", x, dtype="u8")]
    xv = np.array([0.0, 1.7, 200.2, 255.0], np.float32)
    np.testing.assert_array_equal(llvm.compile_graph(g)(xv), [0, 1, 200, 255])


def qconv_graph(xs, ws, xdt, dtype, relu, **window):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType(xs, xdt))
    w = g.add_weight("w", RNG.integers(-128, 128, ws).astype(np.int8))
    b = g.add_weight("b", RNG.integers(-(2**16), 2**16, ws[0]).astype(np.int32))
    g.outputs = [g.call("qconv2d", x, w, b, x_scale=0.02, x_zero_point=200 if xdt == "u8" else 0,
                        w_scale=tuple(RNG.uniform(1e-3, 5e-3, ws[0]).tolist()), y_scale=0.7,
                        y_zero_point=0 if dtype == "f32" else -1 if dtype == "i8" else 30,
                        dtype=dtype, relu=relu, **window)]
    return g


@pytest.mark.parametrize("features", [None, "avx2"])
@pytest.mark.parametrize("xs,ws,window", [
    ((1, 1, 8, 8), (16, 1, 3, 3), {"pad": (1, 1, 1, 1)}),
    ((3, 7, 6, 5), (9, 7, 2, 3), {"stride": (2, 2), "pad": (2, 1, 0, 1), "dilation": (1, 2)}),
    ((2, 16, 4, 4), (40, 16, 1, 1), {}),
], ids=["3x3-pad", "strided-dilated", "1x1"])
@pytest.mark.parametrize("xdt,dtype", [("u8", "u8"), ("i8", "f32")])
def test_qconv2d_bit_exact(xs, ws, window, xdt, dtype, features):
    g = qconv_graph(xs, ws, xdt, dtype, relu=dtype == "u8", **window)
    check(g, x_for(xs[:-1], xs[-1], xdt), num_threads=2, target_features=features)


def test_grouped_qconv2d_hand_computed():
    """Depthwise (tests/backends/test_int8_grouped_conv.py has the rest): channel c holds
    c + 10 with zero point 10, a 3x3 window of ones padded by 1 sums c * (cells inside)."""
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 4, 5, 5), "u8"))
    w = g.add_weight("w", np.ones((4, 1, 3, 3), np.int8))
    g.outputs = [g.call("qconv2d", x, w, groups=4, pad=(1, 1, 1, 1), x_scale=0.5,
                        x_zero_point=10, w_scale=(0.25,), dtype="f32", name="dw")]
    xv = (np.arange(4, dtype=np.uint8) + 10).reshape(1, 4, 1, 1).repeat(5, 2).repeat(5, 3)
    inside = np.array([2, 3, 3, 3, 2])
    cells = np.outer(inside, inside)  # 4 at the corners, 6 on the edges, 9 inside
    want = np.arange(4).reshape(1, 4, 1, 1) * cells * 0.125
    np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=1)(xv),
                                  want.astype(np.float32))


@pytest.mark.parametrize("m,k,n", [(3, 0, 5), (0, 4, 5), (3, 4, 0)])
def test_empty_extents(m, k, n):
    """K = 0 leaves the bias alone; M or N = 0 computes nothing: no crash, no stray write."""
    g = qlinear_graph((m,), k, n, "u8", "i8", w=np.ones((n, k), np.int8),
                      b=np.arange(n, dtype=np.int32))
    check(g, np.ones((m, k), np.uint8), num_threads=1)
