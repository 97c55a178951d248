"""Every registered operator, through the LLVM backend, against the reference interpreter."""

import pytest

import ir
from backends import llvm
from tests.ir.cases import BY_OP as IR_CASES

from .cases import CASES, by_op
from .helpers import check_case

BY_OP = by_op()


@pytest.mark.parametrize("op", ir.ops.names())
def test_operator_has_lowering_and_cases(op):
    """A new operator needs a lowering, and cases run through the LLVM backend: its own here,
    and the operator suite's (tests/ir/cases*.py, run by test_llvm_ir_cases.py)."""
    assert op in llvm.LOWERINGS, f"operator {op} has no LLVM lowering"
    assert BY_OP.get(op), f"operator {op} has no LLVM backend test case in tests/backends"
    assert IR_CASES.get(op), f"operator {op} has no case in tests/ir (run through LLVM too)"


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_case(case):
    check_case(case, num_threads=1)
