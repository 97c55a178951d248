"""The qmatmul and qadd kernels (backends/llvm/int8.py) against numpy written here: exact
integer products and sums, then the epilogue spelled out; qmatmul over batch broadcasting,
row widths around its 64-column passes, both summation paths (float32 where every partial
sum stays below 2**24, int32 beyond), extreme values and thread counts."""

from __future__ import annotations

import numpy as np
import pytest

import ir
from backends import llvm

RNG = np.random.default_rng(29)
RANGE = {"u8": (0, 255), "i8": (-128, 127)}
NP = {"u8": np.uint8, "i8": np.int8}


def qmatmul_graph(ash, bsh, adt, bdt, za, zb, dtype, sa=0.02, sb=0.013, sy=0.5, zy=6):
    g = ir.Graph()
    a = g.add_input("a", ir.TensorType(ash, adt))
    b = g.add_input("b", ir.TensorType(bsh, bdt))
    zy = 0 if dtype == "f32" else zy
    g.outputs = [g.call("qmatmul", a, b, a_scale=sa, a_zero_point=za, b_scale=sb,
                        b_zero_point=zb, y_scale=sy, y_zero_point=zy, dtype=dtype)]
    return g


def numpy_qmatmul(a, b, za, zb, dtype, sa=0.02, sb=0.013, sy=0.5, zy=6):
    acc = np.matmul(a.astype(np.int64) - za, b.astype(np.int64) - zb)
    assert np.abs(acc).max() < 2**31
    m = np.float32(sa * sb) if dtype == "f32" else np.float32(sa * sb / sy)
    y = acc.astype(np.float32) * m
    if dtype == "f32":
        return y
    lo, hi = RANGE[dtype]
    return np.clip(np.rint(y) + zy, lo, hi).astype(NP[dtype])


def operand(shape, dt, lo=None, hi=None):
    lo = RANGE[dt][0] if lo is None else lo
    hi = RANGE[dt][1] if hi is None else hi
    return RNG.integers(lo, hi + 1, shape).astype(NP[dt])


SHAPES = [((1, 1), (1, 1)), ((3, 5), (5, 17)), ((2, 4, 9), (2, 9, 64)),
          ((2, 3, 7, 20), (3, 20, 65)), ((5, 31, 16), (16, 130)), ((1, 8, 33), (4, 1, 33, 15))]


@pytest.mark.parametrize("ash,bsh", SHAPES, ids=str)
@pytest.mark.parametrize("adt,bdt,dtype", [("u8", "i8", "u8"), ("i8", "u8", "i8"),
                                           ("u8", "u8", "f32")])
def test_qmatmul_bit_exact(ash, bsh, adt, bdt, dtype):
    za, zb = (9 if adt == "u8" else -4), (130 if bdt == "u8" else 3)
    a, b = operand(ash, adt), operand(bsh, bdt)
    got = llvm.compile_graph(qmatmul_graph(ash, bsh, adt, bdt, za, zb, dtype),
                             num_threads=1)(a, b)
    want = numpy_qmatmul(a, b, za, zb, dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("threads", [2, 3])
def test_qmatmul_threads(threads):
    a, b = operand((4, 37, 48), "u8"), operand((4, 48, 70), "i8")
    got = llvm.compile_graph(qmatmul_graph((4, 37, 48), (4, 48, 70), "u8", "i8", 128, 0,
                                           "u8"), num_threads=threads)(a, b)
    np.testing.assert_array_equal(got, numpy_qmatmul(a, b, 128, 0, "u8"))


def test_qmatmul_int32_path_with_sums_past_2_24():
    """K = 400 at the extremes: |a - za| = 255 and |b - zb| = 255, sums near 2.6e7 with odd
    terms: exact only in int32 (the kernel's other path), bit for bit in every output."""
    a = operand((2, 3, 400), "u8", 250, 255)
    b = operand((2, 400, 21), "i8", -128, -120)
    for dtype in ("f32", "i8"):
        g = qmatmul_graph(a.shape, b.shape, "u8", "i8", 0, 127, dtype, sa=1e-3, sb=1e-3,
                          sy=1.0, zy=-3)
        want = numpy_qmatmul(a, b, 0, 127, dtype, sa=1e-3, sb=1e-3, sy=1.0, zy=-3)
        assert np.abs(np.matmul(a.astype(np.int64), b.astype(np.int64) - 127)).min() > 2**24
        np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=1)(a, b), want)


def test_qmatmul_portable_target():
    a, b = operand((3, 10, 24), "i8"), operand((3, 24, 19), "u8")
    g = qmatmul_graph(a.shape, b.shape, "i8", "u8", -1, 77, "u8")
    np.testing.assert_array_equal(
        llvm.compile_graph(g, num_threads=1, target_features="avx2")(a, b),
        numpy_qmatmul(a, b, -1, 77, "u8"))


def test_qadd_saturates_and_broadcasts():
    """Both operands at every byte value, broadcast against each other: the float32
    operations of qadd's definition, spelled out here."""
    g = ir.Graph()
    a = g.add_input("a", ir.TensorType((256, 1), "u8"))
    b = g.add_input("b", ir.TensorType((1, 256), "i8"))
    g.outputs = [g.call("qadd", a, b, a_scale=0.1, a_zero_point=100, b_scale=0.07,
                        b_zero_point=-20, y_scale=0.09, y_zero_point=30, dtype="u8",
                        relu=True)]
    av = np.arange(256, dtype=np.uint8).reshape(256, 1)
    bv = np.arange(-128, 128, dtype=np.int64).astype(np.int8).reshape(1, 256)
    s = (av.astype(np.int64) - 100).astype(np.float32) * np.float32(0.1) + \
        (bv.astype(np.int64) + 20).astype(np.float32) * np.float32(0.07)
    want = np.clip(np.rint(s / np.float32(0.09)) + 30, 30, 255).astype(np.uint8)
    got = llvm.compile_graph(g, num_threads=2)(av, bv)
    np.testing.assert_array_equal(got, want)
    assert (got == 255).any() and (got == 30).any()  # saturated and clipped at the relu


def test_fast_math_keeps_qmatmul_and_qadd_exact():
    a, b = operand((2, 9, 40), "u8"), operand((2, 40, 33), "i8")
    g = qmatmul_graph(a.shape, b.shape, "u8", "i8", 120, -1, "u8")
    y = g.outputs[0]
    g.outputs = [y, g.call("qadd", y, y, a_scale=0.5, a_zero_point=6, b_scale=0.37,
                           b_zero_point=6, y_scale=0.61, y_zero_point=3)]
    want = numpy_qmatmul(a, b, 120, -1, "u8")
    s = (want.astype(np.int64) - 6).astype(np.float32) * np.float32(0.5) + \
        (want.astype(np.int64) - 6).astype(np.float32) * np.float32(0.37)
    want2 = np.clip(np.rint(s / np.float32(0.61)) + 3, 0, 255).astype(np.uint8)
    got, got2 = llvm.compile_graph(g, num_threads=1, fast_math=True)(a, b)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(got2, want2)
