"""Fuzzing the ONNX importer. `compiler.load_onnx` must raise an ir.LaminaError
(OnnxImportError) or return a graph that verifies, never anything else; each target says
what more it checks.

- corrupted files: the ONNX peers of the IR cases (one small model per operator and variant),
  serialised and then corrupted, as bytes (flipped, overwritten, truncated) or as protobuf
  (node op types, attributes, input and output names, graph input types and shapes,
  initialiser types and dims, the opset);
- malformed control flow: `If` nodes with missing, non-graph or nested branches, absent,
  empty, undefined, run-time or many-element conditions, dangling or surplus branch outputs,
  branch names that shadow the graph's; the malformed ones must be refused;
- huge sizes: Expand, Pad, Reshape, ConstantOfShape, Tile, Range, OneHot and Resize asked for
  giant shapes, then compiled by the LLVM backend on a machine pinned at 1 GiB: refused by
  the importer or the backend with a typed error before anything is allocated;
- duplicate outputs: a node's output renamed to a name another node, a graph input or an
  initialiser writes: always refused, naming the name;
- opsets: any 64-bit version of the default domain.

Each target runs a fixed, derandomised budget of examples (a few seconds in all). For a
longer, randomised run set LAMINA_FUZZ_EXAMPLES, e.g.
`LAMINA_FUZZ_EXAMPLES=20000 python -m pytest tests/robustness/test_fuzz_onnx.py`: every
target then runs that many examples, drawn afresh each time."""

from __future__ import annotations

import os
import warnings
from unittest import mock

import numpy as np
import onnx
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper

import compiler
import ir
from backends.llvm import driver
from compiler import OnnxImportError, load_onnx
from tests.ir.cases import CASES

from .isolate import run_isolated

MODELS = [c.onnx_model().SerializeToString() for c in CASES]
OP_TYPES = sorted({n.op_type for m in MODELS for n in onnx.ModelProto.FromString(m).graph.node}
                  | {"Bogus", "If", "Loop", "Scan", "Constant", "Shape", "Reshape", "Expand",
                     "ConstantOfShape", "Range", "Tile", "Gather", "Slice", "Resize"})
INTS = [-1, 0, 1, 2, 7, -(2**40), 2**40]
INT_LISTS = [[], [0], [-1], [1, 1], [2**40], [3, -3, 0, 5], [1] * 8]
LONG_RUN = int(os.environ.get("LAMINA_FUZZ_EXAMPLES", "0"))


def budget(examples: int):
    """Hypothesis settings: `examples` replayed the same way every run, or LAMINA_FUZZ_EXAMPLES
    drawn afresh when set."""
    return settings(max_examples=LONG_RUN or examples, deadline=None,
                    derandomize=not LONG_RUN, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


SETTINGS = budget(800)


def _bytes(draw, data: bytes) -> bytes:
    b = bytearray(data)
    kind = draw(st.sampled_from(["truncate", "overwrite", "flip"]))
    if kind == "truncate":
        return bytes(b[: draw(st.integers(0, len(b) - 1))])
    for _ in range(draw(st.integers(1, 4))):
        i = draw(st.integers(0, len(b) - 1))
        b[i] = draw(st.integers(0, 255)) if kind == "overwrite" else b[i] ^ (
            1 << draw(st.integers(0, 7)))
    return bytes(b)


def _proto(draw, m: onnx.ModelProto) -> None:
    g = m.graph
    nodes = list(g.node)
    pick = lambda seq: draw(st.sampled_from(seq))
    kind = pick(["op_type", "input", "attr_value", "attr_new", "attr_drop", "input_type",
                 "initializer", "drop_node", "output", "opset"])
    node = pick(nodes) if nodes else None
    names = ([i.name for i in g.input] + [t.name for t in g.initializer]
             + [o for n in nodes for o in n.output] + ["", "nowhere"])
    if kind == "op_type" and node:
        node.op_type = pick(OP_TYPES)
    elif kind == "input" and node:
        if node.input and draw(st.booleans()):
            node.input[draw(st.integers(0, len(node.input) - 1))] = pick(names)
        else:
            node.input.append(pick(names))
    elif kind == "attr_value" and node and node.attribute:
        a = pick(list(node.attribute))
        if a.type == onnx.AttributeProto.INT:
            a.i = pick(INTS)
        elif a.type == onnx.AttributeProto.INTS:
            del a.ints[:]
            a.ints.extend(pick(INT_LISTS))
        elif a.type == onnx.AttributeProto.FLOAT:
            a.f = pick([float("nan"), float("inf"), -1.0, 0.0])
        elif a.type == onnx.AttributeProto.STRING:
            a.s = pick([b"", b"bogus", b"\xff"])
        else:
            a.type = pick([onnx.AttributeProto.INT, onnx.AttributeProto.UNDEFINED])
    elif kind == "attr_new" and node:
        node.attribute.append(helper.make_attribute(
            pick(["axis", "bogus", "perm", "pads", "kernel_shape", "to", "mode"]),
            pick([1, -5, [1, 2], 0.5, "x", [0.5, 1.5]])))
    elif kind == "attr_drop" and node and node.attribute:
        del node.attribute[draw(st.integers(0, len(node.attribute) - 1))]
    elif kind == "input_type" and g.input:
        tt = pick(list(g.input)).type.tensor_type
        if draw(st.booleans()):
            tt.elem_type = pick([0, 1, 2, 3, 6, 7, 9, 10, 11, 16, 99])
        elif tt.shape.dim:
            d = pick(list(tt.shape.dim))
            value = pick([0, -1, -5, 2**40, "symbolic"])
            if value == "symbolic":
                d.dim_param = "n"
            else:
                d.dim_value = value
    elif kind == "initializer" and g.initializer:
        t = pick(list(g.initializer))
        if t.dims and draw(st.booleans()):
            t.dims[draw(st.integers(0, len(t.dims) - 1))] = pick([0, 1, 2**20, -1])
        else:
            t.data_type = pick([0, 2, 3, 7, 10, 11, 16, 99])
    elif kind == "drop_node" and nodes:
        del g.node[draw(st.integers(0, len(nodes) - 1))]
    elif kind == "output" and node and node.output:
        node.output[0] = pick(names)
    elif kind == "opset":
        m.opset_import[0].version = pick([1, 7, 9, 13, 22, 23, 30, 0, -5, 2**62])


@st.composite
def corrupted(draw) -> bytes:
    data = draw(st.sampled_from(MODELS))
    if draw(st.booleans()):
        return _bytes(draw, data)
    m = onnx.ModelProto.FromString(data)
    for _ in range(draw(st.integers(1, 2))):
        _proto(draw, m)
    return m.SerializeToString()


@SETTINGS
@given(corrupted())
def test_load_onnx_raises_only_lamina_errors(data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = load_onnx(data)
        except ir.LaminaError:
            return
    ir.verify(g)


def _load(data):
    """load_onnx's graph (verified), or None for a LaminaError; anything else fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            g = load_onnx(data)
        except ir.LaminaError:
            return None
    ir.verify(g)
    return g


# ---- malformed control flow ----------------------------------------------------------------
N = helper.make_node
X = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
FLOAT = TensorProto.FLOAT
CONDITIONS = {"true": np.array(True), "false": np.array(False), "int": np.array(3, np.int64),
              "empty": np.zeros(0, np.bool_), "two": np.array([True, False]),
              "matrix": np.ones((1, 1), np.bool_)}
SOUND_CONDITIONS = ("true", "false", "int", "matrix")  # one element each


@st.composite
def _branch_graph(draw, tag: str, outs: int, depth: int):
    """A branch graph and whether it is sound (well formed, computable here)."""
    kind = draw(st.sampled_from(["relu", "outer", "dangling", "undefined", "shadow", "surplus",
                                 "missing", "empty_name", "initialiser"]
                                + (["nested"] if depth < 2 else [])))
    names = [f"{tag}{depth}_{i}" for i in range(outs)]
    nodes, inits, sound = [N("Relu", ["x"], [n]) for n in names], [], True
    if kind == "outer":  # returns the enclosing graph's value itself
        nodes, names = [], ["x"] * outs
    elif kind == "dangling":
        names, sound = ["nowhere", *names[1:]], False
    elif kind == "undefined":
        nodes, sound = [N("Relu", ["undefined"], [n]) for n in names], False
    elif kind == "shadow":  # writes a name the enclosing graph writes
        nodes, names, sound = [N("Relu", ["x"], ["y"]), *nodes[1:]], ["y", *names[1:]], False
    elif kind == "surplus":
        names, sound = [*names, "x"], False
    elif kind == "missing":
        names, sound = names[:-1], False
    elif kind == "empty_name":
        nodes, names, sound = [], ["", *names[1:]], False
    elif kind == "initialiser":
        inits = [numpy_helper.from_array(X, f"{tag}{depth}_w")]
        nodes = [N("Add", ["x", f"{tag}{depth}_w"], [n]) for n in names]
    elif kind == "nested":
        node, ok = draw(_if_node(names, depth + 1))
        nodes, sound = [node], ok
    outputs = [helper.make_tensor_value_info(n, FLOAT, None) for n in names]
    return helper.make_graph(nodes, f"{tag}{depth}", [], outputs, inits), sound


@st.composite
def _if_node(draw, outs: list[str], depth: int = 0):
    """An If node writing `outs`, and whether it is sound."""
    cond = draw(st.sampled_from([*CONDITIONS, "runtime", "none", "empty_name", "undefined",
                                 "two_inputs"]))
    inputs = {"none": [], "empty_name": [""], "undefined": ["undefined"],
              "two_inputs": [f"c_{cond}", "x"]}.get(cond, [f"c_{cond}"])
    # a run-time condition imports both branches (selected by `where`): both must be sound
    sound = cond in SOUND_CONDITIONS or cond == "runtime"
    then_taken = None if cond == "runtime" else sound and bool(CONDITIONS[cond].reshape(-1)[0])
    attrs = {}
    for key, tag in (("then_branch", "t"), ("else_branch", "e")):
        form = draw(st.sampled_from(["graph"] * 6 + ["missing", "int", "string", "graphs",
                                                     "floats"]))
        if form == "graph":
            attrs[key], ok = draw(_branch_graph(tag, len(outs), depth))
            sound &= ok or (then_taken is not None and (key == "then_branch") != then_taken)
            # (the branch not taken may hide a flaw: only its form and output count are
            # checked)
        else:
            sound = False
            if form != "missing":
                attrs[key] = {"int": 3, "string": "then", "floats": [0.5, 1.5],
                              "graphs": [_branch_graph_plain()]}[form]
    return N("If", inputs, outs, name=f"if{depth}", **attrs), sound


def _branch_graph_plain():
    return helper.make_graph([N("Relu", ["x"], ["g0"])], "g", [],
                             [helper.make_tensor_value_info("g0", FLOAT, None)])


@st.composite
def if_models(draw):
    outs = ["y"] if draw(st.booleans()) else ["y", "z"]
    node, sound = draw(_if_node(outs))
    inits = [numpy_helper.from_array(a, f"c_{k}") for k, a in CONDITIONS.items()]
    inputs = [helper.make_tensor_value_info("x", FLOAT, [2, 3]),
              helper.make_tensor_value_info("c_runtime", TensorProto.BOOL, [])]
    outputs = [helper.make_tensor_value_info(o, FLOAT, None) for o in outs]
    graph = helper.make_graph([node], "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return model, sound


@budget(400)
@given(if_models())
def test_malformed_if_is_refused(case):
    m, sound = case
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            g = load_onnx(m, [X.shape, ()])
    except OnnxImportError as e:
        assert "If" in str(e), str(e)  # the node is named
        return
    assert sound, "a malformed If was imported"
    ir.verify(g)


# ---- huge sizes -------------------------------------------------------------------------------
GIANT = [2**31 + 1, 2**33, 2**36, 2**40, 2**48, 2**62, 2**63 - 1]
ODD = [0, 1, 2, 3, -1, -2, -(2**63)]


def _ints(draw, n: int) -> list[int]:
    return [draw(st.sampled_from(GIANT if draw(st.integers(0, 3)) else ODD)) for _ in range(n)]


@st.composite
def huge_models(draw):
    op = draw(st.sampled_from(["Expand", "Pad", "Reshape", "ConstantOfShape", "Tile", "Range",
                               "OneHot", "Resize"]))
    x = np.zeros(draw(st.sampled_from([(2,), (1, 3), (2, 1, 2, 2)])), np.float32)
    const = draw(st.booleans())  # a constant operand: computed at import, not at run time
    inits, inputs, r = {}, ["x"], x.ndim
    if op in ("Expand", "Reshape"):
        inits["s"] = np.asarray(_ints(draw, draw(st.integers(1, 3))), np.int64)
        inputs.append("s")
    elif op == "Pad":
        inits["s"] = np.asarray(_ints(draw, 2 * r), np.int64)
        inputs.append("s")
    elif op == "Tile":
        inits["s"] = np.asarray(_ints(draw, r), np.int64)
        inputs.append("s")
    elif op == "ConstantOfShape":
        inputs = ["s"]
        inits["s"] = np.asarray(_ints(draw, draw(st.integers(1, 3))), np.int64)
    elif op == "Range":
        inputs = ["a", "b", "c"]
        inits.update(a=np.int64(draw(st.sampled_from(ODD))), b=np.int64(_ints(draw, 1)[0]),
                     c=np.int64(draw(st.sampled_from([1, 2, -1, 2**40]))))
    elif op == "OneHot":
        inputs = ["i", "s", "v"]
        inits.update(i=np.asarray([0, 1], np.int64), s=np.asarray(_ints(draw, 1), np.int64),
                     v=np.asarray([0.0, 1.0], np.float32))
    elif op == "Resize":
        inputs = ["x", "", "", "s"]
        inits["s"] = np.asarray(_ints(draw, r), np.int64)
    if const and "x" in inputs:
        inits["x"] = x
    graph_inputs = [] if const or "x" not in inputs else [
        helper.make_tensor_value_info("x", FLOAT, list(x.shape))]
    graph = helper.make_graph(
        [N(op, inputs, ["y"], name="huge")], "g", graph_inputs,
        [helper.make_tensor_value_info("y", FLOAT, None)],
        [numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=8)


@budget(300)
@given(huge_models())
def huge_sizes_fuzz(m):
    """The importer and the compiler refuse what does not fit before they allocate it (the
    machine pinned at 1 GiB, so nothing here may take more): an attempt shows as a
    MemoryError, raw or in an import error's text."""
    try:
        g = _load(m)
        if g is not None:
            with mock.patch.object(driver, "machine_memory", lambda: 2**30):
                compiler.compile(g, num_threads=1)
    except ir.LaminaError as e:
        assert "MemoryError" not in str(e) and "allocate" not in str(e), str(e)


def test_huge_sizes_are_refused_before_allocation():
    """In a child process whose address space is capped at 8 GiB: an allocation the checks
    miss fails there (as a MemoryError) instead of swapping or waking the OOM killer."""
    run_isolated("""
        import resource
        resource.setrlimit(resource.RLIMIT_AS, (8 << 30, 8 << 30))
        from tests.robustness.test_fuzz_onnx import huge_sizes_fuzz
        huge_sizes_fuzz()
    """, timeout=600)


# ---- duplicate outputs and opsets -----------------------------------------------------------
@st.composite
def duplicated(draw):
    m = onnx.ModelProto.FromString(draw(st.sampled_from(MODELS)))
    g = m.graph
    nodes = list(g.node)
    k = draw(st.integers(0, len(nodes) - 1))
    taken = ([o for i, n in enumerate(nodes) if i != k for o in n.output if o]
             + [i.name for i in g.input] + [t.name for t in g.initializer])
    outs = [j for j, o in enumerate(nodes[k].output) if o]
    assume(outs and (taken or len(outs) > 1))
    j = draw(st.sampled_from(outs))
    others = taken + [o for i, o in enumerate(nodes[k].output) if o and i != j]
    name = draw(st.sampled_from(others)) if others else None
    assume(name is not None)
    g.node[k].output[j] = name
    return m.SerializeToString(), name


@budget(200)
@given(duplicated())
def test_duplicate_outputs_are_refused(case):
    data, name = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            load_onnx(data)
        except OnnxImportError as e:
            assert f"'{name}' is written twice" in str(e), str(e)
            return
    raise AssertionError(f"two writers of '{name}' were accepted")


@budget(100)
@given(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 40))
def test_any_opset_loads_or_is_refused(version):
    m = onnx.ModelProto.FromString(MODELS[0])
    m.opset_import[0].version = version
    g = _load(m.SerializeToString())
    assert g is None or 1 <= version <= onnx.defs.onnx_opset_version()
