"""`x ** n` with a constant integer exponent (GPT-2's GELU writes `x ** 3`) compiles to
multiplications in vector lanes, not a libm call per element (elementwise fusion hands the
kernel one-element weights as constants); its values are numpy's."""

import numpy as np
import pytest

import compiler
import ir


def _pow_graph(exponent: float, n: int = 37) -> ir.Graph:
    g = ir.Graph("pow")
    x = g.add_input("x", ir.TensorType((n,)))
    e = g.add_weight("e", np.float32(exponent))  # an initialiser, as ONNX files hold it
    g.outputs = [g.call("add", g.call("pow", x, e), x)]  # fused with a neighbour, as in GELU
    return g


@pytest.mark.parametrize("exponent", [0, 1, 2, 3, 4, 7, -1, -2, 16])
def test_integer_exponents_match_numpy(exponent, rng):
    x = rng.uniform(-3, 3, 37).astype(np.float32)
    x[:4] = [0.0, -0.0, np.inf, np.nan]
    fn = compiler.compile(_pow_graph(exponent), x, backend="llvm", opt_level=3)
    with np.errstate(all="ignore"):
        expected = np.power(x.astype(np.float64), exponent) + x
    np.testing.assert_allclose(fn(x), expected.astype(np.float32), rtol=8e-7 * (1 + abs(exponent)),
                               equal_nan=True)


@pytest.mark.parametrize("exponent", [3, -2])
def test_integer_exponent_makes_no_libm_call(exponent, rng):
    x = rng.standard_normal(64).astype(np.float32)
    fn = compiler.compile(_pow_graph(exponent, 64), x, backend="llvm", opt_level=3)
    assert "powf" not in fn.llvm_ir


def test_fractional_exponent_still_calls_libm(rng):
    x = rng.uniform(0.1, 3, 64).astype(np.float32)
    fn = compiler.compile(_pow_graph(2.5, 64), x, backend="llvm", opt_level=3)
    assert "powf" in fn.llvm_ir
    np.testing.assert_allclose(fn(x), x.astype(np.float64) ** 2.5 + x, rtol=1e-6)
