"""ONNX operators added for detection, vision, normalisation and speech models (GridSample,
RoiAlign, DeformConv, NonMaxSuppression, GroupNormalization, RMSNormalization, MaxUnpool,
Col2Im, CenterCropPad, GlobalLpPool, Swish, ThresholdedRelu, Shrink, Compress, Unique, DFT,
STFT, MelWeightMatrix) on random inputs against onnxruntime, and the clear refusals of the
data-dependent ones at run time."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from onnx import helper

import compiler
from backends.reference import run
from compiler import OnnxImportError, load_onnx

from .onnx_util import compare, model, ort_run

N = helper.make_node
_rng = np.random.default_rng(17)
I = ("i", np.int64)  # an int64 output


def r(*shape, scale=1.0):
    return (_rng.standard_normal(shape) * scale).astype(np.float32)


def check(m, feeds: dict, backend="reference", rtol=1e-5, atol=1e-5):
    expected = ort_run(m, feeds)
    g = load_onnx(m, [a.shape for a in feeds.values()])
    if backend == "reference":
        actual = run(g, *feeds.values())
    else:
        actual = compiler.compile(g, *feeds.values(), backend=backend)(*feeds.values())
        actual = list(actual) if isinstance(actual, tuple) else [actual]
    for a, e in zip(actual, expected):
        assert a.shape == e.shape, (a.shape, e.shape)
    compare(actual, expected, rtol, atol, backend)


# ---- GridSample ------------------------------------------------------------------------------
GRID_X = r(2, 3, 5, 6)
GRID = (_rng.uniform(-1.3, 1.3, (2, 4, 7, 2))).astype(np.float32)  # some points outside
GRID_MODES = list(itertools.product(["bilinear", "nearest", "bicubic"],
                                    ["zeros", "border", "reflection"], [0, 1]))


@pytest.mark.parametrize("mode, padding, align", GRID_MODES,
                         ids=[f"{m}-{p}-{a}" for m, p, a in GRID_MODES])
def test_gridsample(mode, padding, align):
    m = model([N("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding,
                 align_corners=align)], {"x": GRID_X, "g": GRID}, opset=16)
    check(m, {"x": GRID_X, "g": GRID}, atol=1e-4)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
def test_gridsample_opset20_names_on_llvm(mode):
    m = model([N("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode="reflection")],
              {"x": GRID_X, "g": GRID}, opset=20)
    check(m, {"x": GRID_X, "g": GRID}, "llvm", atol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("mode, padding", [("linear", "zeros"), ("nearest", "reflection"),
                                           ("linear", "border")])
def test_gridsample_volumetric(mode, padding, backend):
    x = r(2, 3, 4, 5, 6)
    g = _rng.uniform(-1.2, 1.2, (2, 3, 4, 2, 3)).astype(np.float32)
    m = model([N("GridSample", ["x", "g"], ["y"], mode=mode, padding_mode=padding)],
              {"x": x, "g": g}, opset=20)
    check(m, {"x": x, "g": g}, backend, atol=1e-4)


def test_gridsample_one_pixel_axis_with_align_corners():
    x, g = r(1, 2, 1, 4), _rng.uniform(-2, 2, (1, 3, 3, 2)).astype(np.float32)
    m = model([N("GridSample", ["x", "g"], ["y"], padding_mode="reflection",
                 align_corners=1)], {"x": x, "g": g}, opset=16)
    check(m, {"x": x, "g": g})


# ---- DeformConv ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("groups, offset_groups, masked", [(1, 1, False), (2, 2, True),
                                                           (1, 3, True)])
def test_deformconv(groups, offset_groups, masked, backend):
    x, w, bias = r(2, 6, 7, 8), r(4, 6 // groups, 3, 2), r(4)
    attrs = {"strides": [2, 1], "pads": [1, 0, 1, 1], "dilations": [1, 2], "group": groups,
             "offset_group": offset_groups, "kernel_shape": [3, 2]}
    oh, ow = (7 + 2 - 3) // 2 + 1, (8 + 1 - 3) // 1 + 1
    offset = r(2, offset_groups * 2 * 6, oh, ow, scale=1.5)  # some samples fall outside
    mask = _rng.uniform(0, 1, (2, offset_groups * 6, oh, ow)).astype(np.float32)
    feeds = {"x": x, "offset": offset, **({"mask": mask} if masked else {})}
    m = model([N("DeformConv", ["x", "w", "offset", "b", "mask" if masked else ""], ["y"],
                 **attrs)], feeds, inits={"w": w, "b": bias}, opset=19)
    check(m, feeds, backend, rtol=1e-4, atol=1e-4)


# ---- RoiAlign --------------------------------------------------------------------------------
ROI_X = r(2, 3, 10, 12)
ROIS = np.float32([[0.5, 1.0, 7.5, 6.0], [2.0, 0.0, 11.9, 9.9], [-2.0, -1.5, 4.0, 3.0],
                   [8.0, 7.0, 14.0, 12.0], [3.0, 3.0, 3.5, 3.2]])
BATCH = np.int64([0, 1, 1, 0, 1])


@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("mode", ["avg", "max"])
@pytest.mark.parametrize("transform", ["half_pixel", "output_half_pixel"])
def test_roialign(mode, transform, backend):
    feeds = {"x": ROI_X, "rois": ROIS, "b": BATCH}
    m = model([N("RoiAlign", ["x", "rois", "b"], ["y"], mode=mode, output_height=3,
                 output_width=4, sampling_ratio=2, spatial_scale=0.9,
                 coordinate_transformation_mode=transform)], feeds, opset=16)
    check(m, feeds, backend, atol=1e-5)


def test_roialign_adaptive_sampling_is_refused():
    feeds = {"x": ROI_X, "rois": ROIS, "b": BATCH}
    m = model([N("RoiAlign", ["x", "rois", "b"], ["y"], name="roi1")], feeds, opset=16)
    with pytest.raises(OnnxImportError, match=r"RoiAlign.*roi1.*sampling_ratio"):
        load_onnx(m)


# ---- NonMaxSuppression: computed at import time, refused at run time -------------------------
def _boxes(n):
    centre = _rng.uniform(0, 10, (1, n, 2))
    size = _rng.uniform(1, 4, (1, n, 2))
    return np.concatenate([centre - size / 2, centre + size / 2], -1).astype(np.float32)


@pytest.mark.parametrize("center", [0, 1])
def test_nonmaxsuppression_constant_inputs(center):
    boxes, scores = _boxes(30), _rng.uniform(0, 1, (1, 3, 30)).astype(np.float32)
    inits = {"boxes": boxes, "scores": scores, "k": np.int64([5]),
             "iou": np.float32([0.3]), "s": np.float32([0.2])}
    m = model([N("NonMaxSuppression", ["boxes", "scores", "k", "iou", "s"], ["y"],
                 center_point_box=center), N("Identity", ["y"], ["z"])], {}, (("z", np.int64),),
              inits, opset=11)
    expected = ort_run(m, {})
    actual = run(load_onnx(m))
    np.testing.assert_array_equal(actual[0], expected[0])
    assert len(expected[0]) > 3


def test_nonmaxsuppression_at_run_time_is_refused_naming_the_node():
    boxes = _boxes(4)
    m = model([N("NonMaxSuppression", ["boxes", "scores"], ["y"], name="nms1")],
              {"boxes": boxes, "scores": r(1, 1, 4)}, (("y", np.int64),), opset=11)
    with pytest.raises(OnnxImportError, match=r"NonMaxSuppression.*nms1.*run time"):
        load_onnx(m)


def test_nonzero_at_run_time_is_refused_naming_the_node():
    m = model([N("NonZero", ["x"], ["y"], name="nz1")], {"x": r(3, 4)}, (("y", np.int64),),
              opset=13)
    with pytest.raises(OnnxImportError, match=r"NonZero.*nz1.*run time"):
        load_onnx(m)


# ---- normalisation and pooling ---------------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("opset", [18, 21])
def test_groupnormalization(opset, backend):
    x = r(2, 6, 4, 5, scale=3.0) + 1.5
    params = 3 if opset == 18 else 6
    m = model([N("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=3, epsilon=1e-3)],
              {"x": x}, inits={"s": r(params), "b": r(params)}, opset=opset)
    check(m, {"x": x}, backend, atol=1e-4)


def test_groupnormalization_run_time_scale():
    x, s, bias = r(2, 4, 3, 3), r(2), r(2)
    m = model([N("GroupNormalization", ["x", "s", "b"], ["y"], num_groups=2)],
              {"x": x, "s": s, "b": bias}, opset=18)
    check(m, {"x": x, "s": s, "b": bias}, atol=1e-4)


@pytest.mark.parametrize("op, attrs, opset", [
    ("Swish", {"alpha": 0.7}, 24), ("ThresholdedRelu", {"alpha": 0.3}, 22),
    ("Shrink", {"lambd": 0.4, "bias": 0.1}, 9)])
def test_activations(op, attrs, opset):
    x = r(3, 4, 5)
    check(model([N(op, ["x"], ["y"], **attrs)], {"x": x}, opset=opset), {"x": x})


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_rmsnormalization(backend):
    x, s = r(2, 3, 8), r(3, 8)
    m = model([N("RMSNormalization", ["x", "s"], ["y"], axis=-2, epsilon=1e-4)], {"x": x},
              inits={"s": s}, opset=23)
    check(m, {"x": x}, backend, rtol=1e-4)


@pytest.mark.parametrize("p", [2, 3])
def test_globallppool(p):
    x = r(2, 3, 4, 5)
    check(model([N("GlobalLpPool", ["x"], ["y"], p=p)], {"x": x}), {"x": x}, rtol=1e-4)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_maxunpool_of_maxpool_indices(backend):
    """MaxPool's values and indices (from onnxruntime: overlapping windows, so some index
    repeats), unpooled into the pooled input's shape."""
    x = r(2, 3, 6, 7)
    attrs = {"kernel_shape": [3, 3], "strides": [2, 2]}
    pooled, idx = ort_run(model([N("MaxPool", ["x"], ["p", "i"], **attrs)], {"x": x},
                                ("p", I), opset=11), {"x": x})
    assert len(np.unique(idx)) < idx.size
    feeds = {"p": pooled, "i": idx}
    m = model([N("MaxUnpool", ["p", "i", "s"], ["y"], **attrs)], feeds,
              inits={"s": np.int64(x.shape)}, opset=11)
    check(m, feeds, backend)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_col2im(backend):
    x = r(2, 3 * 2 * 3, 9)
    inits = {"shape": np.int64([5, 8]), "block": np.int64([2, 3])}
    m = model([N("Col2Im", ["x", "shape", "block"], ["y"], strides=[2, 2], pads=[1, 0, 0, 1],
                 dilations=[1, 2])], {"x": x}, inits=inits, opset=18)
    check(m, {"x": x}, backend)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_col2im_3d(backend):
    x = r(1, 2 * 2 * 2 * 3, 2 * 3 * 3)
    inits = {"shape": np.int64([3, 4, 5]), "block": np.int64([2, 2, 3])}
    m = model([N("Col2Im", ["x", "shape", "block"], ["y"], strides=[1, 1, 2],
                 pads=[0, 0, 1, 0, 0, 1])], {"x": x}, inits=inits, opset=18)
    check(m, {"x": x}, backend)


def test_centercroppad():
    x = r(3, 8, 5)
    m = model([N("CenterCropPad", ["x", "s"], ["y"], axes=[1, 2])], {"x": x},
              inits={"s": np.int64([5, 8])}, opset=18)
    check(m, {"x": x})


# ---- TensorScatter (a KV-cache update) -------------------------------------------------------
@pytest.mark.parametrize("backend", ["reference", "llvm"])
@pytest.mark.parametrize("mode", ["linear", "circular"])
def test_tensorscatter(mode, backend):
    past, update = r(3, 2, 8, 4), r(3, 2, 3, 4)
    where = np.int64([0, 5, 7 if mode == "circular" else 2])
    feeds = {"past": past, "update": update, "at": where}
    m = model([N("TensorScatter", ["past", "update", "at"], ["y"], mode=mode)], feeds,
              opset=24)
    check(m, feeds, backend)


# ---- Compress, Unique ------------------------------------------------------------------------
def test_compress_constant_condition_run_time_input():
    x = r(4, 5)
    m = model([N("Compress", ["x", "c"], ["y"], axis=1)], {"x": x},
              inits={"c": np.bool_([1, 0, 1, 1])}, opset=11)
    g = load_onnx(m)
    assert [n.op for n in g.nodes] == ["gather"]
    check(m, {"x": x})


def test_compress_run_time_condition_is_refused():
    m = model([N("Compress", ["x", "c"], ["y"], name="keep")], {"x": r(4), "c": np.bool_(
        [1, 0, 1, 1])}, opset=11)
    with pytest.raises(OnnxImportError, match=r"Compress.*keep.*run time"):
        load_onnx(m)


@pytest.mark.parametrize("ordered, axis", [(1, None), (0, None), (1, 0), (0, 1)])
def test_unique_constant(ordered, axis):
    x = _rng.integers(0, 3, (5, 4)).astype(np.float32)
    attrs = {} if axis is None else {"axis": axis}
    m = model([N("Unique", ["x"], ["y", "i", "inv", "c"], sorted=ordered, **attrs)], {},
              ("y", I, ("inv", np.int64), ("c", np.int64)), {"x": x}, opset=11)
    for a, e in zip(run(load_onnx(m)), ort_run(m, {})):
        np.testing.assert_array_equal(a, e)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_det_at_run_time(k):
    x = r(2, 3, k, k)
    check(model([N("Det", ["x"], ["y"])], {"x": x}, opset=11), {"x": x}, rtol=1e-4)


def test_det_of_large_run_time_matrices_is_refused():
    m = model([N("Det", ["x"], ["y"], name="det1")], {"x": r(4, 4)}, opset=11)
    with pytest.raises(OnnxImportError, match=r"Det.*det1.*4x4"):
        load_onnx(m)


def test_bitcast_folds_a_constant():
    x = r(2, 3)
    m = model([N("BitCast", ["x"], ["y"], to=6)], {}, (("y", np.int32),), {"x": x}, opset=21)
    np.testing.assert_array_equal(run(load_onnx(m))[0], x.view(np.int32))


# ---- DFT, STFT, MelWeightMatrix --------------------------------------------------------------
@pytest.mark.parametrize("inverse, onesided, length", [(0, 0, None), (1, 0, None),
                                                       (0, 1, None), (0, 0, 12), (0, 1, 6),
                                                       (1, 1, None)])
def test_dft(inverse, onesided, length):
    complex_in = inverse and not onesided
    x = r(2, 9, 3, 2 if complex_in or (inverse and onesided) else 1)
    inputs = ["x", "n" if length else ""]
    inits = {"n": np.int64(length)} if length else {}
    m = model([N("DFT", inputs, ["y"], axis=1, inverse=inverse, onesided=onesided)],
              {"x": x}, inits=inits, opset=17)
    check(m, {"x": x}, rtol=1e-4, atol=1e-4)


def test_dft_opset20_axis_input_on_llvm():
    x = r(2, 3, 16, 2)
    m = model([N("DFT", ["x", "", "a"], ["y"])], {"x": x}, inits={"a": np.int64(2)},
              opset=20)
    check(m, {"x": x}, "llvm", rtol=1e-4, atol=1e-4)


def test_stft_with_window():
    x = r(2, 64, 1)
    window = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(16) / 16)).astype(np.float32)
    m = model([N("STFT", ["x", "step", "w"], ["y"])], {"x": x},
              inits={"step": np.int64(6), "w": window}, opset=17)
    check(m, {"x": x}, rtol=1e-4, atol=1e-4)


def test_melweightmatrix():
    inits = {"bins": np.int64(8), "n": np.int64(64), "rate": np.int64(8000),
             "lo": np.float32(20), "hi": np.float32(3800)}
    m = model([N("MelWeightMatrix", list(inits), ["y"])], {}, inits=inits, opset=17)
    check(m, {})
