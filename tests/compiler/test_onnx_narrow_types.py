"""Element types the IR lacks (float16, bfloat16, 8- and 16-bit integers): computed in a
wider type inside, converted at the boundary so the model takes and returns the file's
types. Checked against onnxruntime on the same file and against numpy in float32."""

import numpy as np
import pytest

import compiler

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402


def save(tmp_path, nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "narrow", inputs, outputs, list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    return str(path)


def run_ort(path, **feeds):
    return ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, feeds)


def test_float16_model_takes_and_returns_float16(tmp_path):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((6, 4)).astype(np.float16)
    b = rng.standard_normal(4).astype(np.float16)
    path = save(tmp_path, [helper.make_node("Gemm", ["x", "w", "b"], ["h"]),
                           helper.make_node("Sigmoid", ["h"], ["y"])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT16, [3, 6])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT16, [3, 4])],
                [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    x = rng.standard_normal((3, 6)).astype(np.float16)
    fn = compiler.compile(path, x)
    got = fn(x)
    assert got.dtype == np.float16 and fn.graph.inputs[0].type.dtype == "f32"
    # float32 inside, rounded once at the end: numpy's float32 result rounded to float16
    h = x.astype(np.float32) @ w.astype(np.float32) + b.astype(np.float32)
    want32 = (1 / (1 + np.exp(-h))).astype(np.float16)
    np.testing.assert_allclose(got.astype(np.float32), want32.astype(np.float32), atol=1e-3)
    # onnxruntime computes in float16: within float16's rounding of the same numbers
    np.testing.assert_allclose(got.astype(np.float32), run_ort(path, x=x)[0].astype(np.float32),
                               atol=4e-3)


def test_bfloat16_weights_and_casts_compute_in_float32(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    w = np.random.default_rng(1).standard_normal((4, 4)).astype(ml_dtypes.bfloat16)
    path = save(tmp_path, [helper.make_node("Cast", ["w"], ["wf"], to=TensorProto.FLOAT),
                           helper.make_node("Cast", ["x"], ["xb"], to=TensorProto.BFLOAT16),
                           helper.make_node("Cast", ["xb"], ["xf"], to=TensorProto.FLOAT),
                           helper.make_node("MatMul", ["xf", "wf"], ["y"])],
                [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])],
                [numpy_helper.from_array(w, "w")])
    x = np.random.default_rng(2).standard_normal((2, 4)).astype(np.float32)
    got = compiler.compile(path, x)(x)
    # bfloat16 weights widened exactly; the cast of x through bfloat16 rounds it to 8
    # significant bits there, as onnxruntime does
    xb = x.astype(ml_dtypes.bfloat16).astype(np.float32)
    np.testing.assert_allclose(got, xb @ w.astype(np.float32), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, run_ort(path, x=x)[0], rtol=1e-5, atol=1e-6)


def test_uint8_image_and_int8_mask_through_where(tmp_path):
    scale = numpy_helper.from_array(np.array(1 / 255, np.float32), "scale")
    path = save(tmp_path, [helper.make_node("Cast", ["img"], ["f"], to=TensorProto.FLOAT),
                           helper.make_node("Mul", ["f", "scale"], ["s"]),
                           helper.make_node("Cast", ["mask"], ["m"], to=TensorProto.BOOL),
                           helper.make_node("Neg", ["s"], ["n"]),
                           helper.make_node("Where", ["m", "s", "n"], ["y"]),
                           helper.make_node("Cast", ["img"], ["back"], to=TensorProto.UINT8)],
                [helper.make_tensor_value_info("img", TensorProto.UINT8, [2, 5]),
                 helper.make_tensor_value_info("mask", TensorProto.INT8, [2, 5])],
                [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5]),
                 helper.make_tensor_value_info("back", TensorProto.UINT8, [2, 5])], [scale])
    rng = np.random.default_rng(3)
    img = rng.integers(0, 256, (2, 5)).astype(np.uint8)
    mask = rng.integers(-1, 2, (2, 5)).astype(np.int8)
    y, back = compiler.compile(path, img, mask)(img, mask)
    want_y, want_back = run_ort(path, img=img, mask=mask)
    np.testing.assert_allclose(y, want_y, rtol=1e-6)
    assert back.dtype == np.uint8 and np.array_equal(back, want_back)
    np.testing.assert_allclose(y, np.where(mask != 0, 1, -1) * (img / 255.0), rtol=1e-6)


# ---- float8, float4, int4, int2 (ir/ops/narrow.py) -------------------------------------------
# Hand-derived values first: each format's grid worked out from its bit fields, then
# ml_dtypes (an independent implementation of the same formats) on dense inputs.
import ir  # noqa: E402
from backends.reference import run  # noqa: E402
from ir.ops.narrow import FORMATS, decode, encode, round_to_format  # noqa: E402

ml_dtypes = pytest.importorskip("ml_dtypes")
NAN, INF = float("nan"), float("inf")


def _rounded(x, fmt, **attrs):
    return round_to_format(np.asarray(x, np.float32), fmt, **attrs).tolist()


def _same(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert np.array_equal(got, want, equal_nan=True), (got, want)
    assert np.array_equal(np.signbit(got[~np.isnan(want)]), np.signbit(want[~np.isnan(want)]))


def test_e4m3fn_by_hand():
    # largest 448 = 1.75 * 2**8 (1.875 * 2**8 is the NaN code); step 32 there, so 464 is a
    # tie that goes to 448 (fraction 110, even), and 465 rounds to 480: past the largest
    x = [448, 464, 465, 1e6, INF, -INF, NAN, -1e-7, 2**-9, 2**-10, 3 * 2**-10, 0.3, -0.0]
    _same(_rounded(x, "float8_e4m3fn"),
          [448, 448, 448, 448, 448, -448, NAN, -0.0, 2**-9, 0.0, 2**-8, 0.3125, -0.0])
    _same(_rounded(x, "float8_e4m3fn", saturate=False),
          [448, 448, NAN, NAN, NAN, NAN, NAN, -0.0, 2**-9, 0.0, 2**-8, 0.3125, -0.0])
    # (2**-9 is the smallest subnormal; 2**-10 a tie with 0, which is even; 3 * 2**-10 a tie
    # between 2**-9 (fraction 001) and 2**-8 (010); 0.3 between 0.28125 and 0.3125)


def test_e5m2_fnuz_and_float4_by_hand():
    # e5m2 has infinities: 61440 is the tie between 57344 (fraction 11) and 65536 (the next
    # binade, past the largest): inf without saturation
    _same(_rounded([57344, 61439, 61440, INF, -0.0], "float8_e5m2", saturate=False),
          [57344, 57344, INF, INF, -0.0])
    _same(_rounded([61440, INF], "float8_e5m2"), [57344, 57344])
    # fnuz: no -0 (its code is the NaN); e4m3fnuz's largest is 240 = 1.875 * 2**7
    _same(_rounded([-0.0, -1e-7, 250, 248, 247, NAN], "float8_e4m3fnuz"),
          [0.0, 0.0, 240, 240, 240, NAN])
    _same(_rounded([248, INF, -1e-9], "float8_e4m3fnuz", saturate=False), [NAN, NAN, 0.0])
    _same(_rounded([2**-17, 2**-18, 3 * 2**-18], "float8_e5m2fnuz"), [2**-17, 0.0, 2**-16])
    # float4 e2m1: 0, 0.5, 1, 1.5, 2, 3, 4, 6; always saturates; NaN becomes -0
    _same(_rounded([0.25, 0.75, 1.25, 2.5, 5, 7, -INF, NAN, -0.1], "float4_e2m1fn",
                   saturate=False), [0.0, 1, 1, 2, 4, 6, -6, -0.0, -0.0])


def test_e8m0_by_hand():
    x = [0.0, 0.124, 0.125, 1.1, 1.5, 1.49, 3e38, INF, NAN, -2.0]
    _same(_rounded(x, "float8_e8m0fnu"),
          [2.0**-127, 0.125, 0.125, 2, 2, 2, 2.0**127, 2.0**127, NAN, 2.0**-127])
    _same(_rounded(x, "float8_e8m0fnu", round_mode="down"),
          [2.0**-127, 0.0625, 0.125, 1, 1, 1, 2.0**127, 2.0**127, NAN, 2.0**-127])
    _same(_rounded(x, "float8_e8m0fnu", round_mode="nearest", saturate=False),
          [NAN, 0.125, 0.125, 1, 2, 1, NAN, NAN, NAN, NAN])


def test_int4_int2_by_hand():
    _same(_rounded([-9, -8.9, 7.9, 8, NAN, INF, -0.5], "int4"), [0, -8, 7, 0, 0, 0, 0.0])
    _same(_rounded([-1, 15.9, 16], "uint4"), [0, 15, 0])
    wrapped = round_to_format(np.array([9, 200, -9, 2**31 - 1], np.int32), "int4")
    assert wrapped.dtype == np.int32 and wrapped.tolist() == [-7, -8, 7, -1]
    assert round_to_format(np.array([5, -3, 2], np.int64), "int2").tolist() == [1, 1, -2]
    assert round_to_format(np.array([5, -3, 2], np.int64), "uint2").tolist() == [1, 1, 2]


@pytest.mark.parametrize("fmt", [f for f in FORMATS if FORMATS[f].kind == "float"])
@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_float_formats_match_ml_dtypes_on_every_float16(fmt, backend):
    """Every float16 value (all binades, subnormals, ties at every precision below 11 bits)
    and random float32s, without saturation (what ml_dtypes' conversion does), sign of
    zero included; float32 and float64 operands."""
    every = np.arange(2**16, dtype=np.uint16).view(np.float16).astype(np.float32)
    rng = np.random.default_rng(5)
    x = np.concatenate([every, (rng.standard_normal(4000) * 10.0 ** rng.integers(-9, 7, 4000))
                        .astype(np.float32)])
    with np.errstate(invalid="ignore"):  # (numpy's warning for NaN through ml_dtypes)
        want = x.astype(getattr(ml_dtypes, fmt)).astype(np.float32)
    for dt in (np.float32, np.float64):
        g = ir.Graph()
        v = g.add_input("x", ir.TensorType(x.shape, "f32" if dt == np.float32 else "f64"))
        g.outputs = [g.call("round_to_format", v, format=fmt, saturate=False)]
        with np.errstate(invalid="ignore"):
            xs = x.astype(dt)
        got = run(g, xs)[0] if backend == "reference" else \
            compiler.compile(g, xs, backend="llvm")(xs)
        _same(got.astype(np.float32), want)


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_codes_decode_and_encode_as_ml_dtypes_stores_them(fmt):
    dt = np.dtype(getattr(ml_dtypes, fmt))
    codes = np.arange(1 << FORMATS[fmt].bits, dtype=np.uint8)
    wide = np.int32 if FORMATS[fmt].kind == "int" else np.float32
    values = decode(codes, fmt)
    _same(values, codes.view(dt).astype(wide))
    _same(encode(values, fmt).view(dt).astype(wide), values)  # every value finds its code


def _save(tmp_path, nodes, inputs, outputs, opset=21):
    graph = helper.make_graph(nodes, "narrow", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)],
                              ir_version=10)
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    return str(path)


def test_float8_model_end_to_end(tmp_path):
    """float8 in, float8 out: the input decoded at the boundary, arithmetic in float32, a
    saturating Cast, the output encoded back; on the native backend."""
    vi = helper.make_tensor_value_info
    path = _save(tmp_path, [helper.make_node("Cast", ["x"], ["f"], to=TensorProto.FLOAT),
                            helper.make_node("Mul", ["f", "f"], ["sq"]),
                            helper.make_node("Cast", ["sq"], ["y"], to=TensorProto.FLOAT8E4M3FN),
                            helper.make_node("Cast", ["sq"], ["z"], to=TensorProto.FLOAT8E5M2,
                                             saturate=0)],
                 [vi("x", TensorProto.FLOAT8E4M3FN, [8])],
                 [vi("y", TensorProto.FLOAT8E4M3FN, [8]), vi("z", TensorProto.FLOAT8E5M2, [8])])
    e4m3 = ml_dtypes.float8_e4m3fn
    x = np.array([0.5, -3, 22, 448, -0.0, 2**-9, 1.125, np.nan], e4m3)
    fn = compiler.compile(path, x)
    y, z = fn(x)
    assert y.dtype == e4m3 and z.dtype == ml_dtypes.float8_e5m2
    sq = x.astype(np.float32) ** 2  # 0.25, 9, 484, 200704, 0, 2**-18, 1.265625, nan
    _same(y.astype(np.float32), [0.25, 9, 448, 448, 0, 0, 1.25, NAN])
    _same(z.astype(np.float32), [0.25, 8, 512, INF, 0, 0, 1.25, NAN])  # 2**-18: below half
    # of the smallest e5m2 subnormal, 2**-16
    _same(y.astype(np.float32), np.clip(sq, -448, 448).astype(e4m3).astype(np.float32))


def test_int4_and_castlike_to_a_float8_input(tmp_path):
    vi = helper.make_tensor_value_info
    path = _save(tmp_path, [helper.make_node("Cast", ["a"], ["q"], to=TensorProto.INT4),
                            helper.make_node("CastLike", ["b", "like"], ["c"])],
                 [vi("a", TensorProto.INT32, [6]), vi("b", TensorProto.FLOAT, [4]),
                  vi("like", TensorProto.FLOAT8E5M2FNUZ, [1])],
                 [vi("q", TensorProto.INT4, [6]), vi("c", TensorProto.FLOAT8E5M2FNUZ, [4])])
    a = np.array([7, 8, -9, 100, -1, 0], np.int32)
    b = np.array([1e6, -0.0, 0.3, -np.inf], np.float32)
    like = np.zeros(1, ml_dtypes.float8_e5m2fnuz)
    q, c = compiler.compile(path, a, b, like)(a, b, like)
    assert q.dtype == ml_dtypes.int4 and q.astype(np.int32).tolist() == [7, -8, 7, 4, -1, 0]
    assert c.dtype == ml_dtypes.float8_e5m2fnuz
    _same(c.astype(np.float32), [57344, 0.0, 0.3125, -57344])  # saturated; no -0 in fnuz


def test_float8_and_packed_int4_initialisers_are_read_by_their_codes(tmp_path):
    vi = helper.make_tensor_value_info
    w8 = np.array([0.5, -448, 2**-9, np.nan, -0.0], ml_dtypes.float8_e4m3fn)
    q4 = np.array([-8, 7, -1, 3, 0], ml_dtypes.int4)  # two to a byte in the file
    graph = helper.make_graph(
        [helper.make_node("Cast", ["w8"], ["wf"], to=TensorProto.FLOAT),
         helper.make_node("Add", ["x", "wf"], ["y"]),
         helper.make_node("Cast", ["q4"], ["q"], to=TensorProto.INT32)], "inits",
        [vi("x", TensorProto.FLOAT, [5])],
        [vi("y", TensorProto.FLOAT, [5]), vi("q", TensorProto.INT32, [5])],
        [numpy_helper.from_array(w8, "w8"), numpy_helper.from_array(q4, "q4")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)], ir_version=10)
    assert len(model.graph.initializer[1].raw_data) == 3  # packed: 5 nibbles in 3 bytes
    x = np.ones(5, np.float32)
    y, q = _compiled(tmp_path, model, x)
    _same(y, [1.5, -447, 1 + 2**-9, NAN, 1.0])
    assert q.dtype == np.int32 and q.tolist() == [-8, 7, -1, 3, 0]


def _compiled(tmp_path, model, *xs):
    path = tmp_path / "model.onnx"
    onnx.save_model(model, str(path))
    return compiler.compile(str(path), *xs)(*xs)
