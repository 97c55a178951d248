"""bfloat16 weights: the rounding, the bf16_linear kernels (AVX512-BF16 and portable) and
compiler.quantize(..., dtype="bfloat16") end to end.

Expected values come from numpy here: operands rounded with ml_dtypes.bfloat16 (an
independent implementation of the rounding), products and sums in float64, and a bound
on float32 summation error; the float32 model's logits for the end-to-end tests."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest

import compiler
import ir
from backends import llvm
from compiler import nn
from ir.ops.bf16 import from_bf16, pack_pairs, to_bf16, unpack_pairs

HOST_BF16 = "+avx512bf16" in llvm.host_target().features.split(",")
# the portable path on this machine, on a CPU without AVX-512 and on one without AVX
PORTABLE = ["-avx512bf16", "avx2", "sse"]
BF16 = ml_dtypes.bfloat16


def bf(a) -> np.ndarray:
    """float32 values rounded to bfloat16 by ml_dtypes, as float64."""
    return np.asarray(a, np.float32).astype(BF16).astype(np.float64)


def graph(m, n, k, *, bias=True, lead=(), seed=0, w=None):
    rng = np.random.default_rng(seed)
    w = rng.standard_normal((n, k)).astype(np.float32) if w is None else w
    b = rng.standard_normal(n).astype(np.float32)
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((*lead, m, k)))
    ins = [x, g.add_weight("w", pack_pairs(w))] + ([g.add_weight("b", b)] if bias else [])
    g.outputs = [g.call("bf16_linear", *ins)]
    return g, w, (b if bias else np.zeros(n, np.float32))


def expected(x, w, b):
    """(numpy result in float64, bound on float32 summation error per element)."""
    xb, wb = bf(x), bf(w)
    k = x.shape[-1]
    bound = 2 * (k + 1) * 2.0**-24 * (np.abs(xb) @ np.abs(wb).T + np.abs(b)) + 1e-30
    return xb @ wb.T + b, bound


def check(y, x, w, b):
    ref, bound = expected(x, w, b)
    err = np.abs(np.asarray(y, np.float64) - ref)
    assert y.dtype == np.float32 and y.shape == ref.shape
    assert (err <= bound).all(), f"max error {err.max()} (bound there {bound.flat[err.argmax()]})"


# ---- the rounding -----------------------------------------------------------------------------
def test_to_bf16_rounds_to_nearest_even_like_ml_dtypes():
    rng = np.random.default_rng(1)
    x = (rng.standard_normal(50000) * np.exp(rng.uniform(-80, 80, 50000))).astype(np.float32)
    ties = np.array([0x3F808000, 0x3F818000, 0xBF808000, 0x3F807FFF, 0x3F808001, 0x7F7FFFFF,
                     0x7F7F8000, 0x7F7F7FFF], np.uint32).view(np.float32)
    x = np.concatenate([x, ties, np.float32([np.inf, -np.inf, 0.0, -0.0, 1.0, 3.4e38])])
    x = x[np.abs(x) >= np.finfo(np.float32).tiny]  # subnormals: next test
    assert np.array_equal(to_bf16(x), x.astype(BF16).view(np.uint16))
    # hand-checked: 1 + 2**-8 is a tie between 1 and 1 + 2**-7: even (1.0) wins
    assert to_bf16(np.float32(1 + 2**-8)).tolist() == 0x3F80
    assert to_bf16(np.float32(1 + 3 * 2**-8)).tolist() == 0x3F82  # tie, even upward


def test_to_bf16_nan_stays_nan_and_subnormals_flush_to_signed_zero():
    nans = np.array([0x7FC00000, 0x7F800001, 0xFFFFFFFF, 0x7FBFFFFF], np.uint32)
    out = to_bf16(nans.view(np.float32))
    assert np.isnan(from_bf16(out)).all() and (out & 0x40).all()  # NaN, quiet
    assert (out >> 15).tolist() == [0, 0, 1, 0]  # the sign kept
    sub = np.float32([1e-40, -1e-40, np.finfo(np.float32).tiny / 2])
    assert to_bf16(sub).tolist() == [0x0000, 0x8000, 0x0000]


def test_pairs_round_trip_and_match_ml_dtypes_layout():
    w = np.random.default_rng(2).standard_normal((5, 7)).astype(np.float32)
    words = pack_pairs(w)
    assert words.dtype == np.int32 and words.shape == (5, 4)
    halves = words.view(np.uint16).reshape(5, 8)  # little endian: value 2j is the low half
    assert np.array_equal(halves[:, :7], w.astype(BF16).view(np.uint16))
    assert (halves[:, 7] == 0).all()
    assert np.array_equal(unpack_pairs(words, 7), bf(w).astype(np.float32))


# ---- the kernels ------------------------------------------------------------------------------
SIZES = [(1, 1, 1), (8, 32, 64), (13, 45, 33), (3, 70, 100), (17, 33, 31), (64, 96, 257),
         (300, 40, 47)]


@pytest.mark.parametrize("m,n,k", SIZES)
@pytest.mark.parametrize("features", [None, *PORTABLE])
def test_bf16_linear_matches_numpy(m, n, k, features):
    g, w, b = graph(m, n, k, seed=m + n + k)
    x = np.random.default_rng(k).standard_normal((m, k)).astype(np.float32) * 3
    fn = llvm.compile_graph(g, num_threads=1, target_features=features)
    check(fn(x), x, w, b)


def test_rank3_input_and_no_bias():
    g, w, b = graph(5, 19, 23, bias=False, lead=(3,))
    x = np.random.default_rng(3).standard_normal((3, 5, 23)).astype(np.float32)
    check(llvm.compile_graph(g, num_threads=2)(x), x, w, b)


@pytest.mark.skipif(not HOST_BF16, reason="this CPU has no avx512_bf16")
@pytest.mark.parametrize("m,n,k", [(13, 45, 33), (64, 96, 257), (300, 40, 47)])
def test_portable_path_gives_the_instructions_bits(m, n, k):
    """vdpbf16ps adds the odd k's product, then the even one's, each add rounded; the
    portable path does the same, so the results agree bit for bit (normal numbers)."""
    g, _, _ = graph(m, n, k)
    x = np.random.default_rng(4).standard_normal((m, k)).astype(np.float32)
    native = llvm.compile_graph(g, num_threads=1)
    assert "vdpbf16ps" in native.asm and "vcvtne2ps2bf16" in native.asm
    y = native(x)
    for features in PORTABLE:
        portable = llvm.compile_graph(g, num_threads=1, target_features=features)
        assert "vdpbf16ps" not in portable.asm
        assert np.array_equal(portable(x), y), features
    assert np.array_equal(llvm.compile_graph(g, num_threads=2)(x), y)  # any thread split


@pytest.mark.parametrize("features", [None, "-avx512bf16"])
def test_special_values(features):
    """NaN and Inf propagate; a subnormal activation counts as 0 (as the conversion
    instruction flushes it); a value above bfloat16's largest rounds to Inf."""
    w = np.ones((2, 4), np.float32)
    g, _, _ = graph(4, 2, 4, bias=False, w=w)
    x = np.float32([[1, 2, 3, 4], [np.nan, 0, 0, 0], [np.inf, 1, 0, 0], [1e-40, 1e-40, 0, 1]])
    y = llvm.compile_graph(g, num_threads=1, target_features=features)(x)
    assert y[0].tolist() == [10, 10] and np.isnan(y[1]).all()
    assert np.isposinf(y[2]).all() and y[3].tolist() == [1, 1]
    big = np.full((4, 4), 3.4e38, np.float32)
    assert np.isposinf(llvm.compile_graph(g, num_threads=1, target_features=features)(big)).all()


def test_cache_hit_packs_the_other_graphs_weights(monkeypatch, tmp_path):
    """The packed panels come from a weight recipe: a graph differing only in weight values
    hits the compile cache (no lowering) and still computes with its own weights; the saved
    artifact carries them too."""
    from backends.llvm import cache, driver

    lowered = []
    build = driver.EntryBuilder.build
    monkeypatch.setattr(driver.EntryBuilder, "build",
                        lambda self: (lowered.append(1), build(self))[1])
    cache.clear_memory()
    g1, w1, b1 = graph(13, 45, 33, seed=1)
    g2, w2, b2 = graph(13, 45, 33, seed=2)
    x = np.random.default_rng(7).standard_normal((13, 33)).astype(np.float32)
    check(llvm.compile_graph(g1, num_threads=1)(x), x, w1, b1)
    m2 = llvm.compile_graph(g2, num_threads=1)
    assert len(lowered) == 1
    check(m2(x), x, w2, b2)
    m2.save(tmp_path / "m.lamina")
    check(compiler.load(tmp_path / "m.lamina")(x), x, w2, b2)
    cache.clear_memory()


def test_reference_interpreter_matches_numpy():
    from backends.reference import run

    g, w, b = graph(6, 9, 11)
    x = np.random.default_rng(5).standard_normal((6, 11)).astype(np.float32)
    check(run(g, x)[0], x, w, b)


def test_bad_operands_are_refused_naming_the_node():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 5)))
    w = g.add_weight("w", np.zeros((3, 2), np.int32))  # 5 features need 3 words
    with pytest.raises(ir.ShapeError, match=r"fc.*ceil"):
        g.call("bf16_linear", x, w, name="fc")
    w = g.add_weight("wf", np.zeros((3, 3), np.float32))
    with pytest.raises(ir.ShapeError, match="i32 words"):
        g.call("bf16_linear", x, w, name="fc")
    rt = g.add_input("w_rt", ir.TensorType((3, 3), "i32"))
    g.outputs = [g.call("bf16_linear", x, rt, name="fc")]
    with pytest.raises(ir.LaminaError, match=r"%fc.*graph weight"):
        llvm.compile_graph(g)


# ---- bf16_conv2d -------------------------------------------------------------------------------
def conv_numpy(x, w, b, stride, pad, dil):
    """conv2d in float64 on float64 operands, one kernel tap at a time."""
    xp = np.pad(x, ((0, 0), (0, 0), (pad[0], pad[2]), (pad[1], pad[3])))
    _, _, h, wd = xp.shape
    _, _, kh, kw = w.shape
    oh = (h - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dil[1] * (kw - 1) - 1) // stride[1] + 1
    y = np.zeros((x.shape[0], w.shape[0], oh, ow))
    for ky in range(kh):
        for kx in range(kw):
            y0, x0 = ky * dil[0], kx * dil[1]
            patch = xp[:, :, y0:y0 + stride[0] * (oh - 1) + 1:stride[0],
                       x0:x0 + stride[1] * (ow - 1) + 1:stride[1]]
            y += np.einsum("ncij,oc->noij", patch, w[:, :, ky, kx])
    return y + b.reshape(1, -1, 1, 1)


CONVS = [((2, 3, 7, 7), (5, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
         ((1, 17, 9, 6), (33, 17, 2, 3), (2, 1), (0, 1, 2, 0), (1, 2)),
         ((2, 16, 8, 8), (40, 16, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
         ((1, 1, 1, 1), (1, 1, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
         ((1, 4, 5, 35), (6, 4, 3, 3), (1, 2), (1, 1, 1, 1), (1, 1))]  # rows of 16 + tail


@pytest.mark.parametrize("xs,ws,stride,pad,dil", CONVS)
@pytest.mark.parametrize("features", [None, "-avx512bf16"])
def test_bf16_conv2d_matches_numpy(xs, ws, stride, pad, dil, features):
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x, w = rng.standard_normal(xs).astype(np.float32), rng.standard_normal(ws).astype(np.float32)
    b = rng.standard_normal(ws[0]).astype(np.float32)
    g = ir.Graph()
    xv = g.add_input("x", ir.TensorType(xs))
    g.outputs = [g.call("bf16_conv2d", xv, g.add_weight("w", pack_pairs(w.reshape(ws[0], -1))),
                        g.add_weight("b", b), kernel=ws[2:], stride=stride, pad=pad,
                        dilation=dil)]
    fn = llvm.compile_graph(g, num_threads=2, target_features=features)
    y = fn(x)
    ref = conv_numpy(bf(x), bf(w), b, stride, pad, dil)
    k = ws[1] * ws[2] * ws[3]
    bound = 2 * (k + 1) * 2.0**-24 * conv_numpy(np.abs(bf(x)), np.abs(bf(w)), np.abs(b),
                                                 stride, pad, dil) + 1e-30
    assert y.shape == ref.shape and (np.abs(y - ref) <= bound).all()
    if HOST_BF16 and features is None:
        portable = llvm.compile_graph(g, num_threads=1, target_features="-avx512bf16")
        assert np.array_equal(portable(x), y)


# ---- compiler.quantize(dtype="bfloat16") ------------------------------------------------------
@pytest.fixture(scope="module")
def mlp():
    nn.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 33), nn.ReLU(),
                         nn.Linear(33, 5)).eval()


def _batches(shape, n=2):
    rng = np.random.default_rng(6)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def test_quantize_mlp_bf16_matches_numpy_and_float32(mlp):
    cal = _batches((8, 20))
    q = compiler.quantize(mlp, cal, dtype="bfloat16")
    ops = [n.op for n in q.nodes]
    assert ops.count("bf16_linear") == 3 and "linear" not in ops
    assert all(q.weights[n.inputs[1].name].dtype == np.int32 for n in q.nodes
               if n.op == "bf16_linear")
    report = str(q.quantization_report)
    assert "3 layer(s)" in report and "bf16" in report
    x = cal[1]
    y = compiler.compile(q, x)(x)
    # numpy, written out: each layer's input and weight rounded by ml_dtypes
    sd = {k: np.asarray(v) for k, v in mlp.state_dict().items()}
    h = x.astype(np.float64)
    for i in (0, 2, 4):
        h = bf(h) @ bf(sd[f"{i}.weight"]).T + sd[f"{i}.bias"]
        h = np.maximum(h, 0) if i < 4 else h
    np.testing.assert_allclose(y, h, rtol=1e-4, atol=1e-4)
    yf = compiler.compile(mlp, x)(x)
    rel = np.linalg.norm(y - yf) / np.linalg.norm(yf)
    assert 0 < rel < 1e-2, rel  # bfloat16's 8 bits: ~0.4% per rounding


def test_quantize_transformer_encoder_bf16_within_bf16_tolerance():
    nn.manual_seed(1)
    enc = nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval()
    cal = _batches((2, 5, 32))
    q = compiler.quantize(enc, cal, dtype="bfloat16")
    rep = q.quantization_report
    assert len(rep.quantized) == 4  # in-projection, out-projection, both feed-forward
    assert rep.sqnr_db is not None and rep.sqnr_db > 35
    x = cal[0]
    y, yf = compiler.compile(q, x)(x), compiler.compile(enc, x)(x)
    rel = np.linalg.norm(y - yf) / np.linalg.norm(yf)
    assert 0 < rel < 1e-2, rel


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2)
        self.conv3, self.relu = nn.Conv2d(16, 16, 1), nn.ReLU()
        self.fc = nn.Linear(16 * 4 * 4, 10)

    def forward(self, x):
        x = self.conv3(self.relu(self.conv2(self.relu(self.conv1(x)))))
        return self.fc(x.flatten(1))


def test_quantize_cnn_bf16_within_bf16_tolerance():
    nn.manual_seed(2)
    model = SmallCNN().eval()
    cal = _batches((2, 3, 8, 8))
    q = compiler.quantize(model, cal, dtype="bfloat16")
    assert [n.op for n in q.nodes].count("bf16_conv2d") == 2
    rep = q.quantization_report
    assert [(n, why.split(":")[0]) for n, _, why in rep.kept_float] == \
        [("conv2", "grouped/depthwise convolution")]
    x = cal[1]
    y, yf = compiler.compile(q, x)(x), compiler.compile(model, x)(x)
    rel = np.linalg.norm(y - yf) / np.linalg.norm(yf)
    assert 0 < rel < 1e-2, rel


def test_quantize_refuses_other_dtypes(mlp):
    with pytest.raises(compiler.OptionError, match="'int8' or 'bfloat16'"):
        compiler.quantize(mlp, _batches((2, 20)), dtype="float16")
