"""The torch front end's trigonometry, hyperbolic functions, round and bit operators, on
run-time tensors through the native backend, against torch eager."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import compiler  # noqa: E402


class Trig(torch.nn.Module):
    def forward(self, x, u):
        return (torch.sin(x), torch.cos(x), torch.tan(x), torch.atan(x), torch.sinh(x),
                torch.cosh(x), torch.asinh(x), torch.asin(u), torch.acos(u), torch.atanh(u),
                torch.acosh(x.abs() + 1), torch.round(x * 2.5))


class Bits(torch.nn.Module):
    def forward(self, i, j):
        return (torch.bitwise_and(i, j), torch.bitwise_or(i, j), torch.bitwise_xor(i, j),
                torch.bitwise_not(i))


def test_trigonometry_and_round_against_torch():
    x = torch.randn(3, 17) * 3
    x[0, :6] = torch.tensor([0.5, 1.5, 2.5, -0.5, -1.5, 0.2]) / 2.5  # halves after * 2.5
    u = torch.rand(3, 17) * 1.98 - 0.99
    got = compiler.compile(Trig(), x, u)(x.numpy(), u.numpy())
    for i, (g, w) in enumerate(zip(got, Trig()(x, u))):
        np.testing.assert_allclose(g, w.numpy(), rtol=1e-5, atol=1e-6, err_msg=str(i))


@pytest.mark.parametrize("dtype", [torch.int32, torch.int64])
def test_bitwise_against_torch(dtype):
    i = torch.randint(-2**30, 2**30, (4, 9), dtype=dtype)
    j = torch.randint(-2**30, 2**30, (9,), dtype=dtype)
    got = compiler.compile(Bits(), i, j)(i.numpy(), j.numpy())
    for k, (g, w) in enumerate(zip(got, Bits()(i, j))):
        np.testing.assert_array_equal(g, w.numpy(), err_msg=str(k))
