"""Numbers: NaN and Inf propagate through every LLVM kernel in strict mode exactly where the
reference interpreter (numpy) puts them; softmax and log_softmax stay finite on huge inputs;
results are bitwise the same on every call and every compilation for one thread count."""

from __future__ import annotations

import math
import warnings
from collections import defaultdict

import numpy as np
import pytest

from backends import llvm, reference
from ir import Graph, TensorType
from tests.backends.cases import CASES
from tests.backends.helpers import op_graph

NAN, INF = math.nan, math.inf
# the first two cases of every operator the backend lowers (every registered one)
_BY_OP: dict[str, list] = defaultdict(list)
for _c in CASES:
    if len(_BY_OP[_c.op]) < 2:
        _BY_OP[_c.op].append(_c)
SPECIALS = {"nan": [NAN], "inf": [INF], "-inf": [-INF], "mixed": [NAN, INF, -INF]}


def _inject(a: np.ndarray, kind: str, rng) -> np.ndarray:
    """A copy of `a` with about one element in seven replaced by special values."""
    a = a.copy()
    if a.dtype.kind == "f" and a.size:
        at = rng.choice(a.size, size=max(1, a.size // 7), replace=False)
        a.flat[at] = rng.choice(SPECIALS[kind], size=len(at))
    return a


def assert_same_specials(actual, expected, rtol=1e-4, atol=1e-5, what=""):
    """NaN exactly where expected, infinities equal, finite values close."""
    for i, (a, b) in enumerate(zip(actual, expected)):
        assert a.shape == b.shape and a.dtype == b.dtype, (what, i)
        if b.dtype.kind == "f":
            np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=f"{what} {i}: NaN")
            np.testing.assert_array_equal(np.isinf(a) * np.sign(a), np.isinf(b) * np.sign(b),
                                          err_msg=f"{what} {i}: Inf")
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, equal_nan=True,
                                   err_msg=f"{what} {i}")


def _as_list(out):
    return list(out) if isinstance(out, tuple) else [out]


@pytest.mark.parametrize("op", sorted(_BY_OP))
def test_specials_propagate_like_the_reference(op):
    rng = np.random.default_rng(7)
    for case in _BY_OP[op]:
        for kind in SPECIALS:
            args = {k: _inject(a, kind, rng) for k, a in case.args.items()}
            g = op_graph(case.op, args, case.weights, **case.attrs)
            model = llvm.compile_graph(g, num_threads=1)
            assert model.fp_mode == "strict"
            inputs = [a for k, a in args.items() if k not in case.weights]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                want = reference.run(g, *inputs)
            assert_same_specials(_as_list(model(*inputs)), want, max(case.rtol, 1e-4),
                                 max(case.atol, 1e-5), f"{case.id} with {kind}")


def _run_both(op: str, args: dict, weights=(), **attrs):
    """Run one operator on both backends; check they agree on specials; the LLVM outputs."""
    g = op_graph(op, args, weights, **attrs)
    inputs = [a for k, a in args.items() if k not in weights]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        want = reference.run(g, *inputs)
    got = _as_list(llvm.compile_graph(g, num_threads=1)(*inputs))
    assert_same_specials(got, want)
    return got


def test_ieee_cases_by_hand():
    x = np.array([NAN, INF, -INF, -0.0, 2.0, -3.0, 0.5] * 3, np.float32)  # 21: a remainder
    relu, = _run_both("relu", {"x": x})
    np.testing.assert_array_equal(relu, np.maximum(x, 0))  # relu(NaN) is NaN, as numpy's
    # softmax: a row holding +inf is all NaN (inf - inf); -inf entries are 0; log gives -inf
    rows = np.array([[1.0, INF, 2.0, 3.0], [1.0, -INF, 2.0, 3.0], [NAN, 0, 0, 0],
                     [-INF, -INF, -INF, -INF]], np.float32)
    sm, = _run_both("softmax", {"x": rows})
    assert np.isnan(sm[0]).all() and sm[1, 1] == 0 and np.isnan(sm[2]).all()
    assert np.isnan(sm[3]).all()
    lsm, = _run_both("log_softmax", {"x": rows})
    assert lsm[1, 1] == -INF and np.isfinite(lsm[1, [0, 2, 3]]).all()
    # matmul: a NaN poisons its row, inf * 0 is NaN
    a = np.ones((3, 17), np.float32)
    a[1, 5] = NAN
    b = np.ones((17, 33), np.float32)
    b[4, 7], b[6, 9] = INF, 0.0
    mm, = _run_both("matmul", {"a": a, "b": b})
    assert np.isnan(mm[1]).all() and mm[0, 7] == INF and np.isfinite(np.delete(mm[0], 7)).all()
    # max_pool: a NaN wins its windows only; reductions
    img = np.arange(2 * 3 * 9 * 9, dtype=np.float32).reshape(2, 3, 9, 9)
    img[0, 1, 4, 4] = NAN
    mp, = _run_both("max_pool2d", {"x": img}, kernel=[3, 3], stride=[3, 3])
    assert np.isnan(mp).sum() == 1 and np.isnan(mp[0, 1, 1, 1])
    sums = np.array([[1.0, INF, -INF], [1.0, 2.0, INF], [NAN, 1.0, 2.0]], np.float32)
    for op, expect in [("reduce_sum", [NAN, INF, NAN]), ("reduce_max", [INF, INF, NAN]),
                       ("reduce_min", [-INF, 1.0, NAN]), ("reduce_mean", [NAN, INF, NAN])]:
        out, = _run_both(op, {"x": sums}, axes=[1])
        np.testing.assert_array_equal(out, np.array(expect, np.float32), err_msg=op)
    # conv: a NaN reaches only the outputs whose window covers it
    x = np.ones((1, 2, 7, 7), np.float32)
    x[0, 1, 0, 0] = NAN
    w = np.ones((3, 2, 3, 3), np.float32)
    conv, = _run_both("conv2d", {"x": x, "w": w}, weights=("w",), pad=[1, 1, 1, 1])
    assert np.isnan(conv[0, :, :2, :2]).all() and np.isnan(conv).sum() == 3 * 4


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e30), (np.float64, 1e300)])
@pytest.mark.parametrize("op", ["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [-1, 0])  # along rows; across an inner extent
def test_softmax_stays_finite_on_huge_inputs(op, dtype, big, axis):
    x = np.array([[big, -big, 0.0, 3 * big], [big, big, big, big], [-big, -big, -big, -big],
                  [big, 0.0, -big, 1.0]], dtype)
    x = np.concatenate([x, np.full((4, 13), -big, dtype)], axis=1)  # 17 columns: remainders
    x = x if axis == -1 else np.ascontiguousarray(x.T)
    out, = _run_both(op, {"x": x}, axis=axis)
    assert np.isfinite(out).all()
    if op == "softmax":
        np.testing.assert_allclose(out.sum(axis=axis), 1.0, rtol=1e-6)
    else:  # four equal maxima: log(1/4) each, exactly as the reference has it
        tied = out[1, :4] if axis == -1 else out[:4, 1]
        np.testing.assert_allclose(tied, -np.log(4), rtol=1e-6)


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e30), (np.float64, 1e300)])
def test_cross_entropy_is_exact_on_huge_logits(dtype, big):
    logits = np.full((3, 5), -big, dtype)
    logits[:, :4] = big  # four tied classes: the loss of each is log(4)
    for target in (np.array([0, 1, 3]), np.full((3, 5), 0.2, dtype)):
        out, = _run_both("cross_entropy", {"x": logits, "t": target}, reduction="none")
        if target.ndim == 1:
            np.testing.assert_allclose(out, np.log(4), rtol=1e-6)
        else:  # a fifth of the mass on a class 2 * big below the others
            np.testing.assert_allclose(out, 0.4 * big, rtol=1e-6)


def _cnn() -> Graph:
    rng = np.random.default_rng(3)
    g = Graph()
    h = g.add_input("x", TensorType((2, 8, 24, 24)))

    def w(*shape):
        return g.add_weight(f"w{len(g.params)}", rng.standard_normal(shape).astype(np.float32))

    h = g.call("conv2d", h, w(24, 8, 3, 3), w(24), pad=[1, 1, 1, 1], name="c1")
    h = g.call("relu", h)
    h = g.call("max_pool2d", h, kernel=[2, 2], stride=[2, 2])
    h = g.call("flatten", h)
    h = g.call("linear", h, w(40, h.shape[1]), name="fc")
    g.outputs = [g.call("softmax", h), g.call("reduce_sum", h, axes=[1])]
    return g


@pytest.mark.parametrize("threads", [1, 2])
def test_deterministic_for_a_thread_count(threads):
    g = _cnn()
    x = np.random.default_rng(4).standard_normal((2, 8, 24, 24)).astype(np.float32)
    first = llvm.compile_graph(g, num_threads=threads)
    second = llvm.compile_graph(g, num_threads=threads)
    if threads > 1:
        assert "lamina_parallel_for" in first.llvm_ir
    ref = [o.tobytes() for o in first(x)]
    for model in (first, second, first, second):
        assert [o.tobytes() for o in model(x)] == ref
