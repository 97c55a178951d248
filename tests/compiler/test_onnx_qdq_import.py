"""Quantized ONNX models imported (compiler/frontends/onnx/ops/quant.py): files written by
onnxruntime's own quantizer (QDQ, per-channel; dynamic), compiled natively and checked
against onnxruntime running the same file; the integer operators the QDQ patterns fold
into (fold_quantized); QLinearConv/QLinearMatMul with constant weights imported as
qconv2d/qlinear; the run-time-scale paths; and refusals naming the node."""

from __future__ import annotations

import logging

import numpy as np
import pytest

import compiler

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from compiler import OnnxImportError, load_onnx  # noqa: E402
from tests.compiler.onnx_util import model, ort_run  # noqa: E402

logging.getLogger().setLevel(logging.ERROR)  # the quantizer's advice on pre-processing


def _init(rng, name, *shape, s=0.3):
    return numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name)


def _cnn(rng):
    """Conv-Relu-MaxPool-Conv(stride 2)-Relu-Flatten-MatMul-Add-Relu-Gemm, [1,3,16,16] -> 10."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Relu", ["c2"], ["r2"]),
             helper.make_node("Flatten", ["r2"], ["f"]),
             helper.make_node("MatMul", ["f", "w3"], ["m3"]),
             helper.make_node("Add", ["m3", "b3"], ["a3"]),
             helper.make_node("Relu", ["a3"], ["h"]),
             helper.make_node("Gemm", ["h", "w4", "b4"], ["y"], transB=1)]
    inits = [_init(rng, "w1", 8, 3, 3, 3), _init(rng, "b1", 8, s=0.1),
             _init(rng, "w2", 16, 8, 3, 3, s=0.15), _init(rng, "b2", 16, s=0.1),
             _init(rng, "w3", 256, 32, s=0.08), _init(rng, "b3", 32, s=0.1),
             _init(rng, "w4", 10, 32, s=0.3), _init(rng, "b4", 10, s=0.1)]
    return nodes, inits, (1, 3, 16, 16), 10


def _mlp(rng):
    """MatMul-Add-Relu, Gemm (weight [in, out]: no transB)-Relu, Gemm(transB), [4,20] -> 6."""
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["m1"]),
             helper.make_node("Add", ["m1", "b1"], ["a1"]),
             helper.make_node("Relu", ["a1"], ["h1"]),
             helper.make_node("Gemm", ["h1", "w2", "b2"], ["g2"]),
             helper.make_node("Relu", ["g2"], ["h2"]),
             helper.make_node("Gemm", ["h2", "w3", "b3"], ["y"], transB=1)]
    inits = [_init(rng, "w1", 20, 48), _init(rng, "b1", 48, s=0.1), _init(rng, "w2", 48, 24, s=0.2),
             _init(rng, "b2", 24, s=0.1), _init(rng, "w3", 6, 24), _init(rng, "b3", 6, s=0.1)]
    return nodes, inits, (4, 20), 6


def _float_file(tmp_path, build, seed):
    rng = np.random.default_rng(seed)
    nodes, inits, shape, n_out = build(rng)
    g = helper.make_graph(nodes, "f", [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                                                     list(shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                                         [shape[0], n_out])], inits)
    path = tmp_path / "float.onnx"
    onnx.save(helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, shape


class _Calibration(quantization.CalibrationDataReader):
    def __init__(self, batches):
        self.it = iter({"x": b} for b in batches)

    def get_next(self):
        return next(self.it, None)


def _quantized_file(tmp_path, build, activations, seed=0):
    """The float model written by `build`, quantized by onnxruntime (static, QDQ,
    per-channel int8 weights), as a file; with calibration and test inputs."""
    src, shape = _float_file(tmp_path, build, seed)
    rng = np.random.default_rng(seed + 1)
    calib = [rng.standard_normal(shape).astype(np.float32) for _ in range(16)]
    out = tmp_path / "qdq.onnx"
    quantization.quantize_static(
        str(src), str(out), _Calibration(calib), quant_format=quantization.QuantFormat.QDQ,
        per_channel=True, activation_type=activations,
        weight_type=quantization.QuantType.QInt8)
    tests = [rng.standard_normal(shape).astype(np.float32) for _ in range(3)]
    return str(out), tests


def _ort_file(path, x):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def _output_step(path) -> float:
    """The scale of the model's last DequantizeLinear: one quantization step of y."""
    m = onnx.load(path)
    last = next(n for n in m.graph.node if n.output[0] == m.graph.output[0].name)
    assert last.op_type == "DequantizeLinear"
    inits = {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}
    return float(inits[last.input[1]])


def _save(tmp_path, m) -> str:
    path = tmp_path / "m.onnx"
    onnx.save(m, str(path))
    return str(path)


def _ops(graph) -> list[str]:
    return [n.op for n in graph.nodes]


ACTIVATIONS = [pytest.param(quantization.QuantType.QUInt8, id="u8"),
               pytest.param(quantization.QuantType.QInt8, id="i8")]


@pytest.mark.parametrize("activations", ACTIVATIONS)
@pytest.mark.parametrize("build,convs,linears", [(_cnn, 2, 2), (_mlp, 0, 3)],
                         ids=["cnn", "mlp"])
def test_onnxruntime_qdq_file_compiles_to_integer_kernels(tmp_path, build, convs, linears,
                                                          activations):
    path, tests = _quantized_file(tmp_path, build, activations)
    # the import keeps the file's int8 weights (and 8-bit activations) as i8/u8 values
    imported = load_onnx(path)
    weights = [n.inputs[0] for n in imported.nodes
               if n.op == "dequantize" and n.inputs[0].kind == "weight"]
    assert sum(w.type.dtype == "i8" and w.type.rank >= 2 for w in weights) == convs + linears
    act = "u8" if activations == quantization.QuantType.QUInt8 else "i8"
    assert all(n.output.type.dtype == act for n in imported.nodes if n.op == "quantize")

    fn = compiler.compile(path, tests[0])
    ops = _ops(fn.graph)
    # every layer folded into the integer operators; no float layer is left
    assert ops.count("qconv2d") == convs and ops.count("qlinear") == linears, ops
    assert not {"conv2d", "linear", "matmul", "fused_conv2d", "fused_linear"} & set(ops), ops
    step = _output_step(path)
    for x in tests:
        got, want = fn(x), _ort_file(path, x)
        assert got.dtype == np.float32 and got.shape == want.shape
        # both dequantize the same y_scale grid: at most one step apart (rounding of a
        # float sum at a rounding boundary), and almost always equal
        err = np.abs(got - want)
        assert err.max() <= step * 1.001, (err.max(), step)
        assert np.mean(err > step / 2) <= 0.1



def _convnet(rng):
    """Conv-Relu-Conv(stride 2)-Flatten-MatMul, [1,3,8,8] -> 10."""
    nodes = [helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c1"], ["r1"]),
             helper.make_node("Conv", ["r1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1],
                              strides=[2, 2]),
             helper.make_node("Flatten", ["c2"], ["f"]),
             helper.make_node("MatMul", ["f", "w3"], ["y"])]
    inits = [_init(rng, "w1", 8, 3, 3, 3), _init(rng, "b1", 8, s=0.1),
             _init(rng, "w2", 16, 8, 3, 3, s=0.15), _init(rng, "b2", 16, s=0.1),
             _init(rng, "w3", 256, 10, s=0.08)]
    return nodes, inits, (1, 3, 8, 8), 10


def test_onnxruntime_qoperator_file_imports_as_integer_operators(tmp_path):
    """The other format onnxruntime writes: QLinearConv / QLinearMatMul nodes with int8
    weights, imported straight as qconv2d / qlinear (no fold needed)."""
    src, shape = _float_file(tmp_path, _convnet, seed=8)
    rng = np.random.default_rng(9)
    out = str(tmp_path / "qop.onnx")
    quantization.quantize_static(
        str(src), out, _Calibration([rng.standard_normal(shape).astype(np.float32)
                                     for _ in range(8)]),
        quant_format=quantization.QuantFormat.QOperator, per_channel=True)
    kinds = [n.op_type for n in onnx.load(out).graph.node]
    assert kinds.count("QLinearConv") == 2 and "QLinearMatMul" in kinds
    assert _ops(load_onnx(out)) == ["quantize", "qconv2d", "qconv2d", "flatten", "qlinear",
                                    "dequantize"]
    step = _output_step(out)
    x = rng.standard_normal(shape).astype(np.float32)
    fn = compiler.compile(out, x)
    assert np.abs(fn(x) - _ort_file(out, x)).max() <= step * 1.001

def test_qdq_import_on_the_reference_interpreter_matches_too(tmp_path):
    """The imported graph unoptimised (quantize/dequantize, float layers) on the reference
    interpreter: the same file's numbers within a step of onnxruntime's."""
    from backends.reference import run

    path, tests = _quantized_file(tmp_path, _cnn, quantization.QuantType.QUInt8, seed=3)
    g = load_onnx(path)
    assert "conv2d" in _ops(g) and "qconv2d" not in _ops(g)
    step = _output_step(path)
    for x in tests:
        got = run(g, x)[0]
        assert np.abs(got - _ort_file(path, x)).max() <= step * 1.001


def test_onnxruntime_dynamic_quantization(tmp_path):
    """quantize_dynamic's DynamicQuantizeLinear + MatMulInteger (+ Cast, Mul) model."""
    src, shape = _float_file(tmp_path, _mlp, seed=4)
    out = tmp_path / "dyn.onnx"
    quantization.quantize_dynamic(str(src), str(out), weight_type=quantization.QuantType.QInt8)
    kinds = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= kinds
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    fn = compiler.compile(str(out), x)
    want = _ort_file(str(out), x)
    # the same integer products and scales; float32 rounding of the final products only
    np.testing.assert_allclose(fn(x), want, rtol=1e-4, atol=1e-4)


# ---- QLinearConv / QLinearMatMul with constant int8 weights: qconv2d / qlinear --------------
def _qparams(rng, o):
    return (np.float32(0.02), np.uint8(120), (rng.random(o) * 0.01 + 0.005).astype(np.float32),
            np.float32(0.05), np.uint8(100))


@pytest.mark.parametrize("pads,strides,group", [([1, 1, 1, 1], [1, 1], 1),
                                                ([0, 1, 2, 0], [2, 1], 2)])
def test_qlinearconv_with_int8_weight_is_qconv2d(pads, strides, group):
    rng = np.random.default_rng(6)
    o, c = 6, 4
    xs, xz, ws, ys, yz = _qparams(rng, o)
    w = rng.integers(-127, 128, (o, c // group, 3, 3)).astype(np.int8)
    bias = rng.integers(-2000, 2000, o).astype(np.int32)
    x = rng.integers(0, 256, (2, c, 9, 8)).astype(np.uint8)
    inits = {"xs": xs, "xz": xz, "w": w, "ws": ws, "wz": np.zeros(o, np.int8), "ys": ys,
             "yz": yz, "b": bias}
    m = model([helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz",
                                                "b"], ["y"], pads=pads, strides=strides,
                                group=group)],
              {"x": x}, outputs=[("y", np.uint8)], inits=inits, opset=13)
    g = load_onnx(m)
    assert _ops(g) == ["cast", "qconv2d"]  # the u8 input arrives widened (builder.WIDER)
    fn = compiler.compile(g, x.astype(np.int32))
    got, want = fn(x.astype(np.int32)), ort_run(m, {"x": x})[0]
    assert got.dtype == np.uint8 and got.shape == want.shape
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1


def test_qlinearmatmul_with_int8_weight_is_qlinear():
    rng = np.random.default_rng(7)
    xs, xz, ws, ys, yz = _qparams(rng, 5)
    w = rng.integers(-127, 128, (12, 5)).astype(np.int8)
    a = rng.integers(0, 256, (3, 12)).astype(np.uint8)
    inits = {"as": xs, "az": xz, "w": w, "ws": ws, "wz": np.zeros(5, np.int8), "ys": ys,
             "yz": yz}
    m = model([helper.make_node("QLinearMatMul", ["a", "as", "az", "w", "ws", "wz", "ys",
                                                  "yz"], ["y"])],
              {"a": a}, outputs=[("y", np.uint8)], inits=inits, opset=21)
    g = load_onnx(m)
    assert _ops(g) == ["cast", "qlinear"]
    got = compiler.compile(g, a.astype(np.int32))(a.astype(np.int32))
    # onnx's definition, in numpy: exact int32 sums, then the float requantization
    acc = (a.astype(np.int64) - 120) @ w.astype(np.int64)
    want = np.clip(np.rint(acc * (xs * ws / ys).astype(np.float64) + 100), 0, 255)
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    np.testing.assert_array_equal(got, ort_run(m, {"a": a})[0])



@pytest.mark.parametrize("k,op", [(40, "qlinear"), (600, "matmul")])
def test_matmulinteger_with_int8_weight(k, op):
    """qlinear with scales 1 where its f32 sum is provably the int32 one (k * 255 * 128 <
    2**24), float64 beyond: both exact, against numpy's int64 product."""
    rng = np.random.default_rng(13)
    a = rng.integers(0, 256, (3, k)).astype(np.uint8)
    w = rng.integers(-128, 128, (k, 7)).astype(np.int8)
    w[:, 0] = -128  # the extreme sums: a column of -128 against 255 - zero point
    a[0] = 255
    m = model([helper.make_node("MatMulInteger", ["a", "w", "az"], ["y"])], {"a": a},
              outputs=[("y", np.int32)], inits={"w": w, "az": np.uint8(3)}, opset=13)
    g = load_onnx(m)
    assert op in _ops(g)
    got = compiler.compile(g, a.astype(np.int32))(a.astype(np.int32))
    want = (a.astype(np.int64) - 3) @ w.astype(np.int64)
    assert got.dtype == np.int32
    np.testing.assert_array_equal(got, want)


def test_convinteger_with_int8_weight_is_qconv2d():
    rng = np.random.default_rng(14)
    x = rng.integers(0, 256, (2, 4, 7, 6)).astype(np.uint8)
    w = rng.integers(-128, 128, (6, 2, 3, 3)).astype(np.int8)
    m = model([helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], pads=[1, 0, 1, 2],
                                strides=[2, 1], group=2)],
              {"x": x}, outputs=[("y", np.int32)], inits={"w": w, "xz": np.uint8(128)},
              opset=13)
    g = load_onnx(m)
    assert "qconv2d" in _ops(g)
    got = compiler.compile(g, x.astype(np.int32))(x.astype(np.int32))
    # numpy: the padded, zero-point-shifted input against each group's kernels
    xp = np.pad(x.astype(np.int64) - 128, ((0, 0), (0, 0), (1, 1), (0, 2)))
    oh, ow = (xp.shape[2] - 3) // 2 + 1, xp.shape[3] - 3 + 1
    want = np.zeros((2, 6, oh, ow), np.int64)
    for o in range(6):
        grp = o // 3
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, 2 * grp:2 * grp + 2, 2 * i:2 * i + 3, j:j + 3]
                want[:, o, i, j] = (patch * w[o].astype(np.int64)).sum(axis=(1, 2, 3))
    np.testing.assert_array_equal(got, want)

# ---- run-time scales and zero points, natively ------------------------------------------------
def test_runtime_scale_quantize_and_dynamic_quantize_natively(tmp_path):
    """The float decomposition (rounding half to even in float64) on the LLVM backend:
    halves, saturation, per-axis run-time scales, against onnxruntime."""
    x = np.array([[-300, -2.5, -1.5, -0.5, 0.5, 1.5], [2.5, 3.5, 126.5, 127.5, 200, 7]],
                 np.float32)
    scale = np.array([1.0, 0.5], np.float32)
    zp = np.array([0, 3], np.int8)
    m = model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
               helper.make_node("DynamicQuantizeLinear", ["x"], ["d", "ds", "dz"])],
              {"x": x, "s": scale, "z": zp},
              outputs=[("q", np.int8), ("d", np.uint8), ("ds", np.float32), ("dz", np.uint8)],
              opset=13)
    feeds = {"x": x, "s": scale, "z": zp}
    fn = compiler.compile(_save(tmp_path, m), x, scale, zp)
    got = fn(x, scale, zp)
    want = ort_run(m, feeds)
    for g_, w_ in zip(got, want):
        assert g_.dtype == w_.dtype
        np.testing.assert_array_equal(g_, w_)
    # halves round to even: -2.5 -> -2, -1.5 -> -2, 0.5 -> 0, 1.5 -> 2; saturation at -128
    np.testing.assert_array_equal(got[0][0], [-128, -2, -2, 0, 0, 2])


def test_blocked_dequantize_natively(tmp_path):
    q = np.arange(24, dtype=np.int32).reshape(4, 6).astype(np.uint8)
    scale = np.array([[0.5, 2.0], [1.0, 0.25], [3.0, 1.5], [0.75, 1.0]], np.float32)
    zp = np.array([[1, 2], [3, 4], [5, 6], [7, 8]], np.uint8)
    m = model([helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1,
                                block_size=3)],
              {"q": q}, inits={"s": scale, "z": zp}, opset=21)
    got = compiler.compile(_save(tmp_path, m), q)(q)
    want = (q.astype(np.float32) - np.repeat(zp, 3, axis=1)) * np.repeat(scale, 3, axis=1)
    np.testing.assert_array_equal(got, want)



def test_float8_quantize_dequantize_natively(tmp_path):
    """QuantizeLinear to float8_e4m3fn (per axis, saturating) and back: x / scale rounded
    to the format (round_to_format), against onnxruntime."""
    x = np.array([[0.1, -3.3, 500, -1e4], [1e-3, 7.77, 0.5, -0.0]], np.float32)
    m = model([helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=0),
               helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=0)],
              {"x": x}, inits={"s": np.array([0.5, 2.0], np.float32)}, opset=21)
    m.graph.initializer.append(helper.make_tensor("z", TensorProto.FLOAT8E4M3FN, [2], [0, 0]))
    fn = compiler.compile(_save(tmp_path, m), x)
    got = fn(x)
    np.testing.assert_array_equal(got, ort_run(m, {"x": x})[0])
    assert got[0, 2] == got[0, 3] * -1 == 448 * 0.5  # saturated at e4m3fn's largest, 448

# ---- refusals ----------------------------------------------------------------------------------
def test_per_row_scale_of_qlinearmatmul_is_refused_naming_the_node():
    rng = np.random.default_rng(12)
    inits = {"as": np.full(3, 0.02, np.float32), "az": np.zeros(3, np.uint8),
             "w": rng.integers(-127, 128, (4, 2)).astype(np.int8), "ws": np.float32(0.01),
             "wz": np.int8(0), "ys": np.float32(0.1), "yz": np.uint8(0)}
    m = model([helper.make_node("QLinearMatMul", ["a", "as", "az", "w", "ws", "wz", "ys",
                                                  "yz"], ["y"], name="per_row")],
              {"a": np.zeros((3, 4), np.uint8)}, outputs=[("y", np.uint8)], inits=inits,
              opset=21)
    with pytest.raises(OnnxImportError, match=r"per_row.*one per tensor") as e:
        load_onnx(m)
    assert e.value.unsupported and e.value.unsupported[0][0] == "QLinearMatMul"


@pytest.mark.parametrize("op", ["DequantizeLinear", "QuantizeLinear"])
@pytest.mark.parametrize("axis,n,what", [(1, 4, "axis 1"), (5, 3, "axis 5 is out of range"),
                                         (-3, 2, "axis -3 is out of range")])
def test_bad_per_axis_parameters_name_the_node(op, axis, n, what):
    x = np.zeros((2, 3), np.uint8 if op == "DequantizeLinear" else np.float32)
    m = model([helper.make_node(op, ["x", "s", "z"], ["y"], name="bad_axis", axis=axis)],
              {"x": x}, inits={"s": np.ones(n, np.float32), "z": np.zeros(n, np.uint8)},
              outputs=[("y", np.float32 if op == "DequantizeLinear" else np.uint8)], opset=13)
    with pytest.raises(OnnxImportError, match=rf"bad_axis.*{what}"):
        load_onnx(m)


def test_graph_inputs_stay_widened_at_the_boundary(tmp_path):
    """A uint8 graph input is still read as i32 (what compile() converts at the boundary);
    the dequantize behind it reads it as u8."""
    q = np.array([0, 7, 255], np.uint8)
    m = model([helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"])], {"q": q},
              inits={"s": np.float32(0.5), "z": np.uint8(7)}, opset=13)
    g = load_onnx(m)
    assert g.inputs[0].type.dtype == "i32" and _ops(g) == ["cast", "dequantize"]
    assert g.nodes[0].output.type.dtype == "u8"
    np.testing.assert_array_equal(compiler.compile(_save(tmp_path, m), q)(q),
                                  np.array([-3.5, 0, 124], np.float32))



# ---- the layout fold_quantized gives MatMul/Gemm weights (passes/quantized_layout.py) ------------
def _matmul_graph(w_dtype: str, transpose: bool):
    import ir
    from ir import TensorType

    rng = np.random.default_rng(10)
    g = ir.Graph("m")
    x = g.add_input("x", TensorType((3, 8), "f32"))
    if w_dtype == "i8":
        w = g.add_weight("w", rng.integers(-127, 128, (8, 6)).astype(np.int8))  # [in, out]
        scales = [float(v) for v in rng.random(6) * 0.01 + 0.01]
        wd = g.call("dequantize", w, scale=scales, zero_point=[0], axis=1)
    else:
        wd = g.add_weight("w", rng.standard_normal((8, 6)).astype(np.float32))
    xq = g.call("quantize", x, scale=[0.05], zero_point=[128], dtype="u8")
    xd = g.call("dequantize", xq, scale=[0.05], zero_point=[128])
    y = g.call("linear", xd, g.call("transpose", wd, perm=[1, 0])) if transpose else \
        g.call("matmul", xd, wd)
    g.outputs = [y]
    return g


@pytest.mark.parametrize("transpose", [False, True], ids=["matmul", "gemm"])
def test_dequantized_matmul_weight_takes_linear_layout(transpose):
    import passes
    from backends.reference import run

    g = _matmul_graph("i8", transpose)
    out = passes.optimize(g, 2)
    assert _ops(out) == ["quantize", "qlinear"]
    assert out.nodes[1].inputs[1].type.shape == (6, 8)  # [out, in], the i8 weight transposed
    x = np.random.default_rng(11).standard_normal((3, 8)).astype(np.float32)
    want = run(g, x)[0]  # the float QDQ graph: within float32 rounding of the integer sums
    np.testing.assert_allclose(run(out, x)[0], want, rtol=1e-5, atol=1e-6)


def test_float_matmul_weight_is_left_alone():
    import passes

    out = passes.optimize(_matmul_graph("f32", False), 2)
    assert "matmul" in _ops(out) and "qlinear" not in _ops(out)
