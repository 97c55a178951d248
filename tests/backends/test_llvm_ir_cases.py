"""The operator suite's own cases (tests/ir: every registered operator, kept up to date by
whoever adds one) through the LLVM backend, against the reference interpreter."""

import pytest

from backends import llvm
from ir import LaminaError
from tests.ir.cases import CASES

from .helpers import check_graph

# Training-mode dropout draws numpy's RNG stream: refused at compile time (see nn lowering).
REFUSED = {"dropout_seeded"}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ir_case(case):
    g = case.graph()
    if case.op in REFUSED and case.attrs.get("ratio", 0.5) != 0:
        with pytest.raises(LaminaError, match="not supported"):
            llvm.compile_graph(g, num_threads=1)
        return
    check_graph(g, case.inputs, rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-5),
                num_threads=1)
