"""ONNX node-case conformance report: every case the onnx package's generators write
(onnx.backend.test.case.node), run through the importer and the reference backend exactly
as tests/compiler/test_onnx_import.py runs them, then counted and grouped by why a case
does not pass.

    python -m tests.compiler.onnx_conformance > docs/ONNX_CONFORMANCE.md

Nothing here decides what passes: the outcome of each case is what the conformance test's
own helpers (`_import_case`, `_check_expected`) make of it.
"""

from __future__ import annotations

import re
import sys
import warnings
from collections import defaultdict

import numpy as np
import pytest

from .test_onnx_import import (
    DATA_DEPENDENT,
    KNOWN,
    _check_expected,
    _import_case,
    _tensor,
    _with_constant_inputs,
)

# the categories of the report, in its order; `category` sorts a case into one of them
CATEGORIES = {
    "sequence": "sequence and optional values (Lamina's graphs hold tensors only)",
    "string": "string tensors and string operators",
    "training": "training-only operators (ai.onnx.preview.training, training-mode Dropout)",
    "random": "random operators (their outputs cannot be compared with stored ones)",
    "quantized": "quantized operators (issue 17)",
    "data-dependent": "data-dependent output shapes",
    "constant-only": "operators Lamina computes only at import time (no registry operator: "
                     "trigonometry, Round, bitwise, BitCast) given run-time inputs",
    "dtype": "element types Lamina lacks (float16, bfloat16, float8, int4, uint8, ...)",
    "control-flow": "control flow (Loop, Scan, If on a run-time condition)",
    "3-D": "3-D windows (convolution, pooling)",
    "domain": "operators of other domains (ai.onnx.ml, ai.onnx.preview)",
    "known": "known differences from the stored outputs (reasons in the test's KNOWN)",
    "other": "other",
}
SEQUENCE = re.compile(r"^(Sequence|Optional|ConcatFromSequence|SplitToSequence)")
STRING = {"StringConcat", "StringNormalizer", "StringSplit", "RegexFullMatch", "ImageDecoder",
          "TfIdfVectorizer", "LabelEncoder"}
RANDOM = {"Bernoulli", "Multinomial", "RandomNormal", "RandomNormalLike", "RandomUniform",
          "RandomUniformLike"}
QUANTIZED = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "QLinearConv",
             "QLinearMatMul", "ConvInteger", "MatMulInteger"}
CONTROL_FLOW = {"Loop", "Scan", "If"}
FOLDED = "computed at import time, every input fixed"
NARROW = re.compile(r"\b(u?int(2|4|8|16)|uint(32|64)|[ui]8|float16|bfloat16|float8\w*|"
                    r"float4\w*)\b")


def _ops(case) -> set[str]:
    return {n.op_type for n in case.model.graph.node}


def category(case, status: str, reason: str) -> str:
    """The report's category for a case that does not pass, from its operators and the
    importer's reason."""
    ops = _ops(case)
    domains = {n.domain for n in case.model.graph.node}
    text = reason.lower()
    if status == "known":
        return "known"
    if "sequence or optional" in text or any(SEQUENCE.match(o) for o in ops):
        return "sequence"
    if "string" in text or ops & STRING:
        return "string"
    if "ai.onnx.preview.training" in domains or "training mode" in text:
        return "training"
    if ops & RANDOM:
        return "random"
    if ops & QUANTIZED:
        return "quantized"
    if "3-d" in text:
        return "3-D"
    if ops & CONTROL_FLOW or re.search(r"\b(scan|loop|if): ", text):
        return "control-flow"
    if domains - {"", "ai.onnx"}:
        return "domain"
    if NARROW.search(text) or "element type" in text or "cast to" in text \
            or "operands (it takes" in text or (" values" in text and "computed" not in text):
        return "dtype"
    refused = set(re.findall(r"(\w+): [^;]*computed at run time", reason))
    if ops & DATA_DEPENDENT or refused & DATA_DEPENDENT:
        return "data-dependent"
    if refused:
        return "constant-only"
    return "other"


def outcome(case) -> tuple[str, str]:
    """('pass' | 'fail' | 'skip' | 'known' | 'unmapped', reason) for one node case; a pass
    with every input fixed as a constant (data-dependent shapes) has the reason FOLDED."""
    from compiler.frontends.onnx import importable

    missing = sorted({f"{n.domain + '.' if n.domain not in ('', 'ai.onnx') else ''}"
                      f"{n.op_type}" for n in case.model.graph.node
                      if n.domain not in ("", "ai.onnx") or not importable(n.op_type)})
    if missing:
        return "unmapped", "no mapping: " + ", ".join(missing)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for inputs, outputs in case.data_sets:
                inputs, outputs = [_tensor(t) for t in inputs], [_tensor(t) for t in outputs]
                if not all(isinstance(a, np.ndarray) for a in [*inputs, *outputs]):
                    return "skip", "sequence or optional values"
                g, fed = _import_case(case.model, inputs)
                _check_expected(g, fed, outputs, case.rtol, case.atol, case.name)
                folded = not fed and _with_constant_inputs(case.model, inputs)[1]
    except pytest.skip.Exception as e:
        return "skip", str(e.msg)
    except Exception as e:  # a failure is reported, not raised
        return ("known" if case.name in KNOWN else "fail"), f"{type(e).__name__}: {e}"
    if case.name in KNOWN:
        return "fail", "passes but is listed as known to differ"
    return "pass", FOLDED if folded else ""


def collect():
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return collect_testcases(None)


def report(cases) -> str:
    results = [(c, *outcome(c)) for c in cases]
    counts = defaultdict(int)
    for _, status, _ in results:
        counts[status] += 1
    total, passed = len(results), counts["pass"]
    default = sum(all(n.domain in ("", "ai.onnx") for n in c.model.graph.node) for c in cases)
    folded = sum(1 for _, status, why in results if status == "pass" and why == FOLDED)
    lines = [
        "# ONNX conformance",
        "",
        "Generated by `python -m tests.compiler.onnx_conformance > docs/ONNX_CONFORMANCE.md`;",
        "do not edit by hand. The cases are those the installed onnx package's generators",
        "write (`onnx.backend.test.case.node`, the source of onnx/backend/test/data/node),",
        "each imported and run on the reference backend against the outputs onnx computed,",
        "as `test_onnx_node_conformance` does.",
        "",
        f"**node cases: {passed}/{total} pass ({100 * passed / total:.1f}%); of the default "
        f"domain's {default}: {100 * passed / default:.1f}%** (the rest are ai.onnx.ml and "
        "preview operators)",
        "",
        "| outcome | cases |",
        "|---|---|",
        f"| pass | {passed} |",
        f"| of which with every input fixed as a constant (an output shape set by values: "
        f"{', '.join(sorted(DATA_DEPENDENT))}) | {folded} |",
        f"| skipped by the importer (a node needs what Lamina lacks) | {counts['skip']} |",
        f"| an operator with no mapping | {counts['unmapped']} |",
        f"| known to differ (strict xfail, reason in the test) | {counts['known']} |",
        f"| fail | {counts['fail']} |",
        "",
        "## What does not pass, by reason",
        "",
    ]
    groups = defaultdict(list)
    for c, status, reason in results:
        if status != "pass":
            groups[category(c, status, reason)].append((c.name, status, reason))
    for key, title in CATEGORIES.items():
        if not groups[key]:
            continue
        lines += [f"### {title}: {len(groups[key])}", "", "| case | outcome | reason |",
                  "|---|---|---|"]
        for name, status, reason in sorted(groups[key]):
            lines.append(f"| {name} | {status} | {_cell(reason)} |")
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    text = " ".join(text.split())
    text = text if len(text) <= 160 else text[:157] + "..."
    return text.replace("|", "\\|")


def main() -> None:
    sys.stdout.write(report(collect()) + "\n")


if __name__ == "__main__":
    main()
