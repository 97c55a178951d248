"""The fast convolution and pooling paths against the reference, and against the general
paths they replace (bitwise): depthwise convolution and window pools without a padded copy
(window.window_direct), and batched 1x1 convolution with images merged into the GEMM's
columns (conv.pointwise_merged)."""

import math
from dataclasses import replace

import numpy as np
import pytest

from backends import llvm
from backends.llvm import conv, pool, window

from .helpers import check_graph, op_graph, randn

DEPTHWISE = {
    # (x shape, kernel, stride, pad (t, l, b, r), dilation)
    "s1-odd": ((2, 5, 13, 19), 3, 1, (1, 1, 1, 1), 1),
    "s2-odd": ((1, 3, 11, 37), 3, 2, (0, 1, 2, 0), 1),  # asymmetric pad, two vectors + edge
    "s2-even": ((1, 4, 12, 12), 3, 2, (1, 1, 1, 1), 1),
    "s2-wide": ((1, 2, 7, 70), 3, 2, (1, 1, 1, 1), 1),  # interior vectors + masked remainder
    "5x5-s2": ((1, 6, 13, 19), 5, 2, (2, 2, 2, 2), 1),
    "dilated": ((2, 4, 9, 40), 3, 1, (2, 2, 2, 2), 2),
    "tiny": ((1, 2, 3, 3), 3, 1, (1, 1, 1, 1), 1),  # every tap row and column at an edge
    "tiny-s2": ((1, 2, 6, 6), 3, 2, (1, 1, 1, 1), 1),
    "one-plane": ((1, 1, 40, 5), 3, 1, (0, 0, 0, 0), 1),  # rows split into work items
    "pad-wider-than-input": ((1, 2, 2, 2), 3, 1, (2, 3, 2, 3), 1),
    # small planes, stride 1, OW == W: vectors over the flattened plane (window._window_flat)
    "flat-6x6": ((2, 5, 6, 6), 3, 1, (1, 1, 1, 1), 1),
    "flat-5x5-kernel": ((1, 3, 7, 7), 5, 1, (2, 2, 2, 2), 1),
    "flat-dilated": ((1, 3, 6, 6), 3, 1, (2, 2, 2, 2), 2),
    "flat-shorter": ((1, 2, 8, 5), 3, 1, (0, 1, 0, 1), 1),  # OH < H
}


def _depthwise(xs, k, s, pad, d, act="relu6", resid=False, dtype=np.float32):
    n, c, h, w = xs
    oh = (h + pad[0] + pad[2] - d * (k - 1) - 1) // s + 1
    ow = (w + pad[1] + pad[3] - d * (k - 1) - 1) // s + 1
    args = {"x": randn(*xs, dtype=dtype), "w": randn(c, 1, k, k, dtype=dtype),
            "b": randn(c, dtype=dtype)}
    if resid:
        args["r"] = randn(n, c, oh, ow, dtype=dtype)
    g = op_graph("fused_conv2d", args, ("w", "b"), stride=[s, s], pad=list(pad),
                 dilation=[d, d], groups=c, act=act)
    return g, [a for name, a in args.items() if name not in ("w", "b")]


def _compile_without(monkeypatch, module, name, g, threads=1):
    """Compile with a fast-path predicate forced off (the general path)."""
    with monkeypatch.context() as m:
        m.setattr(module, name, lambda *a: False)
        return llvm.compile_graph(g, num_threads=threads)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("resid", [False, True])
@pytest.mark.parametrize("name", sorted(DEPTHWISE))
def test_depthwise_direct(name, resid, dtype, monkeypatch):
    xs, k, s, pad, d = DEPTHWISE[name]
    g, ins = _depthwise(xs, k, s, pad, d, resid=resid, dtype=dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    _, (got,) = check_graph(g, ins, rtol=tol, atol=tol, num_threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=threads)(*ins), got)
    padded = _compile_without(monkeypatch, conv, "direct_ok", g)(*ins)
    np.testing.assert_array_equal(got, padded)  # same taps, same order: bitwise equal


def test_depthwise_direct_nan_and_inf(monkeypatch):
    g, ins = _depthwise((1, 3, 9, 21), 3, 2, (1, 1, 1, 1), 1, act="none")
    ins[0][0, 0, 0, 0] = math.nan
    ins[0][0, 1, 4, 20] = math.inf
    got = llvm.compile_graph(g, num_threads=2)(*ins)
    np.testing.assert_array_equal(got, _compile_without(monkeypatch, conv, "direct_ok", g)(*ins))


POOLS = {
    "3x3-s2-pad": dict(kernel=[3, 3], stride=[2, 2], pad=[1, 1, 1, 1]),
    "ceil": dict(kernel=[3, 3], stride=[2, 2], pad=[1, 1, 1, 1], ceil_mode=True),
    "s1-dil": dict(kernel=[2, 3], stride=[1, 1], pad=[1, 0, 0, 1], dilation=[2, 1]),
    "wide-s2": dict(kernel=[2, 2], stride=[2, 2]),
    "flat": dict(kernel=[3, 3], stride=[1, 1], pad=[1, 1, 1, 1]),
}


@pytest.mark.parametrize("op", ["max_pool2d", "avg_pool2d"])
@pytest.mark.parametrize("name", sorted(POOLS))
def test_pool_direct_matches_padded_path(op, name, monkeypatch):
    x = randn(2, 3, 5, 7) if name == "flat" else randn(2, 3, 13, 75)
    x[0, 0, 0, 0] = math.nan
    x[1, 2, -1, -1] = -math.inf
    attrs = dict(POOLS[name])
    if op == "avg_pool2d":
        attrs["count_include_pad"] = name != "ceil"
    g = op_graph(op, {"x": x}, **attrs)
    got = llvm.compile_graph(g, num_threads=2)(x)
    np.testing.assert_array_equal(got, _compile_without(monkeypatch, pool, "direct_ok", g)(x))
    finite = np.nan_to_num(x, nan=0.0, neginf=-3.0)
    check_graph(g, [finite], rtol=1e-5, atol=1e-5, num_threads=2)


def test_window_direct_predicate():
    """Column strides above 2 (and single-lane vectors) keep the padded path."""

    class K:
        @staticmethod
        def lanes(dtype):
            return 16

    win = window.Window(1, 1, 9, 9, 3, 3, 1, 2, 1, 1, (1, 1, 1, 1), 9, 5)
    assert window.direct_ok(K, win, "f32")
    assert not window.direct_ok(K, replace(win, sw=3, ow=3), "f32")


POINTWISE = {
    # (x shape, out channels): planes that fill NR-column tiles badly
    "3x3": ((16, 40, 3, 3), 300),
    "odd": ((3, 17, 5, 5), 33),
    "deep-k": ((4, 300, 2, 3), 9),  # K over one KC block
    "1x1-plane": ((5, 3, 1, 1), 2),
    "6x6": ((2, 24, 6, 6), 70),
}


@pytest.mark.parametrize("resid", [False, True])
@pytest.mark.parametrize("name", sorted(POINTWISE))
def test_pointwise_merged(name, resid, monkeypatch):
    xs, o = POINTWISE[name]
    n, c, h, w = xs
    assert conv.merge_images(n, h * w, 32)
    args = {"x": randn(*xs), "w": randn(o, c, 1, 1), "b": randn(o)}
    if resid:
        args["r"] = randn(n, o, h, w)
    g = op_graph("fused_conv2d", args, ("w", "b"), act="relu6")
    ins = [a for k, a in args.items() if k not in ("w", "b")]
    _, (got,) = check_graph(g, ins, rtol=1e-4, atol=1e-4, num_threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=threads)(*ins), got)
    per_image = _compile_without(monkeypatch, conv, "merge_images", g)(*ins)
    np.testing.assert_array_equal(got, per_image)


def test_pointwise_merged_f64_and_plain_conv():
    x = randn(3, 7, 3, 5, dtype=np.float64)
    g = op_graph("conv2d", {"x": x, "w": randn(11, 7, 1, 1, dtype=np.float64)}, ("w",))
    check_graph(g, [x], rtol=1e-10, atol=1e-10, num_threads=2)


def test_merge_images_rule():
    assert not conv.merge_images(1, 9, 32)  # one image: nothing to merge
    assert not conv.merge_images(16, 64, 32)  # planes fill whole tiles
    assert not conv.merge_images(16, 3136, 32)  # 56x56: the last tile's waste is negligible
    assert conv.merge_images(16, 36, 32) and conv.merge_images(16, 9, 32)


@pytest.mark.parametrize("shape,stride,dtype", [
    ((2, 8, 17, 19), (2, 2), np.float32),  # then merged: 9x10 planes
    ((1, 5, 33, 40), (2, 2), np.float32),  # batch 1: direct pointwise
    ((2, 3, 14, 37), (3, 2), np.float64),
    ((1, 4, 10, 50), (1, 3), np.float32),  # gathers along the row
])
def test_strided_1x1_subsamples(shape, stride, dtype):
    n, c, h, w = shape
    oh, ow = (h - 1) // stride[0] + 1, (w - 1) // stride[1] + 1
    args = {"x": randn(*shape, dtype=dtype), "w": randn(6, c, 1, 1, dtype=dtype),
            "b": randn(6, dtype=dtype), "r": randn(n, 6, oh, ow, dtype=dtype)}
    g = op_graph("fused_conv2d", args, ("w", "b"), stride=list(stride), act="relu")
    tol = 1e-4 if dtype == np.float32 else 1e-10
    ins = [args["x"], args["r"]]
    _, (got,) = check_graph(g, ins, rtol=tol, atol=tol, num_threads=1)
    np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=2)(*ins), got)


TRANSPOSED = {
    # (x shape, out channels): one image, small plane (conv.pointwise_transposed)
    "3x3": ((1, 40, 3, 3), 300),
    "6x6": ((1, 24, 6, 6), 70),
    "5-pixels": ((1, 7, 1, 5), 33),
    "deep-k": ((1, 300, 2, 3), 64),  # K over one KC block
    "many-rows": ((1, 16, 7, 7), 600),  # rows and columns both split over work items
}


@pytest.mark.parametrize("resid", [False, True])
@pytest.mark.parametrize("name", sorted(TRANSPOSED))
def test_pointwise_transposed(name, resid, monkeypatch):
    xs, o = TRANSPOSED[name]
    n, c, h, w = xs
    assert conv.transpose_pays(n, h * w, o, conv.blocking(llvm.host_target(), "f32"))
    args = {"x": randn(*xs), "w": randn(o, c, 1, 1), "b": randn(o)}
    if resid:
        args["r"] = randn(n, o, h, w)
    g = op_graph("fused_conv2d", args, ("w", "b"), act="relu6")
    ins = [a for k, a in args.items() if k not in ("w", "b")]
    _, (got,) = check_graph(g, ins, rtol=1e-4, atol=1e-4, num_threads=1)
    for threads in (2, 3):
        np.testing.assert_array_equal(llvm.compile_graph(g, num_threads=threads)(*ins), got)
    plain = _compile_without(monkeypatch, conv, "transpose_pays", g)(*ins)
    np.testing.assert_array_equal(got, plain)  # same FMA chains: bitwise equal


def test_pointwise_f64_strided_no_bias():
    x = randn(1, 9, 7, 5, dtype=np.float64)
    g = op_graph("conv2d", {"x": x, "w": randn(50, 9, 1, 1, dtype=np.float64)}, ("w",),
                 stride=[2, 2])
    check_graph(g, [x], rtol=1e-10, atol=1e-10, num_threads=2)
