"""Generated kernels never touch memory outside the buffers they are given: every backend
test case (every lowered operator) and a sweep of sizes around the vector width (1, 15, 16,
17, 31, 33 elements; GEMM and convolution shapes with remainders, some split over two
threads) run on inputs, outputs and an arena fenced by PROT_NONE pages and canaries, with
the inputs read-only (guarded.py). A stray access faults, so the checks run in child
processes."""

from __future__ import annotations

import pytest

from .isolate import run_isolated

SHARDS = 3


@pytest.mark.parametrize("shard", range(SHARDS))
def test_kernels_stay_inside_their_buffers(shard):
    out = run_isolated(f"from tests.robustness.guarded import main; main({shard}, {SHARDS})",
                       timeout=300)
    assert "ran fenced" in out


def test_a_store_past_the_end_faults():
    with pytest.raises(AssertionError, match="SIGSEGV"):
        run_isolated("from tests.robustness.guarded import overrun; overrun(True)")


def test_a_store_into_the_slack_breaks_the_canary():
    with pytest.raises(AssertionError, match="wrote outside"):
        run_isolated("from tests.robustness.guarded import overrun; overrun(False)")
