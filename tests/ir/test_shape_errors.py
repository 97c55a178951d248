"""Shape inference rejects impossible operands with ir.ShapeError naming the node."""

from __future__ import annotations

import numpy as np
import pytest

import ir


def T(*shape, dtype="f32"):
    return ir.TensorType(shape, dtype)


# name: (op, operand types (inputs), attrs, words the message must hold)
ERRORS = {
    "conv_channels": ("conv2d", [T(1, 3, 8, 8), T(4, 2, 3, 3)], {}, "3 channels"),
    "conv_groups": ("conv2d", [T(1, 4, 8, 8), T(6, 2, 3, 3)], {"groups": 3}, "groups=3"),
    "conv_rank": ("conv2d", [T(3, 8, 8), T(4, 3, 3, 3)], {}, "[N,C,H,W]"),
    "conv_bias": ("conv2d", [T(1, 3, 8, 8), T(4, 3, 3, 3), T(3)], {}, "bias must be [4]"),
    "conv_kernel_too_big": ("conv2d", [T(1, 3, 2, 2), T(4, 3, 3, 3)], {}, "larger than"),
    "conv_dtype_mix": ("conv2d", [T(1, 3, 8, 8), T(4, 3, 3, 3, dtype="f64")], {}, "one dtype"),
    "linear_in_features": ("linear", [T(2, 5), T(3, 4)], {}, "5 features"),
    "linear_bias": ("linear", [T(2, 4), T(3, 4), T(4)], {}, "bias must be [3]"),
    "linear_weight_rank": ("linear", [T(2, 4), T(4)], {}, "[out_features, in_features]"),
    "add_broadcast": ("add", [T(2, 3), T(4)], {}, "do not broadcast"),
    "mul_dtypes": ("mul", [T(2, 3), T(2, 3, dtype="i32")], {}, "one dtype"),
    "add_bool": ("add", [T(2, dtype="bool"), T(2, dtype="bool")], {}, "bool"),
    "div_ints": ("div", [T(2, dtype="i32"), T(2, dtype="i32")], {}, "floating-point"),
    "relu_int": ("relu", [T(2, dtype="i64")], {}, "floating-point"),
    "reshape_size": ("reshape", [T(2, 3)], {"shape": (4, 2)}, "cannot reshape"),
    "reshape_infer": ("reshape", [T(2, 3)], {"shape": (4, -1)}, "cannot reshape"),
    "reshape_two_unknown": ("reshape", [T(2, 3)], {"shape": (-1, -1)}, "at most one -1"),
    "transpose_perm": ("transpose", [T(2, 3, 4)], {"perm": (0, 2)}, "not a permutation"),
    "transpose_repeat": ("transpose", [T(2, 3)], {"perm": (1, 1)}, "not a permutation"),
    "flatten_axis": ("flatten", [T(2, 3)], {"axis": 3}, "out of range"),
    "flatten_negative_axis": ("flatten", [T(2, 3)], {"axis": -3}, "out of range"),
    "matmul_inner": ("matmul", [T(2, 3), T(4, 5)], {}, "inner dimensions"),
    "matmul_batch": ("matmul", [T(2, 3, 4), T(3, 4, 5)], {}, "batch dimensions"),
    "concat_shapes": ("concat", [T(2, 3), T(2, 4)], {"axis": 0}, "cannot concatenate"),
    "split_sizes": ("split", [T(6, 2)], {"sizes": (2, 2)}, "do not add up"),
    "slice_lengths": ("slice", [T(4, 4)], {"starts": (0, 1), "ends": (2,)}, "equal lengths"),
    "slice_step0": ("slice", [T(4)], {"starts": (0,), "ends": (2,), "steps": (0,)}, "step"),
    "pad_count": ("pad", [T(2, 3)], {"pads": (1, 1)}, "needs 4 entries"),
    "pad_crop": ("pad", [T(2, 3)], {"pads": (0, -4, 0, 0)}, "below zero"),
    "pad_reflect": ("pad", [T(2, 3)], {"pads": (0, 3, 0, 0), "mode": "reflect"}, "reflect"),
    "pad_reflect_cropped": ("pad", [T(2, 4)], {"pads": (0, -2, 0, 2), "mode": "reflect"},
                            "after cropping"),
    "pad_edge_empty": ("pad", [T(2, 4)], {"pads": (0, -4, 0, 1), "mode": "edge"}, "empty axis"),
    "reduce_axis": ("reduce_sum", [T(2, 3)], {"axes": (2,)}, "out of range"),
    "reduce_repeat": ("reduce_mean", [T(2, 3)], {"axes": (1, -1)}, "repeated axis"),
    "softmax_axis": ("softmax", [T(2, 3)], {"axis": 2}, "out of range"),
    "gather_float_index": ("gather", [T(5, 2), T(3)], {}, "integer"),
    "batch_norm_channels": ("batch_norm", [T(2, 3, 4), T(4), T(3), T(3), T(3)], {},
                            "weight must be [3]"),
    "layer_norm_scale": ("layer_norm", [T(2, 3, 4), T(3)], {}, "must be [4]"),
    "pool_rank": ("max_pool2d", [T(3, 8, 8)], {"kernel": (2, 2)}, "[N,C,H,W]"),
    "pool_big_pad": ("avg_pool2d", [T(1, 1, 8, 8)], {"kernel": (2, 2), "pad": (2, 0, 0, 0)},
                     "at most half"),
    "global_pool_rank": ("global_avg_pool", [T(2, 3)], {}, "rank >= 3"),
    "cross_entropy_target": ("cross_entropy", [T(4, 5), T(5, dtype="i64")], {}, "[4]"),
    "cross_entropy_probs": ("cross_entropy", [T(4, 5), T(4, 4)], {}, "match the logits"),
    "mse_shapes": ("mse_loss", [T(4, 5), T(4, 1)], {}, "one shape"),
    "cast_nothing": ("cast", [T(2)], {"dtype": "f32"}, None),  # valid: control case
}


@pytest.mark.parametrize("name", ERRORS)
def test_shape_error_names_the_node(name):
    op, types, attrs, words = ERRORS[name]
    g = ir.Graph()
    args = [g.add_input(f"a{i}", t) for i, t in enumerate(types)]
    if words is None:
        g.call(op, *args, name="bad", **attrs)
        return
    with pytest.raises(ir.ShapeError) as info:
        g.call(op, *args, name="bad", **attrs)
    msg = str(info.value)
    assert msg.startswith(f"node %bad ({op}): "), msg
    assert words in msg, msg
    assert g.nodes == [] and all(not v.uses for v in args)  # nothing half-built stays behind


def test_unnamed_node_is_named_after_its_operator():
    g = ir.Graph()
    x = g.add_input("x", T(1, 3, 8, 8))
    w = g.add_weight("w", np.zeros((4, 2, 3, 3), np.float32))
    with pytest.raises(ir.ShapeError, match=r"^node %conv2d \(conv2d\): "):
        g.call("conv2d", x, w)


def test_weights_carry_their_types_into_inference():
    g = ir.Graph()
    x = g.add_input("x", T(2, 5))
    w = g.add_weight("fc.weight", np.zeros((3, 4), np.float32))
    with pytest.raises(ir.ShapeError, match=r"node %fc \(linear\): input has 5 features"):
        g.call("linear", x, w, name="fc")


def test_attribute_errors_are_not_shape_errors():
    g = ir.Graph()
    x = g.add_input("x", T(1, 3, 8, 8))
    with pytest.raises(ir.InvalidAttributeError, match=r"node %p \(max_pool2d\): missing required"):
        g.call("max_pool2d", x, name="p")
    with pytest.raises(ir.InvalidAttributeError, match="takes 1 inputs, got 2"):
        g.call("relu", x, x, name="r")
    with pytest.raises(ir.UnknownOpError, match="frobnicate"):
        g.call("frobnicate", x)


def test_runtime_index_errors_name_the_node():
    """Out-of-range indices are data, not types: the interpreter reports them, naming the node."""
    from backends.reference import run

    g = ir.Graph()
    table = g.add_weight("table", np.zeros((4, 2), np.float32))
    idx = g.add_input("idx", T(3, dtype="i64"))
    g.outputs = [g.call("gather", table, idx, name="emb")]
    with pytest.raises(ir.ShapeError, match=r"node %emb \(gather\): gather index out of range"):
        run(g, np.array([0, 4, 1]))
    logits = ir.Graph()
    x = logits.add_input("x", T(2, 3))
    t = logits.add_input("t", T(2, dtype="i64"))
    logits.outputs = [logits.call("cross_entropy", x, t, name="ce")]
    with pytest.raises(ir.ShapeError, match=r"node %ce \(cross_entropy\): class index"):
        run(logits, np.zeros((2, 3), np.float32), np.array([0, 3]))
