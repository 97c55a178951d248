"""Post-training quantization end to end: the operators' reference semantics against numpy
written here and onnxruntime's QLinearMatMul, the fold_quantized pass (its IR, where it
must not fire, its one-step contract), and compiler.quantize on an MLP and a small CNN."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import ir
from backends import llvm
from backends.reference import run
from compiler import nn
from compiler.quantize import Observer, activation_params, entropy_threshold

from .helpers import apply, ops

RNG = np.random.default_rng(7)


def one(op, *arrays, weights=(), **attrs):
    """Reference result of one operator on arrays (names a0, a1, ...)."""
    g = ir.Graph()
    vals = [g.add_weight(f"a{i}", a) if i in weights else
            g.add_input(f"a{i}", ir.TensorType.of(a)) for i, a in enumerate(arrays)]
    g.outputs = [g.call(op, *vals, **attrs)]
    return run(g, *[a for i, a in enumerate(arrays) if i not in weights])[0]


# ---- reference semantics, against numpy written here ---------------------------------------
def test_quantize_rounds_half_to_even_and_saturates():
    x = np.array([0.5, 1.5, 2.5, -0.5, -1.5, 1000.0, -1000.0], np.float32) * np.float32(0.1)
    got = one("quantize", x, scale=(0.1,), zero_point=(10,), dtype="u8")
    # x / 0.1 = .5, 1.5, 2.5, -.5, -1.5 -> 0, 2, 2, -0, -2 (to even), + 10, clamped
    assert got.dtype == np.uint8 and got.tolist() == [10, 12, 12, 10, 8, 255, 0]
    got = one("quantize", x, scale=(0.1,), zero_point=(-120,), dtype="i8")
    assert got.dtype == np.int8 and got.tolist() == [-120, -118, -118, -120, -122, 127, -128]


def test_quantize_per_axis():
    x = np.array([[1.0, -1.0], [1.0, -1.0]], np.float32)
    got = one("quantize", x, scale=(0.5, 0.25), zero_point=(0, 3), axis=0, dtype="i8")
    assert got.tolist() == [[2, -2], [7, -1]]


def test_dequantize_per_axis_and_i32():
    q = np.array([[0, 10, -128], [127, 5, 1]], np.int8)
    got = one("dequantize", q, scale=(0.5, 2.0), zero_point=(10, -1), axis=0)
    np.testing.assert_array_equal(got, np.float32([[-5, 0, -69], [256, 12, 4]]))
    big = np.array([2**31 - 1, -(2**31)], np.int32)
    np.testing.assert_array_equal(one("dequantize", big, scale=(1.0,)),
                                  big.astype(np.float32))


def numpy_qlinear(x, w, b, x_zp, mult, y_zp, lo, hi, relu):
    """Loops over plain Python integers: the sum exactly, then the float epilogue."""
    m, k = x.shape
    out = np.zeros((m, w.shape[0]), np.int64)
    for i in range(m):
        for j in range(w.shape[0]):
            acc = sum((int(x[i, t]) - x_zp) * int(w[j, t]) for t in range(k)) + int(b[j])
            y = np.float32(np.float32(acc) * mult[j])
            q = min(max(int(np.rint(y)) + y_zp, lo), hi)
            out[i, j] = max(q, y_zp) if relu else q
    return out


@pytest.mark.parametrize("xdt,dtype,relu", [(np.uint8, "u8", False), (np.int8, "i8", True)])
def test_qlinear_matches_integer_loops(xdt, dtype, relu):
    lo_x = 0 if xdt == np.uint8 else -128
    x = RNG.integers(lo_x, lo_x + 256, (3, 13)).astype(xdt)
    w = RNG.integers(-128, 128, (5, 13)).astype(np.int8)
    b = RNG.integers(-3000, 3000, 5).astype(np.int32)
    w_scale = (0.01, 0.02, 0.003, 0.05, 0.0071)
    got = one("qlinear", x, w, b, weights=(1, 2), x_scale=0.04, x_zero_point=lo_x + 100,
              w_scale=w_scale, y_scale=0.3, y_zero_point=-2 if dtype == "i8" else 40,
              dtype=dtype, relu=relu)
    mult = (0.04 * np.array(w_scale) / 0.3).astype(np.float32)
    lo, hi = (0, 255) if dtype == "u8" else (-128, 127)
    want = numpy_qlinear(x, w, b, lo_x + 100, mult, -2 if dtype == "i8" else 40, lo, hi, relu)
    np.testing.assert_array_equal(got, want)


def test_qconv2d_matches_integer_loops():
    """Direct loops over the padded window: padding holds x's zero point (x - zp = 0)."""
    x = RNG.integers(0, 256, (1, 2, 4, 5)).astype(np.uint8)
    w = RNG.integers(-128, 128, (3, 2, 3, 3)).astype(np.int8)
    b = np.array([7, -70, 700], np.int32)
    got = one("qconv2d", x, w, b, weights=(1, 2), stride=(2, 1), pad=(1, 1, 1, 1),
              x_scale=0.1, x_zero_point=50, w_scale=(0.01, 0.02, 0.03), dtype="f32")
    xp = np.pad(x.astype(int) - 50, ((0, 0), (0, 0), (1, 1), (1, 1)))
    want = np.zeros((1, 3, 2, 5), np.float32)
    for o in range(3):
        for i in range(2):
            for j in range(5):
                acc = int((xp[0, :, 2 * i:2 * i + 3, j:j + 3] * w[o].astype(int)).sum()) + b[o]
                want[0, o, i, j] = np.float32(acc) * np.float32(0.1 * (0.01, 0.02, 0.03)[o])
    np.testing.assert_array_equal(got, want)


def test_bad_operands_and_attributes_are_typed_errors():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2, 3), "i32"))
    with pytest.raises(ir.ShapeError, match="quantize takes f32"):
        g.call("quantize", x, scale=(0.1,))
    f = g.add_input("f", ir.TensorType((2, 3), "f32"))
    with pytest.raises(ir.LaminaError, match="scale"):
        g.call("quantize", f, scale=(-1.0,))
    with pytest.raises(ir.LaminaError, match="zero_point"):
        g.call("quantize", f, scale=(0.1,), zero_point=(300,))
    with pytest.raises(ir.ShapeError, match="per-axis scale has 2 values"):
        g.call("quantize", f, scale=(0.1, 0.2), axis=1)
    q = g.add_input("q", ir.TensorType((2, 3), "u8"))
    w = g.add_weight("w", np.zeros((4, 3), np.float32))
    with pytest.raises(ir.ShapeError, match="i8 weights"):
        g.call("qlinear", q, w, x_scale=0.1, w_scale=(0.1,))


# ---- against onnxruntime's QLinearMatMul ---------------------------------------------------
def ort_qlinear_matmul(x, w, x_scale, x_zp, w_scale, y_scale, y_zp):
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in {
        "xs": np.float32(x_scale), "xz": np.uint8(x_zp), "w": np.ascontiguousarray(w.T),
        "ws": np.float32(w_scale), "wz": np.int8(0), "ys": np.float32(y_scale),
        "yz": np.uint8(y_zp)}.items()]
    node = helper.make_node("QLinearMatMul", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"],
                            ["y"])
    graph = helper.make_graph([node], "q", [helper.make_tensor_value_info(
        "x", TensorProto.UINT8, list(x.shape))], [helper.make_tensor_value_info(
            "y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


@pytest.mark.parametrize("scales", [(0.5, 0.25, 0.125), (0.0217, 0.0033, 0.0391)],
                         ids=["powers_of_two", "arbitrary"])
def test_qlinear_agrees_with_onnxruntime_qlinearmatmul(scales):
    """Power-of-two scales make every multiplier exact: equal bits. Otherwise onnxruntime
    forms x_scale * w_scale / y_scale in float32 steps, Lamina in float64 then rounds once:
    multipliers an ulp apart may move a value across a rounding boundary, one step."""
    x_scale, w_scale, y_scale = scales
    x = RNG.integers(0, 256, (16, 40)).astype(np.uint8)
    w = RNG.integers(-128, 128, (24, 40)).astype(np.int8)
    want = ort_qlinear_matmul(x, w, x_scale, 128, w_scale, y_scale * 64, 100)
    g = ir.Graph()
    xv = g.add_input("x", ir.TensorType.of(x))
    g.outputs = [g.call("qlinear", xv, g.add_weight("w", w), x_scale=x_scale, x_zero_point=128,
                        w_scale=(w_scale,), y_scale=y_scale * 64, y_zero_point=100)]
    for got in (run(g, x)[0], llvm.compile_graph(g, num_threads=1)(x)):
        diff = np.abs(got.astype(int) - want.astype(int))
        if scales[0] == 0.5:
            np.testing.assert_array_equal(got, want)
        else:
            assert diff.max() <= 1 and (diff == 0).mean() > 0.98


# ---- the fold_quantized pass ----------------------------------------------------------------
QDQ = """
graph @main(%x: f32[4,6]) -> (u8[4,5]) {
  @w: i8[5,6]
  @b: i32[5]
  %xq: u8[4,6] = quantize(%x) {scale=[0.05], zero_point=[128]}
  %xd: f32[4,6] = dequantize(%xq) {scale=[0.05], zero_point=[128]}
  %wd: f32[5,6] = dequantize(@w) {axis=0, scale=[0.01,0.02,0.03,0.04,0.05]}
  %bd: f32[5] = dequantize(@b) {axis=0, scale=[BIAS]}
  %h: f32[4,5] = linear(%xd, %wd, %bd)
  %r: f32[4,5] = relu(%h)
  %y: u8[4,5] = quantize(%r) {scale=[0.02], zero_point=[3]}
  return %y
}
"""
W_SCALES = (0.01, 0.02, 0.03, 0.04, 0.05)
BIAS = ",".join(repr(float(np.float32(0.05) * np.float32(s))) for s in W_SCALES)


def qdq_graph(text=QDQ, bias=BIAS):
    g = ir.parse(text.replace("BIAS", bias))
    g.weights["w"] = RNG.integers(-127, 128, (5, 6)).astype(np.int8)
    g.weights["b"] = RNG.integers(-500, 500, 5).astype(np.int32)
    ir.verify(g)
    return g


def test_fold_makes_one_qlinear():
    g = qdq_graph()
    out, stats = apply("fold_quantized", g)
    assert stats.rewrites() == {"fold_quantized.qlinear": 1}
    assert ops(out) == {"quantize": 1, "qlinear": 1}
    (node,) = [n for n in out.nodes if n.op == "qlinear"]
    assert [v.name for v in node.inputs] == ["xq", "w", "b"]
    assert node.attrs == {"x_scale": 0.05, "x_zero_point": 128, "w_scale": W_SCALES,
                          "y_scale": 0.02, "y_zero_point": 3, "dtype": "u8", "relu": True}
    assert set(out.params) == {"w", "b"}


def test_fold_is_within_one_step_of_the_float_graph():
    g = qdq_graph()
    out, _ = apply("fold_quantized", g)
    for _ in range(5):
        x = (RNG.standard_normal((4, 6)) * 3).astype(np.float32)
        a, b = run(g, x)[0].astype(int), run(out, x)[0].astype(int)
        assert np.abs(a - b).max() <= 1
        np.testing.assert_array_equal(llvm.compile_graph(out, num_threads=1)(x), b)


def test_fold_without_closing_quantize_gives_f32():
    text = QDQ.replace("-> (u8[4,5])", "-> (f32[4,5])").replace(
        "  %y: u8[4,5] = quantize(%r) {scale=[0.02], zero_point=[3]}\n", "").replace(
        "return %y", "return %r")
    g = qdq_graph(text)
    out, _ = apply("fold_quantized", g)
    (node,) = out.nodes[1:]
    assert node.op == "qlinear" and node.attrs["dtype"] == "f32" and node.attrs["relu"]
    x = RNG.standard_normal((4, 6)).astype(np.float32)
    np.testing.assert_allclose(run(out, x)[0], run(g, x)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change", ["weight_zero_point", "bias_scale", "runtime_input"])
def test_fold_does_not_fire(change):
    text, bias = QDQ, BIAS
    if change == "weight_zero_point":  # asymmetric weights: no kernel for them
        text = text.replace("{axis=0, scale=[0.01,0.02,0.03,0.04,0.05]}",
                            "{axis=0, scale=[0.01,0.02,0.03,0.04,0.05], zero_point=[1]}")
    elif change == "bias_scale":  # a bias in other units than x_scale * w_scale
        bias = "0.1,0.1,0.1,0.1,0.1"
    else:  # the linear reads the float input, not a dequantized one
        text = text.replace("linear(%xd,", "linear(%x,")
    g = qdq_graph(text, bias)
    out, _ = apply(["fold_quantized", "eliminate_dead_code"], g)
    assert "qlinear" not in ops(out) and "linear" in ops(out)


# ---- compiler.quantize ----------------------------------------------------------------------
class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(20, 64), nn.Linear(64, 48), nn.Linear(48, 10)
        self.act = nn.ReLU()

    def forward(self, x):
        return self.fc3(self.act(self.fc2(self.act(self.fc1(x)))))


def batches(shape, n=6, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]


def sqnr(ref, got) -> float:
    return 10 * np.log10(np.sum(ref.astype(np.float64) ** 2)
                         / np.sum((ref.astype(np.float64) - got) ** 2))


@pytest.fixture(scope="module")
def mlp():
    nn.manual_seed(0)
    return MLP().eval()


def test_quantize_mlp_end_to_end(mlp):
    seen = []
    q = compiler.quantize(mlp, batches((16, 20)), on_batch=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 6) for i in range(1, 7)]
    assert ops(q)["quantize"] == 3 and ops(q)["linear"] == 3
    assert all(q.params[p].type.dtype in ("i8", "i32") for p in q.params)
    report = q.quantization_report
    assert len(report.quantized) == 3 and report.sqnr_db > 30
    assert "%fc1 (linear [64, 20])" in str(report)
    ir.parse(str(q), q.weights)  # the IR text shows (and reads back) every scale
    x = batches((16, 20), 1, seed=9)[0]
    fn = compiler.compile(q, x)
    assert ops(fn.graph) == {"quantize": 1, "qlinear": 3}
    float_out = compiler.compile(mlp, x)(x)
    got = fn(x)
    assert sqnr(float_out, got) > 25
    # inputs beyond the calibrated ranges clip: a few values move by more than a step
    np.testing.assert_allclose(got, float_out, atol=0.15 * np.abs(float_out).max())
    # the native kernels give the folded graph's reference numbers
    np.testing.assert_allclose(got, run(fn.graph, x)[0], rtol=1e-6, atol=1e-6)


def test_quantize_matmul_with_weight_and_per_tensor():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((8, 12)))
    w = g.add_weight("w", RNG.standard_normal((12, 7)).astype(np.float32))
    g.outputs = [g.call("matmul", x, w)]
    q = compiler.quantize(g, batches((8, 12)), per_channel=False)
    (dq,) = [n for n in q.nodes if n.op == "dequantize" and n.inputs[0].kind == "weight"]
    assert len(dq.attrs["scale"]) == 1 and q.quantization_report.sqnr_db > 30
    xv = batches((8, 12), 1, seed=3)[0]
    assert "qlinear" in ops(compiler.compile(q, xv).graph)


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.relu, self.flat, self.fc = nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 5)

    def forward(self, x):
        return self.fc(self.flat(self.relu(self.bn(self.conv(x)))))


def test_quantize_small_cnn():
    """conv -> bn -> relu -> flatten -> fc: batch norm folds into the conv first, the relu
    into its epilogue, which requantizes to u8; the flatten (a reshape) moves bytes."""
    nn.manual_seed(1)
    model = SmallCNN().eval()
    q = compiler.quantize(model, batches((4, 3, 6, 6)))
    report = q.quantization_report
    assert len(report.quantized) == 2 and not report.kept_float and report.sqnr_db > 25
    x = batches((4, 3, 6, 6), 1, seed=5)[0]
    fn = compiler.compile(q, x)
    assert ops(fn.graph) == {"quantize": 1, "qconv2d": 1, "reshape": 1, "qlinear": 1}
    (conv,) = [n for n in fn.graph.nodes if n.op == "qconv2d"]
    assert conv.attrs["relu"] and conv.attrs["dtype"] == "u8" and conv.attrs["pad"] == (1,) * 4
    ref = compiler.compile(model, x)(x)
    assert sqnr(ref, fn(x)) > 25
    np.testing.assert_allclose(fn(x), run(fn.graph, x)[0], rtol=1e-6, atol=1e-6)


def test_quantized_graph_exports_to_onnx_and_runs_in_onnxruntime(mlp, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    x = batches((16, 20), 1, seed=4)[0]
    q = compiler.quantize(mlp, batches((16, 20)))
    path = tmp_path / "q.onnx"
    compiler.save_onnx(q, str(path))
    want = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        None, {"x": x})[0]
    got = compiler.compile(q, x)(x)
    out_step = max(n.attrs["x_scale"] for n in compiler.compile(q, x).graph.nodes
                   if n.op == "qlinear")  # the coarsest activation step
    np.testing.assert_allclose(got, want, atol=2 * out_step)


@pytest.mark.parametrize("method", ["percentile", "entropy"])
def test_clipping_methods_ignore_an_outlier(method):
    rng = np.random.default_rng(3)  # (not the module's RNG: its state depends on test order)
    data = np.concatenate([rng.standard_normal(100000), [1000.0]]).astype(np.float32)
    full = Observer("minmax")
    clipped = Observer(method, percentile=99.9)
    for ob in (full, clipped):
        ob.update(data)
    assert full.range()[1] == 1000.0
    lo, hi = clipped.range()
    if method == "percentile":
        assert 2.0 < hi < 10.0 and -10.0 < lo < -2.0
    else:  # TensorRT's search starts at 128 of the 2048 bins over [0, max]: 1000 * 128 / 2048
        assert hi == entropy_threshold(np.abs(data)) == 62.5 and lo == data.min()
        gauss = np.abs(data[:-1])  # without the outlier: no clipping into the bulk (the
        # search may keep the whole range: the sample's max is a tail value, not an outlier)
        assert 2.0 < entropy_threshold(gauss) <= gauss.max()
    q = compiler.quantize(MLP().eval(), batches((16, 20)), method=method)
    assert q.quantization_report.method == method


def test_activation_params_keep_zero_exact():
    scale, zp = activation_params(-1.0, 3.0)
    assert zp == 64 and np.isclose(scale, 4 / 255)
    assert activation_params(0.5, 2.0)[1] == 0  # a range above 0: zero point 0
    assert activation_params(0.0, 0.0) == (1.0, 0)


def test_quantize_bad_arguments(mlp):
    with pytest.raises(compiler.OptionError, match="method"):
        compiler.quantize(mlp, batches((2, 20)), method="kmeans")
    with pytest.raises(compiler.OptionError, match="'int8' or 'bfloat16'"):
        compiler.quantize(mlp, batches((2, 20)), dtype="float16")
    with pytest.raises(compiler.OptionError, match="empty"):
        compiler.quantize(mlp, [])
    for bad in (5, np.zeros((2, 20), np.float32)):  # one array is not a list of batches
        with pytest.raises(compiler.OptionTypeError, match="iterable of input arrays"):
            compiler.quantize(mlp, bad)


def test_digits_cnn_int8_accuracy_within_half_a_point_of_float32():
    """examples/train_digits.py's CNN, trained 3 epochs as the example does, quantized on
    640 training images: every conv and the classifier int8, test accuracy within 0.5
    points of float32 (the issue's bar; here: the same predictions almost everywhere)."""
    pytest.importorskip("sklearn", reason="the digits example reads scikit-learn's dataset")
    import importlib.util
    from pathlib import Path

    from compiler import optim

    path = Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"
    spec = importlib.util.spec_from_file_location("train_digits", path)
    digits = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(digits)
    x_train, y_train, x_test, y_test = digits.load_data()
    nn.manual_seed(0)
    model, opt, b = digits.DigitsCNN(), optim.Adam(lr=3e-3), 64
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), opt, x_train[:b],
                                     y_train[:b])
    rng = np.random.default_rng(0)
    for _ in range(3):
        order = rng.permutation(len(x_train))
        for k in range(len(x_train) // b):
            idx = order[k * b:(k + 1) * b]
            step(x_train[idx], y_train[idx])
    step.copy_to(model)
    model.eval()
    calibration = [x_train[i:i + 64] for i in range(0, 640, 64)]
    q = compiler.quantize(model, calibration, example_inputs=(x_test,))
    assert len(q.quantization_report.quantized) == 4  # three convs and the classifier
    float_pred = compiler.compile(model, x_test)(x_test).argmax(1)
    fn = compiler.compile(q, x_test)
    assert ops(fn.graph)["qconv2d"] == 3 and ops(fn.graph)["qlinear"] == 1
    int8_pred = fn(x_test).argmax(1)
    acc_f32, acc_int8 = (float_pred == y_test).mean(), (int8_pred == y_test).mean()
    assert acc_f32 > 0.9 and abs(acc_int8 - acc_f32) <= 0.005
    assert (int8_pred == float_pred).mean() >= 0.99


def test_quantized_graph_and_compiled_model_save_and_load(mlp, tmp_path):
    x = batches((16, 20), 1, seed=2)[0]
    q = compiler.quantize(mlp, batches((16, 20), 2))
    ir.save(q, str(tmp_path / "q.npz"))
    back = ir.load(str(tmp_path / "q.npz"))
    assert str(back) == str(q) and back.weights["fc1.weight.q"].dtype == np.int8
    fn = compiler.compile(back, x)
    fn.save(str(tmp_path / "q.lamina"))
    np.testing.assert_array_equal(compiler.load(str(tmp_path / "q.lamina"))(x), fn(x))


def test_quantize_takes_an_onnx_file_and_a_torch_module(mlp, tmp_path):
    """`model` is anything compiler.compile takes: here an .onnx path and a torch module."""
    x = batches((16, 20), 1, seed=6)[0]
    path = tmp_path / "mlp.onnx"
    compiler.save_onnx(mlp, str(path), example_inputs=(x,))
    q = compiler.quantize(str(path), batches((16, 20), 3))
    assert len(q.quantization_report.quantized) == 3
    want = compiler.compile(mlp, x)(x)
    assert sqnr(want, compiler.compile(q, x)(x)) > 25
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.ReLU(), torch.nn.Linear(32, 3))
    qt = compiler.quantize(net.eval(), batches((16, 20), 3))
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    assert len(qt.quantization_report.quantized) == 2
    assert sqnr(ref, compiler.compile(qt, x)(x)) > 25


class _Residual(nn.Module):
    """conv -> relu -> conv -> relu -> conv, plus the block's input, relu, a 1x1 conv."""

    def __init__(self):
        super().__init__()
        self.stem, self.c1 = nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.c2, self.head = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 4, 1)

    def forward(self, x):
        h = self.stem(x).relu()
        return self.head((self.c2(self.c1(h).relu()) + h).relu())


def test_a_residual_add_runs_on_bytes_and_its_producers_requantize():
    """Both operands of the residual add are quantized, so the add folds into qadd and the
    conv producing one operand requantizes in its epilogue: no float add, conv or dequantize
    is left between the stem and the head. The int8 model stays close to the float one."""
    model = _Residual().eval()
    data = batches((2, 3, 6, 6), 4)
    q = compiler.quantize(model, data)
    assert any(line.startswith("%add") for line in q.quantization_report.quantized)
    fn = compiler.compile(q, data[0])
    kinds = ops(fn.graph)
    assert kinds["qadd"] == 1 and kinds["qconv2d"] == 4 and "add" not in kinds
    assert "dequantize" not in kinds and "conv2d" not in kinds  # the head writes float
    want = compiler.compile(model, data[0])(data[0])
    assert sqnr(want, fn(data[0])) > 30
