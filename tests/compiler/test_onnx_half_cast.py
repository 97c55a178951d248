"""A Cast to float16 or bfloat16 inside a model rounds there (Lamina carries both in f32):
round to nearest even at the format's precision, with its subnormals, overflow to inf, NaN
kept. Checked against numpy's float16 and ml_dtypes' bfloat16 conversions, and a model's
Cast -> Cast round trip against onnxruntime."""

import ml_dtypes
import numpy as np
import pytest
from onnx import TensorProto, helper

import compiler
import ir
from compiler import load_onnx
from ir.ops.narrow import round_to_format

from .onnx_util import compare, model, ort_run

NP = {"float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


def _values(rng, n=4096):
    """Every binade of float32 (subnormals included), the formats' edges and ties, specials."""
    x = rng.standard_normal(n) * np.exp2(rng.integers(-150, 128, n))
    edges = [65504, 65519.99, 65520, 65536, 2.0**-24, 2.0**-25, 3 * 2.0**-26, 2.0**-14,
             1 + 2.0**-11, 1 + 3 * 2.0**-11, 1 + 2.0**-8, 1 + 3 * 2.0**-8, 2.0**-133,
             2.0**-134, 3.3895313892515355e38, 3.3961776e38, 3.4028235e38, 1e-45,
             0.0, -0.0, np.inf, -np.inf, np.nan]
    x = np.concatenate([x, edges, np.negative(edges)])
    with np.errstate(over="ignore"):
        return x.astype(np.float32)


@pytest.mark.parametrize("fmt", list(NP))
def test_reference_rounds_as_the_conversions_do(fmt, rng):
    x = _values(rng)
    with np.errstate(over="ignore"):
        expected = x.astype(NP[fmt]).astype(np.float32)
    got = round_to_format(x, fmt, saturate=False)
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("fmt", list(NP))
def test_native_kernel_matches_the_conversions(fmt, rng):
    x = _values(rng)
    g = ir.Graph("half")
    v = g.add_input("x", ir.TensorType(x.shape))
    g.outputs = [g.call("round_to_format", v, format=fmt, saturate=False)]
    got = compiler.compile(g, x, backend="llvm")(x)
    with np.errstate(over="ignore"):
        expected = x.astype(NP[fmt]).astype(np.float32)
    np.testing.assert_array_equal(got, expected)
    assert np.array_equal(np.signbit(got), np.signbit(expected))


@pytest.mark.parametrize("to", [TensorProto.FLOAT16, TensorProto.BFLOAT16])
def test_cast_round_trip_in_a_model_matches_onnxruntime(to, rng):
    x = (rng.standard_normal((8, 33)) * 300).astype(np.float32)
    x[0, :4] = [70000.0, -1e-6, 1 + 2.0**-11, np.nan]
    m = model([helper.make_node("Cast", ["x"], ["h"], to=to),
               helper.make_node("Cast", ["h"], ["b"], to=TensorProto.FLOAT),
               helper.make_node("Mul", ["b", "x"], ["y"])], {"x": x})
    expected = ort_run(m, {"x": x})
    fn = compiler.compile(load_onnx(m), x, backend="llvm")
    compare([fn(x)], expected, rtol=0, atol=0, what="cast round trip")
