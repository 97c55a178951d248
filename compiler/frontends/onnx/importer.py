"""ONNX import: an `.onnx` model (opsets 9..21; older ones as far as they agree) -> ir.Graph.

    graph = load_onnx("resnet.onnx", input_shapes=[(8, 3, 224, 224)])

The model is read with the `onnx` package (imported lazily: it is a test dependency, not a
runtime one), then walked node by node in topological order. Each ONNX operator has one
small function in the operator table (`ops/`, by family), named like the operator, that
builds registry operators through a `Builder`; an operator without one that ONNX defines as a
function of others (Celu, GroupNormalization, Attention, ...) is
expanded into that function and imported node by node; control flow (`If`, `Loop`, `Scan`)
is taken apart at import by control.py (the branch a known condition takes, or `where`
between both; loops and scans unrolled). Values whose contents are known at import time
(initialisers, `Constant`, `Shape` of a statically shaped tensor, and everything computed
only from those) stay numpy arrays and fold on the spot: registry operators are evaluated
with the registry's own numpy semantics, and the few ONNX operators with no registry
counterpart (`Range`, `NonZero`, `Floor`, `Mod`, ...) directly with numpy. Only arrays that
reach a run-time operator become graph weights (or `constant` nodes for single numbers).

Shapes are static: a symbolic dimension (a dynamic batch) takes the size given in
`input_shapes`, which `compiler.compile("m.onnx", x)` fills in from the example inputs.

Everything the importer cannot express is collected and reported at once by one
`OnnxImportError` that lists each unsupported operator (or attribute, or dtype) and the node
where it occurs. A model still in training mode (dropout or batch norm with a training flag)
imports for inference with an `OnnxImportWarning` that names the nodes and says what was done.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import os
import re
import warnings

import numpy as np

import ir
from ir import LaminaError, TensorType
from ir.tensor_type import dtype_name

from . import external
from .builder import (
    IR_DTYPES,
    Builder,
    Decline,
    OnnxImportError,
    OnnxImportWarning,
    OnnxNode,
    OnnxOpsetWarning,
    Unsupported,
    np_dtype,
    onnx_type_name,
    read_array,
    stored_dtype,
)
from .control import CONTROL, import_control
from .control import reads as _reads
from .functions import function_body, has_function
from .ops import HANDLERS


# ---- reading -------------------------------------------------------------------------------
def _read(model, external_data: bool = True):
    import onnx

    if isinstance(model, onnx.ModelProto):
        external.refuse_external(model, "<ModelProto>")
        return model, "<ModelProto>"
    if isinstance(model, (bytes, bytearray)):
        source, where = bytes(model), "<bytes>"
    elif isinstance(model, (str, os.PathLike)):
        source, where = os.fspath(model), os.fspath(model)
        if not os.path.isfile(source):
            raise OnnxImportError(f"cannot read ONNX model {where}: no such file")
    else:
        raise OnnxImportError(f"load_onnx takes a path, bytes or an onnx.ModelProto, got "
                              f"{type(model).__name__}")
    try:
        proto = onnx.load_from_string(source) if isinstance(source, bytes) else \
            onnx.load(source, load_external_data=False)  # read by external.py, checked
    except Exception as e:  # protobuf DecodeError, OSError, ...
        raise OnnxImportError(f"cannot read ONNX model {where}: the file is corrupt or "
                              f"truncated ({type(e).__name__}: {e})") from None
    bad = _not_text(proto)
    if bad:
        raise OnnxImportError(f"cannot read ONNX model {where}: {bad} is not UTF-8 text (the "
                              "file is corrupt)")
    if isinstance(source, bytes):
        external.refuse_external(proto, where)
    elif external_data:
        external.load_external(proto, source)
    return proto, where


def _not_text(msg, path: str = "model") -> str | None:
    """The path of the first string field holding bytes. protobuf leaves proto2 string
    fields unchecked and hands invalid UTF-8 back as bytes, which no name may be."""
    from google.protobuf.descriptor import FieldDescriptor

    # (compile time, issue 13) only string and message fields are read: ListFields would
    # copy every tensor's raw_data out of the message (1.4 s for VGG-16's 550 MB)
    for fd in _text_fields(msg.DESCRIPTOR):
        repeated = fd.is_repeated
        if not repeated and not msg.HasField(fd.name):
            continue
        value = getattr(msg, fd.name)
        items = list(enumerate(value)) if repeated else [(None, value)]
        for i, item in items:
            where = f"{path}.{fd.name}" + (f"[{i}]" if repeated else "")
            if fd.type == FieldDescriptor.TYPE_STRING and not isinstance(item, str):
                return where
            if fd.type == FieldDescriptor.TYPE_MESSAGE:
                found = _not_text(item, where)
                if found:
                    return found
    return None


@functools.cache
def _text_fields(descriptor) -> tuple:
    """A message type's string and message fields, in field-number order (ListFields')."""
    from google.protobuf.descriptor import FieldDescriptor

    kinds = (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_MESSAGE)
    return tuple(sorted((fd for fd in descriptor.fields if fd.type in kinds),
                        key=lambda fd: fd.number))


MAX_OPSET = 21  # the newest opset the operator table follows


def _opset(proto, where: str) -> int:
    """The default domain's opset: refused below 1 or beyond what the onnx package knows
    (no definition of its operators exists here); newer than MAX_OPSET, a warning."""
    import onnx

    versions = {o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")}
    if len(versions) > 1:
        raise OnnxImportError(f"{where}: the model imports the default ONNX operator set at "
                              f"several versions (opsets {sorted(versions)})")
    if not versions:
        if proto.graph.node:
            raise OnnxImportError(f"{where}: the model imports no version of the default ONNX "
                                  "operator set")
        return MAX_OPSET
    version, known = versions.pop(), onnx.defs.onnx_opset_version()
    if version < 1:
        raise OnnxImportError(f"{where}: opset {version} does not exist (ONNX opsets start "
                              "at 1)")
    if version > known:
        raise OnnxImportError(f"{where}: opset {version} is newer than any this onnx package "
                              f"(version {onnx.__version__}) defines (up to {known})")
    if version > MAX_OPSET:
        warnings.warn(OnnxOpsetWarning(
            f"{where}: opset {version} is newer than the opsets Lamina's ONNX import follows "
            f"(up to {MAX_OPSET}); operators changed since opset {MAX_OPSET} are read by their "
            "older definitions"), stacklevel=3)
    return version


def _attrs(node) -> dict:
    import onnx

    out = {}
    for a in node.attribute:
        try:
            value = onnx.helper.get_attribute_value(a)
        except Exception as e:  # an attribute whose type says nothing it holds
            raise OnnxImportError(f"{node.op_type} node '{node.name or node.op_type}': "
                                  f"attribute '{a.name}' cannot be read ({e})") from None
        if a.type == onnx.AttributeProto.STRING:
            value = value.decode("utf-8", "replace")
        elif a.type == onnx.AttributeProto.STRINGS:
            value = [v.decode("utf-8", "replace") for v in value]
        elif a.type == onnx.AttributeProto.TENSOR:
            value = read_array(value, f"{node.op_type} node '{node.name or node.op_type}' "
                                  f"attribute '{a.name}', tensor")
        elif a.type in (onnx.AttributeProto.INTS, onnx.AttributeProto.FLOATS):
            value = list(value)
        out[a.name] = value
    return out




# ---- the walk ------------------------------------------------------------------------------
def load_onnx(model, input_shapes=None) -> ir.Graph:
    """Import an ONNX model (a path, bytes or an `onnx.ModelProto`) as an ir.Graph.

    `input_shapes` gives the shapes of the graph inputs, as a list in input order or a dict
    by input name; symbolic dimensions (a dynamic batch) take their sizes from it, and known
    dimensions must agree with it. Raises OnnxImportError listing every unsupported operator
    and where it occurs; warns (OnnxImportWarning) about training-mode operators."""
    proto, where = _read(model)
    _remember_signature(model, proto)
    if not proto.HasField("graph") or not proto.graph.output:
        raise OnnxImportError(f"{where}: the model has no graph outputs (an empty, corrupt or "
                              "truncated file?)")
    opset = _opset(proto, where)
    g = proto.graph
    name = re.sub(r"[^A-Za-z0-9_]", "_", g.name or "main")
    graph = ir.Graph(name if re.match(r"[A-Za-z_]", name) else "main")
    b = Builder(graph, opset)
    env: dict[str, object] = {"": None}
    for t in g.initializer:
        env[t.name] = read_array(t, "initialiser")
        b.names[id(env[t.name])] = t.name
        b.file_bytes += env[t.name].nbytes
    if g.sparse_initializer:
        raise OnnxImportError(f"{where}: sparse initialisers are not supported",
                              unsupported=[("<initializer>", t.values.name, "sparse tensor")
                                           for t in g.sparse_initializer])
    _check_names(g, where)
    b.stored = _declared_types(g)
    for inp, shape in _input_shapes(g, env, input_shapes, where):
        env[inp.name] = graph.add_input(graph.fresh_name(inp.name), shape)
    nodes = _live_nodes(g, env, where)
    walk = _Walk(b, env, HANDLERS)
    walk.nodes(nodes)
    unsupported, problems = walk.unsupported, walk.problems
    if unsupported or problems:
        raise _error(where, unsupported, problems)
    b.node = OnnxNode("output", "output", [], [], {})
    outs = []
    for o in g.output:
        b.node.outputs = [o.name]
        if env.get(o.name) is None:  # "" (an absent optional) names no value
            raise OnnxImportError(f"{where}: graph output '{o.name}' names no value")
        if not isinstance(env[o.name], (ir.Value, np.ndarray)):  # a sequence (ops/sequence)
            raise _error(where, [("<output>", o.name, "a sequence of tensors: Lamina's graphs "
                                  "return tensors")], [])
        try:
            outs.append(b.value(env[o.name]))
        except Unsupported as e:  # a constant output of a dtype Lamina lacks
            raise _error(where, [("<output>", o.name, str(e))], []) from None
    graph.outputs = outs
    ir.verify(graph)
    if b.training:
        listed = "; ".join(f"{label}: {what}" for label, what in b.training)
        warnings.warn(OnnxImportWarning(
            f"{where}: the model still holds training-mode operators, imported for inference: "
            f"{listed}"), stacklevel=2)
    return graph


def _declared_types(g) -> dict:
    """Element types the file declares, by tensor name (initialisers, inputs, outputs,
    value_info, Constant and Cast results), as stored before WIDER widens them: the
    quantized operators read them to keep int8/uint8 tensors in their own types."""
    import onnx

    types = {t.name: t.data_type for t in g.initializer}
    for v in [*g.input, *g.value_info, *g.output]:
        if v.type.HasField("tensor_type"):
            types.setdefault(v.name, v.type.tensor_type.elem_type)
    for n in g.node:
        for a in n.attribute:
            if n.op_type == "Cast" and a.name == "to" and n.output:
                types[n.output[0]] = a.i
            elif n.op_type == "Constant" and a.type == onnx.AttributeProto.TENSOR and n.output:
                types[n.output[0]] = a.t.data_type
    return {name: dt for name, e in types.items() if (dt := stored_dtype(e)) is not None}


class _Walk:
    """Imports nodes in order, collecting what fails instead of stopping at it: a failed
    node's outputs are poisoned, and nodes reading them are skipped silently."""

    def __init__(self, b: Builder, env: dict, handlers: dict):
        self.b, self.env, self.handlers = b, env, handlers
        self.unsupported: list[tuple[str, str, str]] = []
        self.problems: list[tuple[str, str, str]] = []
        self.poisoned: set[str] = set()

    def nodes(self, nodes, inside: str = "") -> None:
        for n, used in nodes:
            self.node(n, used, inside)

    def node(self, n, used: list[bool], inside: str) -> None:
        node = _node(n, used)
        self.b.file_bytes += sum(v.nbytes for v in node.attrs.values()
                                 if isinstance(v, np.ndarray))  # a Constant's tensor
        label = node.name + inside
        default = n.domain in ("", "ai.onnx")
        what = n.op_type if default else f"{n.domain}.{n.op_type}"  # (other domains' ops
        # are in the table by qualified name: ops/training.py)
        if not (importable(n.op_type) if default else what in self.handlers):
            self.unsupported.append((what, label, "no Lamina mapping for this operator"))
            self.poisoned.update(node.outputs)
            return
        if any(i in self.poisoned for i in node.inputs):
            self.poisoned.update(node.outputs)
            return
        if n.op_type in CONTROL:  # If, Loop, Scan: taken apart at import (control.py)
            import_control(self, n, node, label, inside)
            return
        if what not in self.handlers:
            self.expand(n, node, label, inside, "no function of the operator")
            return
        try:
            _run(self.b, node, self.env, self.handlers[what])
        except Decline as e:
            self.expand(n, node, label, inside, str(e))
        except Unsupported as e:
            self.unsupported.append((node.op, label, str(e)))
            self.poisoned.update(node.outputs)
        except Exception as e:  # a node's fault, reported with its name
            msg = str(e) if isinstance(e, LaminaError) else f"{type(e).__name__}: {e}"
            self.problems.append((node.op, label, msg))
            self.poisoned.update(node.outputs)

    def expand(self, n, node: OnnxNode, label: str, inside: str, why: str) -> None:
        """Import the nodes of the function ONNX defines the operator by (`why` says what
        is unsupported when there is none)."""
        body = function_body(n, node, self.env, self.b.opset)
        if body is None:
            self.unsupported.append((n.op_type, label, why))
            self.poisoned.update(node.outputs)
            return
        inner, opset = body
        saved, self.b.opset = self.b.opset, opset
        try:
            self.nodes(inner, f"{inside} (in {n.op_type} '{node.name}', expanded from its "
                              "ONNX function)")
        finally:
            self.b.opset = saved


def _check_names(g, where: str, outer: dict | None = None, inside: str = "") -> None:
    """Each name is written once (the graph is in SSA form, as ONNX requires): by one graph
    input, initialiser or node output, here or in an enclosing graph. Otherwise the last
    writer would silently win. `outer` maps the enclosing graphs' names to their writers."""
    writer = dict(outer or {})

    def claim(name: str, by: str) -> None:
        if name in writer:
            raise OnnxImportError(f"{where}: the name '{name}' is written twice, by "
                                  f"{writer[name]} and by {by}")
        writer[name] = by

    inits = {t.name for t in g.initializer}
    for t in g.initializer:
        claim(t.name, f"initialiser '{t.name}'{inside}")
    for i in g.input:
        if i.name not in inits:  # old models list their initialisers among the inputs too
            claim(i.name, f"graph input '{i.name}'{inside}")
    for n in g.node:
        for o in n.output:
            if o:  # "" leaves an optional output out
                claim(o, f"{n.op_type} node '{n.name or n.output[0]}'{inside}")
    for n in g.node:  # branches see every name of the graphs around them, not each other's
        for a in n.attribute:
            for sub in [a.g] if a.HasField("g") else list(a.graphs):
                _check_names(sub, where, writer, f" (in {a.name} of {n.op_type} "
                                                 f"'{n.name or n.op_type}')")


def importable(op_type: str) -> bool:
    """Whether the importer maps `op_type` of the default domain: by its function in the
    operator table (ops/), through the function ONNX defines it by, or (If, Loop, Scan) by
    taking the control flow apart at import (control.py)."""
    return op_type in HANDLERS or op_type in CONTROL or has_function(op_type)


def _error(where: str, unsupported, problems) -> OnnxImportError:
    lines = []
    if unsupported:
        ops = sorted({u[0] for u in unsupported})
        lines.append(f"{len(unsupported)} node(s) use what Lamina does not support "
                     f"({', '.join(ops)}):")
        lines += [f"  {op} (node '{name}'): {why}" for op, name, why in unsupported]
    if problems:
        lines.append(f"{len(problems)} node(s) could not be imported:")
        lines += [f"  {op} (node '{name}'): {why}" for op, name, why in problems]
    return OnnxImportError(f"cannot import ONNX model {where}:\n" + "\n".join(lines),
                           [*unsupported, *problems], unsupported)


def _node(n, used: list[bool]) -> OnnxNode:
    name = n.name or (n.output[0] if n.output else n.op_type)
    return OnnxNode(n.op_type, name, list(n.input), list(n.output), _attrs(n), used)


def _run(b: Builder, node: OnnxNode, env: dict, handler) -> None:
    b.node, b.env = node, env  # (env: the scope, for an operator naming values by attribute)
    for i in node.inputs:
        if i not in env:
            raise LaminaError(f"input '{i}' is not defined by any earlier node, input or "
                              "initialiser")
    args = [env[i] for i in node.inputs]
    out = handler(b, node, *args)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    for i, oname in enumerate(node.outputs):
        if not oname:
            continue
        if i >= len(outs) or outs[i] is None:
            if node.used[i]:
                raise Unsupported(f"output {i} ('{oname}') is not supported")
            continue
        if isinstance(outs[i], np.generic):  # a folded scalar: constants are always arrays
            outs[i] = np.asarray(outs[i])
        env[oname] = outs[i]
        if isinstance(outs[i], np.ndarray):
            b.name_constant(outs[i], oname)


def _input_shapes(g, env: dict, input_shapes, where: str):
    """(ValueInfoProto, TensorType) of each graph input that is not an initialiser."""
    inputs = [i for i in g.input if i.name not in env]
    given = input_shapes
    if given is not None and not isinstance(given, dict):
        given = list(given)
        if len(given) != len(inputs):
            raise OnnxImportError(f"{where}: the model has {len(inputs)} input(s) "
                                  f"({', '.join(i.name for i in inputs)}), got "
                                  f"{len(given)} shape(s)")
        given = {i.name: s for i, s in zip(inputs, given)}
    elif given is not None:
        unknown = set(given) - {i.name for i in inputs}
        if unknown:
            raise OnnxImportError(f"{where}: input_shapes names unknown input(s) "
                                  f"{sorted(unknown)}; the inputs are "
                                  f"{[i.name for i in inputs]}")
    out, bad = [], []
    for i in inputs:
        tt = _tensor_type(i.type)
        if tt is None:
            bad.append(f"input '{i.name}' is not a tensor")
            continue
        dt = np_dtype(tt.elem_type)
        if dt is None or dt not in IR_DTYPES:
            bad.append(f"input '{i.name}' has element type {onnx_type_name(tt.elem_type)}")
            continue
        dims = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim] if tt.HasField("shape") else None
        shape = _resolve(i.name, dims, given.get(i.name) if given else None, where)
        try:
            out.append((i, TensorType(shape, dtype_name(dt))))
        except LaminaError as e:  # a negative or huge dimension
            bad.append(f"input '{i.name}': {e}")
    if bad:
        raise OnnxImportError(f"{where}: unsupported graph inputs: {'; '.join(bad)}",
                              unsupported=[("<input>", b, "dtype") for b in bad])
    return out


def input_dims(model) -> dict[str, list]:
    """Each run-time input's dimensions as the file declares them, by name: sizes, and the
    names of symbolic ones (`dim_param`s; "?" for an unnamed one)."""
    proto, _ = _read(model, external_data=False)
    inits = {t.name for t in proto.graph.initializer}
    out = {}
    for i in proto.graph.input:
        tt = _tensor_type(i.type)
        if i.name in inits or tt is None or not tt.HasField("shape"):
            continue
        out[i.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                       for d in tt.shape.dim]
    return out


def _tensor_type(t):
    """The tensor type of a graph input: a tensor's, or an optional tensor's (an optional
    input is fed, so present); None for sequences and the rest."""
    if t.HasField("optional_type"):
        t = t.optional_type.elem_type
    return t.tensor_type if t.HasField("tensor_type") else None


def signature(model) -> tuple[dict[int, dict[int, str]], list, list]:
    """What compile needs of the file's signature beyond the graph: the inputs' named
    symbolic dimensions (`dim_param`s; by input position, initialisers excluded, and axis)
    that one callable serves every size of, and the numpy dtypes of the inputs and outputs
    where the file declares a type Lamina computes in a wider one (float16 and others, see
    builder.WIDER; None elsewhere)."""
    known = _signatures.get(_file_key(model))
    if known is not None:
        return copy.deepcopy(known)  # the caller's to change
    return _signature_of(_read(model, external_data=False)[0])


# (compile time, issue 13) compile() asks for the signature of the file it has just
# imported: load_onnx keeps it, so the file (hundreds of MB for VGG-16) is not read twice.
_signatures: dict = {}


def _file_key(model):
    """A path's identity while unchanged (device, inode, size, modification time); None for
    anything else."""
    if not isinstance(model, (str, os.PathLike)):
        return None
    try:
        st = os.stat(model)
    except OSError:
        return None
    return os.path.abspath(model), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns


def _remember_signature(model, proto) -> None:
    key = _file_key(model)
    _signatures.clear()  # one entry: the file compile() is importing
    if key is not None:
        # a malformed file: signature() reads it again and says so
        with contextlib.suppress(Exception):
            _signatures[key] = _signature_of(proto)


def _signature_of(proto) -> tuple[dict[int, dict[int, str]], list, list]:
    inits = {t.name for t in proto.graph.initializer}
    inputs = [i for i in proto.graph.input if i.name not in inits]
    dims: dict[int, dict[int, str]] = {}
    for k, i in enumerate(inputs):
        shape = i.type.tensor_type.shape.dim if i.type.tensor_type.HasField("shape") else []
        named = {axis: re.sub(r"\W", "_", d.dim_param) for axis, d in enumerate(shape)
                 if not d.HasField("dim_value") and d.dim_param}
        if named:
            dims[k] = {axis: n if re.match(r"[A-Za-z_]", n) else f"d_{n}"
                       for axis, n in named.items()}

    def narrow(v):
        stored = stored_dtype(v.type.tensor_type.elem_type)
        return stored if stored is not None and np_dtype(
            v.type.tensor_type.elem_type) != stored else None

    return dims, [narrow(i) for i in inputs], [narrow(o) for o in proto.graph.output]


def _resolve(name: str, dims, given, where: str) -> tuple[int, ...]:
    if given is not None:
        given = tuple(int(d) for d in given)
        if dims is not None:
            if len(dims) != len(given):
                raise OnnxImportError(f"{where}: input '{name}' has rank {len(dims)} "
                                      f"({dims}), got shape {list(given)}")
            for k, (d, s) in enumerate(zip(dims, given)):
                if isinstance(d, int) and d != s:
                    raise OnnxImportError(f"{where}: input '{name}' dimension {k} is {d} in "
                                          f"the model, got {s} (shape {list(given)})")
        return given
    if dims is None:
        raise OnnxImportError(f"{where}: input '{name}' has no shape in the model; pass "
                              "input_shapes (or example inputs to compile)")
    symbolic = [f"{k} ('{d}')" for k, d in enumerate(dims) if not isinstance(d, int)]
    if symbolic:
        raise OnnxImportError(f"{where}: input '{name}' has symbolic dimension(s) "
                              f"{', '.join(symbolic)}; pass input_shapes (or example inputs "
                              "to compile) to fix their sizes")
    return tuple(dims)


def _live_nodes(g, env: dict, where: str):
    """(node, which outputs are read) for the nodes the graph outputs depend on, in a
    topological order that keeps the file's order where it is free to."""
    nodes = list(g.node)  # protobuf may wrap elements anew on each access: index them once
    producer = {o: k for k, n in enumerate(nodes) for o in n.output if o}
    names = [o.name for o in g.output]
    missing = [o for o in names if o not in producer and o not in env]
    if missing:
        raise OnnxImportError(f"{where}: graph output(s) {sorted(missing)} are produced by no "
                              "node, input or initialiser")
    reads = [_reads(n) for n in nodes]
    used, live, stack = set(names), set(), [producer[o] for o in names if o in producer]
    while stack:
        k = stack.pop()
        if k in live:
            continue
        live.add(k)
        for i in reads[k]:
            used.add(i)
            if i in producer:
                stack.append(producer[i])
    order, state = [], {}  # state: 1 while a node's inputs are visited, 2 once placed
    for root in sorted(live):
        todo = [(root, False)]
        while todo:  # iterative DFS: deep graphs must not hit the recursion limit
            k, expanded = todo.pop()
            if state.get(k) == 2:
                continue
            if expanded:
                state[k] = 2
                order.append(k)
                continue
            if state.get(k) == 1:
                raise OnnxImportError(f"{where}: the graph has a cycle through node "
                                      f"'{nodes[k].name or nodes[k].op_type}'")
            state[k] = 1
            todo.append((k, True))
            for i in reversed(reads[k]):
                if i in producer and state.get(producer[i]) != 2:
                    todo.append((producer[i], False))
    return [(nodes[k], [o in used for o in nodes[k].output]) for k in order]
