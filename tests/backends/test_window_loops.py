"""Large pooling windows loop over their taps (backends/llvm/window.py, issue 13): the code
stays the same size whatever the window, where unrolling every tap of a 25x25 dilated max
pool over a 60x80 plane made 1.3 MB of IR and seconds of compile time; small windows keep
the unrolled kernels. Numerics against numpy written here."""

import math

import numpy as np
import pytest

from backends import llvm
from backends.llvm import window

from .helpers import op_graph, randn


def numpy_pool(x, kind, kernel, stride, dilation, pad, include_pad=True):
    """Max or average pool of x [N, C, H, W] (pad: top, left, bottom, right), tap by tap."""
    (kh, kw), (sh, sw), (dh, dw) = kernel, stride, dilation
    n, c, h, w = x.shape
    oh = (h + pad[0] + pad[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pad[1] + pad[3] - dw * (kw - 1) - 1) // sw + 1
    fill = -np.inf if kind == "max" else 0.0
    xp = np.full((n, c, h + pad[0] + pad[2], w + pad[1] + pad[3]), fill, np.float64)
    xp[:, :, pad[0]:pad[0] + h, pad[1]:pad[1] + w] = x
    inside = np.zeros(xp.shape[2:])
    inside[pad[0]:pad[0] + h, pad[1]:pad[1] + w] = 1
    acc = np.full((n, c, oh, ow), fill)
    count = np.zeros((oh, ow))
    for i in range(kh):
        for j in range(kw):
            rows = slice(i * dh, i * dh + (oh - 1) * sh + 1, sh)
            cols = slice(j * dw, j * dw + (ow - 1) * sw + 1, sw)
            tap = xp[:, :, rows, cols]
            acc = np.maximum(acc, tap) if kind == "max" else acc + tap
            count += 1 if include_pad else inside[rows, cols]
    return acc if kind == "max" else acc / count


LARGE = {
    # (x shape, kernel, stride, dilation, pad)
    "25x25-dil2": ((1, 3, 60, 80), (25, 25), (1, 1), (2, 2), (12, 12, 12, 12)),
    "13x17-dil3-s2": ((2, 2, 60, 80), (13, 17), (2, 2), (3, 3), (6, 8, 5, 0)),
    "9x9-s3": ((1, 4, 40, 50), (9, 9), (3, 3), (1, 1), (4, 4, 4, 4)),
    "1x70-row": ((1, 2, 5, 90), (1, 70), (1, 1), (1, 1), (0, 0, 0, 0)),  # a looped row too
}


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("name", sorted(LARGE))
def test_large_window_matches_numpy(op, name):
    xs, kernel, stride, dilation, pad = LARGE[name]
    assert kernel[0] * kernel[1] > window.UNROLL_TAPS  # the looped path
    x = randn(*xs)
    x[0, 0, 7 % xs[2], 9] = math.inf
    x[0, -1, 30 % xs[2], 11] = -math.inf
    g = op_graph(op, {"x": x}, kernel=list(kernel), stride=list(stride),
                 dilation=list(dilation), pad=list(pad))
    got = llvm.compile_graph(g, num_threads=2)(x)
    want = numpy_pool(x.astype(np.float64), op[:3], kernel, stride, dilation, pad)
    if op == "max_pool2d":
        np.testing.assert_array_equal(got, want.astype(np.float32))  # max is exact
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_large_window_nan_propagates():
    x = randn(1, 1, 30, 40)
    x[0, 0, 15, 20] = math.nan
    g = op_graph("max_pool2d", {"x": x}, kernel=[11, 11], dilation=[2, 2], pad=[5, 5, 5, 5])
    got = llvm.compile_graph(g, num_threads=1)(x)
    want = numpy_pool(x, "max", (11, 11), (1, 1), (2, 2), (5, 5, 5, 5))
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    assert np.isnan(got).any() and not np.isnan(got).all()


def _ir_size(kernel, dilation, op="max_pool2d"):
    x = randn(1, 3, 60, 80)
    pad = [kernel[0] // 2, kernel[1] // 2, kernel[0] // 2, kernel[1] // 2]
    g = op_graph(op, {"x": x}, kernel=list(kernel), dilation=list(dilation), pad=pad)
    return len(llvm.compile_graph(g, num_threads=1).llvm_ir)


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
def test_large_window_code_is_bounded(op):
    """The code does not grow with the window: unrolled, the 25x25 window alone was 1.3 MB
    of optimised IR (and 2.7 s of compile); looped, any of these is a few tens of kB."""
    sizes = [_ir_size(k, d, op) for k, d in [((9, 9), (1, 1)), ((13, 13), (3, 3)),
                                            ((25, 25), (2, 2)), ((29, 31), (2, 2))]]
    assert max(sizes) < 120_000, sizes


def test_small_windows_stay_unrolled():
    """3x3 .. 8x8 windows keep the direct (unrolled, no padded copy) kernel; larger ones and
    any window above UNROLL_TAPS taps do not."""

    class K:
        @staticmethod
        def lanes(dtype):
            return 16

    def win(kh, kw):
        return window.Window(1, 1, 60, 80, kh, kw, 1, 1, 1, 1, (0, 0, 0, 0), 60 - kh + 1,
                             80 - kw + 1)

    assert window.direct_ok(K, win(3, 3), "f32") and window.direct_ok(K, win(8, 8), "f32")
    assert not window.direct_ok(K, win(9, 8), "f32")
    assert not window.direct_ok(K, win(1, 65), "f32")
