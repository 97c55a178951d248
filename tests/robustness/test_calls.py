"""Calls of a compiled LLVM model: bad arguments, odd arrays, several threads, many calls.

The checks run in a child process (children.py), so that a crash in native code fails the
test instead of killing pytest."""

from __future__ import annotations

from .isolate import run_isolated


def test_bad_and_odd_arguments():
    """Wrong counts, shapes, dtypes and non-arrays raise ir.InputError; lists are converted
    by np.asarray (so f32 refuses Python floats); non-contiguous, broadcast, misaligned and
    read-only arrays are handled; inputs may alias each other and earlier outputs."""
    run_isolated("from tests.robustness.children import bad_calls; bad_calls()")


def test_concurrent_calls_are_correct():
    """Three pool-using models called at once from three threads, then one model from four
    threads: every result bitwise equal to a lone call's."""
    run_isolated("from tests.robustness.children import threads; threads()")


def test_repeated_calls_do_not_grow_memory():
    out = run_isolated("from tests.robustness.children import memory; memory()")
    assert "rss growth" in out

