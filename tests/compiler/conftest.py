"""Counts of the ONNX node conformance cases (test_onnx_import.py), tallied as they run and
printed in the terminal summary (under xdist the controller sees every report);
`test_node_conformance_pass_count` holds the pass count to a floor."""

from __future__ import annotations

import sys
from collections import Counter

NODE_TEST = "test_onnx_node_conformance["
NODE_OUTCOMES: Counter = Counter()  # passed / skipped / failed / xfailed -> cases


def pytest_runtest_logreport(report):
    if NODE_TEST not in report.nodeid:
        return
    if report.when == "call" or (report.when == "setup" and not report.passed):
        NODE_OUTCOMES["xfailed" if hasattr(report, "wasxfail") else report.outcome] += 1


def pytest_terminal_summary(terminalreporter):
    if not NODE_OUTCOMES:
        return
    module = sys.modules.get("tests.compiler.test_onnx_import")  # None on an xdist controller
    passed, ran = NODE_OUTCOMES["passed"], sum(NODE_OUTCOMES.values())
    rest = "".join(f"; {k} {v}" for k, v in sorted(NODE_OUTCOMES.items()) if k != "passed")
    if module is None:
        line = f"{passed} of the {ran} run pass{rest}"
    else:
        default = module.NODE_DEFAULT_TOTAL
        line = (f"{passed}/{module.NODE_TOTAL} pass ({100 * passed / module.NODE_TOTAL:.1f}%; "
                f"{100 * passed / default:.1f}% of the default domain's {default}{rest}; "
                "those of operators with no mapping are not run)")
    terminalreporter.write_line(f"ONNX node cases: {line}")
