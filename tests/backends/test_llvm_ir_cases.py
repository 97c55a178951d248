"""The operator suite's own cases (tests/ir: every registered operator, kept up to date by
whoever adds one) through the LLVM backend, against the reference interpreter."""

import pytest

from tests.ir.cases import CASES

from .helpers import check_graph


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_ir_case(case):
    g = case.graph()
    check_graph(g, case.inputs, rtol=max(case.rtol, 1e-4), atol=max(case.atol, 1e-5),
                num_threads=1)
