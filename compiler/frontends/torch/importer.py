"""PyTorch import: a `torch.nn.Module` -> ir.Graph, through torch.export.

    graph = from_torch(model, torch.randn(1, 3, 224, 224))

The module is captured with `torch.export.export` and decomposed to the Core ATen operator
set (`run_decompositions()`), then the exported program is walked node by node: each ATen
operator has one small function in the operator table (`ops/`, by family), named like the
operator, that builds registry operators through a `Builder`. Parameters and buffers become
the graph's weights under their state_dict names (`@layer1.0.conv1.weight`), and nodes are
named after the module they came from (`%layer1.0.conv1`), read from the `nn_module_stack`
torch records on each node. Whatever is computed only from constants (parameters, buffers,
literals: attention masks, position tables) is evaluated at import time with the registry's
numpy semantics.

Shapes are static: the graph takes the example inputs' sizes. `dynamic_shapes` is handed to
torch.export (so that a model whose code would otherwise be specialised to one size can be
captured); the graph is still built for the example sizes.

Everything Lamina cannot lower is collected and reported at once by one `TorchImportError`
listing each ATen operator with its count and the module paths using it. A module with
submodules in training mode (dropout, batch norm) is exported in eval mode, with a
`TorchImportWarning` naming them; the module's own flags are left as they were.
"""

from __future__ import annotations

import contextlib
import operator
import re
import warnings
from collections import defaultdict

import numpy as np

import ir
from ir import LaminaError
from ir.tensor_type import dtype_name

from .builder import (
    IR_DTYPES,
    Builder,
    TorchImportError,
    TorchImportWarning,
    TorchNode,
    Unsupported,
    check_type,
    type_of,
)
from .ops import HANDLERS

# bookkeeping operators of exported programs: they compute nothing a graph needs
IGNORED = {"_assert_tensor_metadata", "_assert_scalar", "_assert_async",
           "_functional_assert_async", "sym_constrain_range", "sym_constrain_range_for_size"}


def torch_module():
    """The torch package, imported on first use (it is an optional dependency)."""
    try:
        import torch
    except ImportError:
        raise ir.MissingDependencyError('PyTorch is not installed; install it with: pip '
                                        'install "lamina[torch]"') from None
    return torch


def from_torch(module, *example_inputs, dynamic_shapes=None) -> ir.Graph:
    """Import a `torch.nn.Module` as an ir.Graph, for inference, at the example inputs'
    shapes (numpy arrays or torch tensors).

    Raises TorchImportError listing every ATen operator Lamina cannot lower (with counts and
    the module paths using it); warns (TorchImportWarning) about submodules in training
    mode, which are imported as in eval mode."""
    torch = torch_module()
    if not isinstance(module, torch.nn.Module):
        raise TorchImportError(f"from_torch takes a torch.nn.Module, got "
                               f"{type(module).__name__}")
    args = tuple(_tensor(torch, x, k) for k, x in enumerate(example_inputs))
    what = type(module).__name__
    training = training_layers(torch, module)
    with _eval_mode(module):
        program = export(torch, module, args, dynamic_shapes, what)
    graph = import_program(program, what)
    if training:
        warnings.warn(TorchImportWarning(
            f"from_torch: {what} has layers in training mode, imported for inference (as "
            f"after .eval()): {', '.join(training)}; call .eval() first to silence this"),
            stacklevel=2)
    return graph


def training_layers(torch, module) -> list[str]:
    """Submodules in training mode that behave differently there: dropout, batch norm,
    and layers with a dropout rate (attention, recurrent layers, transformer layers)."""
    nn = torch.nn
    differ = (nn.modules.dropout._DropoutNd, nn.modules.batchnorm._BatchNorm)
    out = []
    for path, m in module.named_modules():
        if not m.training:
            continue
        rate = getattr(m, "dropout", 0)
        if isinstance(m, differ) or (isinstance(rate, (int, float)) and rate > 0):
            if isinstance(m, nn.modules.dropout._DropoutNd) and m.p == 0:
                continue
            out.append(f"'{path or '<root>'}' ({type(m).__name__})")
    return out


@contextlib.contextmanager
def _eval_mode(module):
    flags = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, flag in flags:
            m.training = flag


def _tensor(torch, x, k: int):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (int, float, bool)):
        return x
    a = np.asarray(x)
    if a.dtype == object:
        raise TorchImportError(f"example input {k} is not an array or tensor: "
                               f"{type(x).__name__}")
    return torch.from_numpy(np.ascontiguousarray(a))


def export(torch, module, args, dynamic_shapes, what: str):
    """The module's exported program, decomposed to Core ATen operators."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecations
        try:
            program = torch.export.export(module, args, dynamic_shapes=dynamic_shapes)
            return program.run_decompositions(_decompositions(torch))
        except Exception as e:  # torch raises many types for code it cannot capture
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise TorchImportError(f"torch.export could not capture {what}: "
                                   f"{type(e).__name__}: {first}"[:2000]) from e


def _decompositions(torch):
    """Core ATen's decompositions, except those of operators the table maps whole: LSTM and
    GRU (decomposed, they unroll into a few operators per time step and gate)."""
    table = torch.export.default_decompositions()
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        table.pop(op, None)
    return table


# ---- the walk --------------------------------------------------------------------------------
def import_program(program, what: str = "the module") -> ir.Graph:
    """An exported program (Core ATen) as an ir.Graph; raises TorchImportError listing
    every operator that cannot be lowered."""
    import torch

    name = re.sub(r"[^A-Za-z0-9_]", "_", what) or "main"
    graph = ir.Graph(name if re.match(r"[A-Za-z_]", name) else "main")
    walk = _Walk(torch, Builder(graph), program)
    for node in program.graph.nodes:
        walk.node(node)
    outputs = walk.outputs()
    if walk.unsupported or walk.problems:
        raise _error(what, walk)
    graph.outputs = outputs
    ir.verify(graph)
    return graph


class _Walk:
    """Imports nodes in order, collecting what fails instead of stopping at it: a failed
    node's outputs are poisoned, and nodes reading them are skipped silently."""

    def __init__(self, torch, b: Builder, program):
        self.torch, self.b, self.program = torch, b, program
        self.env: dict = {}
        self.poisoned: set = set()
        self.unsupported: dict = defaultdict(lambda: defaultdict(int))  # (op, why) -> uses
        self.problems: list[tuple[str, str, str]] = []
        self.specs = {s.arg.name: s for s in program.graph_signature.input_specs
                      if hasattr(s.arg, "name")}

    def node(self, node) -> None:
        if node.op == "placeholder":
            self.placeholder(node)
        elif node.op == "call_function":
            if any(i in self.poisoned for i in node.all_input_nodes):
                self.poisoned.add(node)
                self.check_mapped(node)  # every unmapped operator is listed, wherever
                return
            self.call(node)
        elif node.op == "get_attr":
            self.env[node] = _array(self.torch, getattr(self.program.graph_module,
                                                        node.target))
        elif node.op == "output":
            self.result = node

    # placeholders: parameters, buffers and constants become weights; inputs, inputs
    def placeholder(self, node) -> None:
        spec = self.specs.get(node.name)
        kind = spec.kind.name if spec is not None else "USER_INPUT"
        if kind in ("PARAMETER", "BUFFER", "CONSTANT_TENSOR"):
            t = self.program.state_dict.get(spec.target)
            if t is None:
                t = self.program.constants.get(spec.target)
            try:
                self.env[node] = _array(self.torch, t)
            except Unsupported as e:
                self.fail(node, f"<{kind.lower()}>", spec.target, str(e))
                return
            self.b.names[id(self.env[node])] = spec.target
            self.b.keep(self.env[node])
            return
        val = node.meta.get("val")
        if not isinstance(val, self.torch.Tensor):
            self.env[node] = _concrete(val)  # a number fixed at export
            return
        dt = _np_dtype(self.torch, val.dtype)
        if dt is None or dt not in IR_DTYPES:
            self.fail(node, "<input>", node.name, f"a {val.dtype} input")
            return
        shape = [_concrete(d) for d in val.shape]
        g = self.b.graph
        self.env[node] = g.add_input(g.fresh_name(node.name), type_of(shape, dt))

    def call(self, node) -> None:
        target = node.target
        if getattr(target, "__module__", None) == "_operator":
            self.python(node)
            return
        op, overload, ns = _op_name(target)
        if ns == "aten" and op in IGNORED:
            return
        module = module_path(node)
        if ns == "aten" and op in ("sym_size", "sym_numel", "sym_stride"):
            self.env[node] = _concrete(node.meta.get("val"))
            return
        key = f"{ns}.{op}.{overload}" if ns else str(target)
        fn = HANDLERS.get(op) if ns == "aten" else None
        if fn is None:
            self.fail(node, key, module, "no Lamina mapping for this operator")
            return
        tn = TorchNode(op, overload, node.name, module, *self.out_types(node))
        self.b.node = tn
        try:
            args = [self.arg(a) for a in node.args]
            kwargs = {k: self.arg(v) for k, v in node.kwargs.items()}
            out = fn(self.b, tn, *args, **kwargs)
            outs = out if isinstance(out, tuple) else (out,)
            for k, o in enumerate(outs):
                check_type(o, tn, k)
            self.env[node] = out
        except Unsupported as e:
            self.fail(node, key, module, str(e))
        except Exception as e:  # a node's fault, reported with its name
            msg = str(e) if isinstance(e, LaminaError) else f"{type(e).__name__}: {e}"
            self.problems.append((key, f"{node.name}' in '{module or '<root>'}", msg))
            self.poisoned.add(node)

    def check_mapped(self, node) -> None:
        """Report a node's operator if the table has no function for it."""
        op, overload, ns = _op_name(node.target)
        if getattr(node.target, "__module__", None) == "_operator" or (
                ns == "aten" and (op in HANDLERS or op in IGNORED or op.startswith("sym_"))):
            return
        key = f"{ns}.{op}.{overload}" if ns else str(node.target)
        self.fail(node, key, module_path(node), "no Lamina mapping for this operator")

    def python(self, node) -> None:
        """operator.getitem on a multi-output node; integer arithmetic on sizes."""
        args = [self.arg(a) for a in node.args]
        if node.target is operator.getitem and isinstance(args[0], (tuple, list)):
            value = args[0][args[1]]
            if value is None:  # an output the operator function does not build
                src = node.args[0]
                op, overload, ns = _op_name(src.target)
                self.fail(node, f"{ns}.{op}.{overload}", module_path(src),
                          f"its output {args[1]} is read, and Lamina does not compute it")
                return
            self.env[node] = value
            return
        self.env[node] = node.target(*args)

    def arg(self, a):
        fx = self.torch.fx
        if isinstance(a, fx.Node):
            return self.env[a]
        if isinstance(a, (list, tuple)):
            return type(a)(self.arg(e) for e in a)
        if isinstance(a, self.torch.dtype):
            dt = _np_dtype(self.torch, a)
            if dt is None:
                raise Unsupported(f"dtype {a}")
            return dt
        if isinstance(a, (self.torch.SymInt, self.torch.SymFloat, self.torch.SymBool)):
            return _concrete(a)
        return a

    def out_types(self, node):
        val = node.meta.get("val")
        vals = val if isinstance(val, (tuple, list)) else [val]
        shapes, dtypes = [], []
        for v in vals:
            if isinstance(v, self.torch.Tensor):
                shapes.append(tuple(_concrete(d) for d in v.shape))
                dtypes.append(_np_dtype(self.torch, v.dtype))
            else:
                shapes.append(None)
                dtypes.append(None)
        return shapes, dtypes

    def fail(self, node, key: str, module: str, why: str) -> None:
        self.unsupported[(key, why)][module or "<root>"] += 1
        self.poisoned.add(node)

    def outputs(self) -> list[ir.Value]:
        specs = self.program.graph_signature.output_specs
        results = list(self.result.args[0])
        values = []
        for spec, res in zip(specs, results):
            kind = spec.kind.name
            if kind != "USER_OUTPUT":
                self.fail(res, f"<{kind.lower()}>", getattr(spec, "target", "") or "",
                          "the module updates a buffer or input in place")
                continue
            if isinstance(res, self.torch.fx.Node) and res in self.poisoned:
                continue
            value = self.arg(res)
            self.b.node = TorchNode("output", "", "output", "output")
            try:
                values.append(self.b.value(value if not isinstance(value, (int, float, bool))
                                           else np.asarray(value)))
            except (Unsupported, TypeError) as e:
                self.problems.append(("<output>", "output", str(e)))
        return values


# ---- helpers ---------------------------------------------------------------------------------
def _op_name(target) -> tuple[str, str, str]:
    """(operator, overload, namespace) of an OpOverload: ("convolution", "default", "aten");
    ("", "", "") for anything else (a higher-order operator)."""
    schema = getattr(target, "_schema", None)
    if schema is None:
        return str(getattr(target, "__name__", target)), "", ""
    ns, _, op = schema.name.partition("::")
    return op, schema.overload_name or "default", ns


def module_path(node) -> str:
    """The path of the innermost module a node came from ("" for the root module)."""
    stack = node.meta.get("nn_module_stack") or {}
    if not stack:
        return ""
    path = list(stack.values())[-1][0]
    return re.sub(r"@\d+", "", path)


def _concrete(v):
    """A size torch may hold symbolically, as the int of the example inputs."""
    if v is None or isinstance(v, (int, float, bool)):
        return v
    hint = getattr(getattr(v, "node", None), "hint", None)
    if hint is None:
        raise Unsupported(f"a size known only at run time ({v})")
    return hint


_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "int32": np.int32,
           "bool": np.bool_, "int16": np.int16, "int8": np.int8, "uint8": np.uint8,
           "float16": np.float16}


def _np_dtype(torch, dtype) -> np.dtype | None:
    name = str(dtype).removeprefix("torch.")
    return np.dtype(_DTYPES[name]) if name in _DTYPES else None


def _array(torch, t) -> np.ndarray:
    """A parameter's or buffer's data, copied: the graph must not change if the module is
    trained afterwards."""
    if _np_dtype(torch, t.dtype) not in IR_DTYPES:
        raise Unsupported(f"a {t.dtype} tensor (Lamina has "
                          f"{', '.join(dtype_name(d) for d in IR_DTYPES)})")
    return np.array(t.detach().cpu().numpy(), copy=True)


def _error(what: str, walk: _Walk) -> TorchImportError:
    lines = []
    by_op: dict[str, dict[str, int]] = {}
    if walk.unsupported:
        ops = sorted({key for key, _ in walk.unsupported})
        lines.append(f"{len(ops)} ATen operator(s) that Lamina cannot lower "
                     f"({', '.join(ops)}):")
        for (key, why), uses in sorted(walk.unsupported.items()):
            total = sum(uses.values())
            where = ", ".join(f"{m} ({c})" if c > 1 else m for m, c in sorted(uses.items()))
            lines.append(f"  {key} x{total}: {why}; used by {where}")
            merged = by_op.setdefault(key, {})
            for m, c in uses.items():
                merged[m] = merged.get(m, 0) + c
    if walk.problems:
        lines.append(f"{len(walk.problems)} node(s) could not be imported:")
        lines += [f"  {op} (node '{node}'): {why}" for op, node, why in walk.problems]
    return TorchImportError(f"cannot import {what}:\n" + "\n".join(lines), by_op,
                            walk.problems)
