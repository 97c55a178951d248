"""Reverse-mode automatic differentiation: from a graph computing a scalar loss, build the
graph that returns the loss and its gradients with respect to chosen weights or inputs.

    graph @main(%x: f32[4,3], %y: f32[4,2]) -> (f32[]) {
      @fc.weight: f32[2,3]
      %fc: f32[4,2] = linear(%x, @fc.weight)
      %loss: f32[] = mse_loss(%fc, %y)
      return %loss
    }

becomes, with `grad(g, wrt=["fc.weight"])`:

    graph @main(%x: f32[4,3], %y: f32[4,2]) -> (f32[], f32[2,3]) {
      @fc.weight: f32[2,3]
      %fc: f32[4,2] = linear(%x, @fc.weight)
      %loss: f32[] = mse_loss(%fc, %y)
      %d.loss: f32[] = constant() {value=1.0}
      %d.loss_1: f32[] = constant() {value=0.125}
      %d.loss_2: f32[] = mul(%d.loss, %d.loss_1)
      %d.loss_3: f32[4,2] = sub(%fc, %y)
      %d.loss_4: f32[] = constant() {value=2.0}
      %d.loss_5: f32[] = mul(%d.loss_2, %d.loss_4)
      %d.loss_6: f32[4,2] = mul(%d.loss_3, %d.loss_5)
      %d.fc: f32[2,4] = transpose(%d.loss_6) {perm=[1,0]}
      %d.fc_1: f32[2,3] = matmul(%d.fc, %x)
      return %loss, %d.fc_1
    }

(fold_constants then folds the scalar chain). Each operator's rule (`OpDef.grad`,
declared beside the operator, see ir/ops/_grad.py for the signature) builds its input
gradients from registered operators, so the result is ordinary IR that prints, verifies,
runs on any backend and is optimised by the same passes. The pass walks the forward nodes
in reverse topological order, differentiates only nodes on a path from a requested value
to the loss, adds up the gradients of values read several times, and prunes whatever the
outputs do not need. Numeric contract: the gradients equal central finite differences of
the forward graph (tests/training check every rule in float64).
"""

from __future__ import annotations

from collections.abc import Iterable

import ir
from ir import LaminaError
from ir.tensor_type import FLOATS

from .eliminate_dead_code import eliminate_dead_code


class GradError(LaminaError):
    """A graph that cannot be differentiated as asked (names the node or value)."""


class _Builder:
    """What a gradient rule builds with: `Graph.call`, naming the new nodes after the
    forward node they differentiate (`d.conv1`, `d.conv1_1`, ...)."""

    __slots__ = ("base", "graph")

    def __init__(self, graph: ir.Graph, base: str):
        self.graph, self.base = graph, base

    def call(self, op: str, *inputs, name: str | None = None, **attrs):
        return self.graph.call(op, *inputs, name=name or self.base, **attrs)


def grad(graph: ir.Graph, wrt: Iterable[str] | None = None, inputs: Iterable[str] | bool = (),
         *, loss: int = 0, keep_outputs: bool = False) -> ir.Graph:
    """A new graph returning the loss (output `loss` of `graph`, a float scalar) and then
    its gradient with respect to each value named in `wrt` (weights or inputs; default:
    every float weight) and then in `inputs` (graph inputs; True: every float input), in
    that order. With `keep_outputs`, every original output is returned first, in place of
    the loss alone. A requested value the loss does not depend on gets zeros."""
    g = graph.copy()
    if not -len(g.outputs) <= loss < len(g.outputs):
        raise GradError(f"@{g.name} has {len(g.outputs)} output(s); there is no output {loss} "
                        "to differentiate")
    loss_v = g.outputs[loss]
    targets = _targets(g, wrt, inputs)
    results = gradients(g, loss_v, targets)
    g.outputs = [*(g.outputs if keep_outputs else [loss_v]), *results]
    eliminate_dead_code(g)
    ir.verify(g)
    return g


def gradients(g: ir.Graph, loss: ir.Value, targets: list[ir.Value]) -> list[ir.Value]:
    """Add to `g` the nodes computing the gradient of `loss` (a float scalar of `g`) with
    respect to each of `targets` (values of `g`), and return those gradients (zeros for a
    target the loss does not depend on). `grad` runs it on a copy; the ONNX importer's
    Gradient operator on the graph it is building."""
    if loss.shape != () or loss.dtype not in FLOATS:
        raise GradError(f"the loss {loss.ref} must be a float scalar, got {loss.type}")
    path = _on_path(g, targets, loss)
    grads: dict[int, ir.Value] = {
        id(loss): g.call("constant", value=1.0, dtype=loss.dtype, name=f"d.{loss.name}")}
    for node in reversed(list(g.nodes)):
        if not any(id(o) in grads for o in node.outputs):
            continue
        if not any(id(v) in path for v in node.inputs):
            continue  # nothing upstream of this node asks for a gradient
        _backward(g, node, grads, path)
    results = [grads.get(id(t)) for t in targets]
    return [r if r is not None else _zeros(_Builder(g, f"d.{t.name}"), t)
            for r, t in zip(results, targets)]


def _backward(g: ir.Graph, node: ir.Node, grads: dict, path: set) -> None:
    """Apply `node`'s rule and add its input gradients into `grads`."""
    where = f"node %{node.name} ({node.op})"
    rule = node.opdef.grad
    if rule is None:
        raise GradError(f"{where}: operator '{node.op}' has no gradient rule, and the loss "
                        "depends on a requested value through it")
    b = _Builder(g, f"d.{node.name}")
    out_grads = [grads[id(o)] if id(o) in grads else _zeros(b, o) for o in node.outputs]
    in_grads = list(rule(b, node, out_grads))
    if len(in_grads) != len(node.inputs):
        raise GradError(f"{where}: its gradient rule returned {len(in_grads)} gradient(s) for "
                        f"{len(node.inputs)} input(s)")
    for v, dv in zip(node.inputs, in_grads):
        if dv is None or id(v) not in path:
            continue
        if dv.type != v.type:
            raise GradError(f"{where}: gradient rule gave {dv.type} for input {v.ref} of type "
                            f"{v.type}")
        grads[id(v)] = dv if id(v) not in grads else b.call("add", grads[id(v)], dv)


def _zeros(b, v: ir.Value) -> ir.Value:
    return b.call("constant", value=0.0, shape=v.shape, dtype=v.dtype)


def _targets(g: ir.Graph, wrt, inputs) -> list[ir.Value]:
    values = {v.name: v for v in [*g.inputs, *g.params.values()]}
    if wrt is None:
        names = [n for n, v in g.params.items() if v.dtype in FLOATS]
    else:
        names = [wrt] if isinstance(wrt, str) else list(wrt)
    if inputs is True:
        names += [v.name for v in g.inputs if v.dtype in FLOATS]
    else:
        names += [inputs] if isinstance(inputs, str) else list(inputs)
    out = []
    for n in names:
        v = values.get(n)
        if v is None:
            known = ", ".join(v.ref for v in values.values()) or "none"
            raise GradError(f"@{g.name} has no input or weight named '{n}' (it has {known})")
        if v.dtype not in FLOATS:
            raise GradError(f"cannot differentiate with respect to {v.ref}: it is {v.type}, "
                            "not floating-point")
        if any(v is o for o in out):
            raise GradError(f"{v.ref} is requested twice")
        out.append(v)
    return out


def _on_path(g: ir.Graph, targets: list[ir.Value], loss: ir.Value) -> set[int]:
    """Ids of the float values that lie on a path from a target to the loss."""
    reach = {id(t) for t in targets}
    for node in g.nodes:
        if any(id(v) in reach for v in node.inputs):
            reach.update(id(o) for o in node.outputs if o.dtype in FLOATS)
    needed = {id(loss)} & reach
    for node in reversed(g.nodes):
        if any(id(o) in needed for o in node.outputs):
            needed.update(id(v) for v in node.inputs if id(v) in reach)
    return needed


