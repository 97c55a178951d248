"""Duplicate weights larger than the comparison chunk (CSE compares bytes in place, chunk by
chunk, since issue 13): a difference in the last chunk, or only in the sign of a zero, keeps
two weights apart; equal ones merge."""

import numpy as np

from passes import eliminate_common_subexpressions as cse

from .helpers import apply, parse


def _graph(a, b):
    return parse("""
    graph @main(%x: f32[300000]) -> (f32[300000], f32[300000]) {
      @a: f32[300000]
      @b: f32[300000]
      %p: f32[300000] = add(%x, @a)
      %q: f32[300000] = add(%x, @b)
      return %p, %q
    }""", {"a": a, "b": b})


def test_large_equal_weights_merge():
    a = np.random.default_rng(0).standard_normal(300_000).astype(np.float32)
    assert a.nbytes > cse.CHUNK
    out, stats = apply("eliminate_common_subexpressions", _graph(a, a.copy()))
    assert sorted(out.params) == ["a"] and stats.records[0].counts["weights"] == 1


def test_difference_in_the_last_chunk_or_a_zero_sign_keeps_them_apart():
    a = np.random.default_rng(1).standard_normal(300_000).astype(np.float32)
    a[-1] = 0.0
    for change in (lambda b: b.__setitem__(-2, b[-2] + 1), lambda b: b.__setitem__(-1, -0.0)):
        b = a.copy()
        change(b)
        out, stats = apply("eliminate_common_subexpressions", _graph(a, b))
        assert sorted(out.params) == ["a", "b"] and stats.records[0].counts["weights"] == 0
