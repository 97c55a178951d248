"""conv_rows (output pixels as the GEMM's rows, read straight from the input, tiles stored
transposed): against a float64 numpy convolution written here, and bit for bit against the
GEMM-over-columns path it replaces (conv.conv_gemm with conv.rows_pay forced off)."""

import numpy as np
import pytest

from backends import llvm
from backends.llvm import conv, conv_rows

from .helpers import op_graph, randn


def numpy_conv(x, w, b, stride, pad, dilation):
    """Direct float64 convolution, one multiply-add per tap (no im2col, no GEMM)."""
    x, w = x.astype(np.float64), w.astype(np.float64)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    (sh, sw), (dh, dw) = stride, dilation
    top, left, bottom, right = pad
    xp = np.zeros((n, c, h + top + bottom, wd + left + right))
    xp[:, :, top:top + h, left:left + wd] = x
    oh = (h + top + bottom - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + left + right - dw * (kw - 1) - 1) // sw + 1
    y = np.zeros((n, o, oh, ow))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, :, i * dh:i * dh + sh * (oh - 1) + 1:sh,
                       j * dw:j * dw + sw * (ow - 1) + 1:sw]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return y + (0 if b is None else b.astype(np.float64)[None, :, None, None])


CASES = {
    # (x shape, out channels, kernel, stride, pad (t, l, b, r), dilation)
    "3x3-7x7": ((1, 24, 7, 7), 40, 3, 1, (1, 1, 1, 1), 1),  # one 7-wide tile per row
    "3x3-14-odd-ch": ((2, 5, 14, 14), 33, 3, 1, (1, 1, 1, 1), 1),  # 7 + 7; channels past NR
    "3x3-s2": ((1, 9, 15, 13), 17, 3, 2, (1, 1, 1, 1), 1),  # phase-split input
    "7x7-s2-stem": ((1, 3, 30, 22), 16, 7, 2, (3, 3, 3, 3), 1),
    "5x5-asym-pad": ((1, 4, 9, 11), 10, 5, 1, (2, 0, 1, 2), 1),
    "dilated": ((1, 6, 12, 12), 12, 3, 1, (2, 2, 2, 2), 2),
    "no-pad": ((2, 7, 10, 19), 20, 3, 1, (0, 0, 0, 0), 1),  # rows read from x itself
    "deep-k": ((1, 40, 6, 6), 36, 3, 1, (1, 1, 1, 1), 1),  # K = 360: two K blocks
    "1x1-196": ((1, 64, 14, 14), 100, 1, 1, (0, 0, 0, 0), 1),  # one row of 196 pixels
    "1x1-deep": ((1, 600, 3, 5), 70, 1, 1, (0, 0, 0, 0), 1),  # K over three blocks
    "1x1-one-pixel": ((3, 17, 1, 1), 9, 1, 1, (0, 0, 0, 0), 1),
    "1x1-s2": ((1, 12, 9, 11), 31, 1, 2, (0, 0, 0, 0), 1),  # subsampled, then 1x1
    "1x1-padded": ((1, 5, 4, 6), 8, 1, 1, (1, 0, 1, 2), 1),
    "batch-small-planes": ((6, 10, 4, 4), 12, 3, 1, (1, 1, 1, 1), 1),  # items span images
    "wide-row": ((1, 3, 4, 61), 6, 3, 1, (1, 1, 1, 1), 1),  # 61 = 7 tiles, 5 one wider
}


def _graph(name, dtype=np.float32, resid=False, act="relu"):
    xs, o, kk, s, pad, d = CASES[name]
    n, c, h, w = xs
    args = {"x": randn(*xs, dtype=dtype), "w": randn(o, c, kk, kk, dtype=dtype),
            "b": randn(o, dtype=dtype)}
    oh = (h + pad[0] + pad[2] - d * (kk - 1) - 1) // s + 1
    ow = (w + pad[1] + pad[3] - d * (kk - 1) - 1) // s + 1
    if resid:
        args["r"] = randn(n, o, oh, ow, dtype=dtype)
    g = op_graph("fused_conv2d", args, ("w", "b"), stride=[s, s], pad=list(pad),
                 dilation=[d, d], groups=1, act=act)
    want = numpy_conv(args["x"], args["w"], args["b"], (s, s), pad, (d, d))
    if resid:
        want = want + args["r"]
    want = np.maximum(want, 0) if act == "relu" else want
    return g, [a for k, a in args.items() if k not in ("w", "b")], want


@pytest.mark.parametrize("resid", [False, True])
@pytest.mark.parametrize("name", sorted(CASES))
def test_conv_rows_against_numpy(name, resid, monkeypatch):
    g, ins, want = _graph(name, resid=resid)
    model = _compile(monkeypatch, g, True)
    got = model(*ins)
    assert model.arena_canary_intact()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    for threads in (2, 3):  # other item splits, same results
        np.testing.assert_array_equal(_compile(monkeypatch, g, True, threads)(*ins), got)
    old = _compile(monkeypatch, g, False)(*ins)
    np.testing.assert_array_equal(got, old)  # the same FMA chains as conv_gemm


def _compile(monkeypatch, g, rows: bool, threads=1, **options):
    """Compile with conv_rows forced on or off."""
    with monkeypatch.context() as m:
        m.setattr(conv, "rows_pay", lambda *a: rows)
        return llvm.compile_graph(g, num_threads=threads, **options)


@pytest.mark.parametrize("name", ["3x3-14-odd-ch", "1x1-deep", "3x3-s2"])
def test_conv_rows_f64_no_act(name, monkeypatch):
    g, ins, want = _graph(name, dtype=np.float64, resid=True, act="none")
    np.testing.assert_allclose(_compile(monkeypatch, g, True, 2)(*ins), want,
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("features", ["avx2", "sse"])
def test_conv_rows_narrow_vectors(features, monkeypatch):
    """Other register tiles (6 x 16, 6 x 8): the 6-row tiles transpose element by element
    where a power-of-two network does not fit the vector (SSE)."""
    g, ins, want = _graph("3x3-14-odd-ch", resid=True)
    got = _compile(monkeypatch, g, True, target_features=features)(*ins)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv_rows_nan_propagates(monkeypatch):
    g, ins, _ = _graph("3x3-7x7", act="none")
    ins[0][0, 3, 2, 4] = np.nan
    got = _compile(monkeypatch, g, True)(*ins)
    # every output whose window covers (2, 4) is NaN, the others are not
    hit = np.zeros(got.shape[2:], bool)
    hit[1:4, 3:6] = True
    assert np.isnan(got[0][:, hit]).all() and not np.isnan(got[0][:, ~hit]).any()


def test_row_tiles_and_shuffle_plan():
    assert conv_rows.row_tiles(14, 8) == (2, 7, 0)
    assert conv_rows.row_tiles(56, 8) == (7, 8, 0)
    assert conv_rows.row_tiles(196, 8) == (25, 7, 21)  # 21 of 8 and 4 of 7
    assert conv_rows.row_tiles(1, 8) == (1, 1, 0)
    for m in range(1, 17):
        for lanes in (2, 4, 8, 16):
            plan = conv_rows.shuffle_plan(m, lanes)
            assert (plan is None) == (m > 1 and (1 << (m - 1).bit_length()) > lanes)


def test_rows_pay_rule():
    from backends.llvm.window import Window

    def pays(n, c, h, k, s, p, o):
        oh = (h + 2 * p - k) // s + 1
        win = Window(n, c, h, h, k, k, s, s, 1, 1, (p,) * 4, oh, oh)
        return conv.rows_pay(win, c * k * k, o, k == 1 and s == 1 and p == 0, 32)

    assert pays(1, 256, 14, 1, 1, 0, 1024)  # 196 of 224 columns
    assert pays(1, 512, 7, 3, 1, 1, 512)  # 49 of 64
    assert pays(1, 64, 56, 3, 1, 1, 64)  # 56 of 58 per row, deep K
    assert pays(1, 3, 224, 7, 2, 3, 64)  # few output channels: the GEMM's packing shows
    assert not pays(1, 64, 56, 1, 1, 0, 256)  # 3136 = 98 x 32, shallow K


def test_item_split_feeds_every_thread_evenly():
    blk = conv.blocking(llvm.host_target(), "f32")
    for tiles, panels in [(28, 8), (392, 2), (112, 16), (7, 16), (6272, 2), (25, 7)]:
        tg, pg = conv_rows.item_split(tiles, panels, blk, 1)
        assert tg * blk.mr <= max(conv_rows.PIXELS_PER_ITEM, blk.mr) and pg <= 8
        tg, pg = conv_rows.item_split(tiles, panels, blk, 2)
        items = -(-tiles // tg) * -(-panels // pg)
        # the driver's 8 tasks get whole items: the fullest no more than 1.25x the mean
        assert items >= 8 and -(-items // 8) <= 1.25 * items / 8, (tiles, panels, items)
