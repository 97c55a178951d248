"""ONNX control flow (If, Loop, Scan), resolved at import into Lamina's static dataflow graph.

Lamina's IR has no control flow, so the importer takes it apart while it imports:

- `If` with a condition known at import time: the branch it takes, inlined. With a condition
  computed at run time: both branches, each output chosen by `where` on the 0-d condition
  (so both branches must give it the same shape and dtype; otherwise refused).
- `Loop`: unrolled, one copy of the body per iteration, when the number of iterations is
  known at import (the trip count and the condition constant, or folded from shapes). A
  condition computed at run time is still honoured without scan outputs: the body runs for
  every possible iteration and `where` keeps the carried values once it has turned false.
  Scan outputs (one slice per iteration) are stacked along a new axis 0.
- `Scan` (opset 8's batched form and opset 9's axes and directions): unrolled over its
  sequence length, which static shapes always know.

Each body runs in a scope of its own (a ChainMap over the enclosing one) that binds its
inputs and initialisers, so it sees every value of the graphs around it (ONNX's lexical
scoping) and its names can be bound anew in each iteration. Its nodes go through the same
walk as the main graph, so control flow nests. A refusal says which node and why; one that
needs a run-time value ("computed at run time") is the kind the conformance harness retries
with constant inputs. Unrolling stops at MAX_UNROLL iterations and MAX_UNROLLED_NODES node
copies, with an error saying so, rather than building a graph nobody can compile.
"""

from __future__ import annotations

from collections import ChainMap
from weakref import WeakKeyDictionary

import numpy as np

from ir import LaminaError, TensorType

from .builder import OnnxNode, Unsupported, np_dtype, read_array

MAX_UNROLL = 4096  # iterations one Loop or Scan may be unrolled into
MAX_UNROLLED_NODES = 100_000  # body nodes one Loop or Scan may be unrolled into, all copies

# Builder -> {initialiser name: array} of the subgraphs read so far: a body nested in a loop
# is read once per outer iteration, but its weights are counted (and become graph weights)
# once. ONNX names are unique across the whole model (importer._check_names).
_INITS: WeakKeyDictionary = WeakKeyDictionary()


class _Refused(Exception):
    """Why a control-flow node is not imported: `unsupported` when Lamina lacks what it asks
    for, otherwise the node is malformed."""

    def __init__(self, why: str, unsupported: bool = True):
        super().__init__(why)
        self.unsupported = unsupported


class _Failed(Exception):
    """A body node failed: the walk has recorded it (or it read a value already failed)."""


def reads(node) -> list[str]:
    """The names a node reads: its inputs, and what its subgraphs (branches, bodies) read
    from the enclosing scope."""
    names = list(node.input)
    for a in node.attribute:
        for g in [a.g] if a.HasField("g") else list(a.graphs):
            inner = {i.name for i in g.input} | {t.name for t in g.initializer}
            for m in g.node:
                names += [i for i in reads(m) if i not in inner]
                inner.update(m.output)
            names += [o.name for o in g.output if o.name not in inner]
    return names


# ---- a body, imported as often as it runs ----------------------------------------------------
class _Body:
    """One subgraph attribute of a node: read once, imported once per run."""

    def __init__(self, walk, node: OnnxNode, key: str):
        import onnx

        g = node.attrs.get(key)
        if g is None:
            raise _Refused(f"the node has no {key} attribute", unsupported=False)
        if not isinstance(g, onnx.GraphProto):
            raise _Refused(f"attribute '{key}' must be a graph, got {type(g).__name__}",
                           unsupported=False)
        self.key, self.graph = key, g
        self.inputs = [i.name for i in g.input]
        self.outputs = [o.name for o in g.output]
        self.inits, seen = {}, _INITS.setdefault(walk.b, {})
        for t in g.initializer:
            if t.name not in seen:
                seen[t.name] = read_array(t, "initialiser")
                walk.b.file_bytes += seen[t.name].nbytes
            self.inits[t.name] = seen[t.name]
        self.nodes = _live(g)
        # a Constant's tensor, read once and shared by every run: one weight, not one per
        # iteration (the builder makes one graph value per array)
        self.constants: dict[str, np.ndarray] | None = None

    def declared(self, k: int) -> TensorType | None:
        """The type the body declares for output k, where it gives a full static one."""
        t = self.graph.output[k].type
        if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
            return None
        dims = t.tensor_type.shape.dim
        dt = np_dtype(t.tensor_type.elem_type)
        if dt is None or not all(d.HasField("dim_value") for d in dims):
            return None
        try:
            return TensorType(tuple(d.dim_value for d in dims), dt.name)
        except LaminaError:
            return None

    def run(self, walk, args: list, inside: str) -> list:
        """The body's outputs with its inputs bound to `args`. _Failed when a node of it
        fails (recorded by the walk, with `inside` after its name)."""
        scope = ChainMap(dict(self.inits), walk.env)
        nodes = self.nodes
        if self.constants is not None:  # later runs: the Constants' arrays of the first
            scope.maps[0].update(self.constants)
            nodes = [(n, used) for n, used in nodes if n.output[0] not in self.constants]
        scope.maps[0].update(zip(self.inputs, args))
        sub = type(walk)(walk.b, scope, walk.handlers)
        sub.poisoned = set(walk.poisoned)  # values that failed outside stay failed inside
        sub.nodes(nodes, inside)
        if self.constants is None:
            self.constants = {n.output[0]: scope.maps[0][n.output[0]] for n, _ in nodes
                              if n.op_type == "Constant" and n.output[0] in scope.maps[0]
                              and isinstance(scope.maps[0][n.output[0]], np.ndarray)}
        walk.unsupported += sub.unsupported
        walk.problems += sub.problems
        if sub.unsupported or sub.problems or any(o in sub.poisoned for o in self.outputs):
            raise _Failed
        missing = [o for o in self.outputs if not o or o not in scope or scope[o] is None]
        if missing:
            raise _Refused(f"output '{missing[0]}' of its {self.key} is computed by no node "
                           "of it and no value around it", unsupported=False)
        return [scope[o] for o in self.outputs]


def _live(g) -> list:
    """(node, which outputs are read) for the nodes a subgraph's outputs depend on, in the
    file's order (ONNX requires subgraphs sorted)."""
    needed = {o.name for o in g.output}
    live = []
    for n in reversed(list(g.node)):
        used = [o in needed for o in n.output]
        if any(used):
            live.append((n, used))
            needed.update(reads(n))
    return live[::-1]


# ---- the walk's entry point ----------------------------------------------------------------
def import_control(walk, n, node: OnnxNode, label: str, inside: str) -> None:
    """Import control-flow node `node` (ONNX proto `n`) into `walk`, binding its outputs;
    what fails is recorded on the walk, and the node's outputs poisoned."""
    try:
        outs = CONTROL[node.op](walk, node, inside)
    except _Failed:
        walk.poisoned.update(node.outputs)
        return
    except _Refused as e:
        (walk.unsupported if e.unsupported else walk.problems).append((node.op, label, str(e)))
        walk.poisoned.update(node.outputs)
        return
    except Unsupported as e:  # a constant of a dtype Lamina lacks, selected or stacked
        walk.unsupported.append((node.op, label, str(e)))
        walk.poisoned.update(node.outputs)
        return
    except Exception as e:  # a builder error on this node's own operators
        msg = str(e) if isinstance(e, LaminaError) else f"{type(e).__name__}: {e}"
        walk.problems.append((node.op, label, msg))
        walk.poisoned.update(node.outputs)
        return
    for name, value in zip(node.outputs, outs):
        if name and value is not None:
            walk.env[name] = value
            if isinstance(value, np.ndarray):
                walk.b.name_constant(value, name)


def _input(walk, node: OnnxNode, k: int, what: str):
    """Input k of the node (None where it is left out), checked to be defined."""
    if k >= len(node.inputs) or not node.inputs[k]:
        return None
    name = node.inputs[k]
    if name not in walk.env:
        raise _Refused(f"its {what} '{name}' is not defined by any earlier node, input or "
                       "initialiser", unsupported=False)
    return walk.env[name]


def _type(x) -> TensorType:
    return TensorType.of(x) if isinstance(x, np.ndarray) else x.type


# ---- If ------------------------------------------------------------------------------------
def _if(walk, node: OnnxNode, inside: str) -> list:
    branches = [_Body(walk, node, key) for key in ("then_branch", "else_branch")]
    for body in branches:
        if len(body.outputs) != len(node.outputs):
            raise _Refused(f"its {body.key} has {len(body.outputs)} output(s), the node "
                           f"{len(node.outputs)}", unsupported=False)
    if len(node.inputs) != 1 or not node.inputs[0]:
        raise _Refused(f"an If takes one input, its condition; the node has "
                       f"{'no condition' if not any(node.inputs) else node.inputs}",
                       unsupported=False)
    cond = _input(walk, node, 0, "condition")
    size = int(np.prod(_type(cond).shape))
    if size != 1:
        raise _Refused(f"its condition '{node.inputs[0]}' holds {size} elements, not one",
                       unsupported=False)
    if isinstance(cond, np.ndarray):  # known now: the branch it takes, inlined
        body = branches[0 if bool(cond.reshape(-1)[0]) else 1]
        return body.run(walk, [], f"{inside} (in the branch If '{node.name}' takes)")
    then, other = (body.run(walk, [], f"{inside} (in the {body.key} of If '{node.name}')")
                   for body in branches)
    b = walk.b
    b.node = node
    cond = b.reshape(cond, ())
    if cond.dtype != "bool":
        cond = b.call("cast", cond, dtype="bool")
    outs = []
    for k, (t, e) in enumerate(zip(then, other)):
        if k < len(node.used) and not node.used[k]:
            outs.append(None)
            continue
        tt, te = _type(t), _type(e)
        if tt != te:
            raise _Refused(f"a condition computed at run time, and its branches give output "
                           f"{k} ('{node.outputs[k]}') different types ({tt} in then_branch, "
                           f"{te} in else_branch): Lamina selects between branches with "
                           "`where`, which needs one shape and dtype")
        outs.append(t if t is e else b.call("where", cond, t, e))
    return outs


# ---- Loop ----------------------------------------------------------------------------------
def _loop(walk, node: OnnxNode, inside: str) -> list:
    body = _Body(walk, node, "body")
    trips = _input(walk, node, 0, "trip count")
    cond = _input(walk, node, 1, "condition")
    carried = [_input(walk, node, 2 + k, "loop-carried input")
               for k in range(len(node.inputs) - 2)]
    n_carried = len(carried)
    n_scan = len(node.outputs) - n_carried
    if len(body.inputs) != 2 + n_carried or len(body.outputs) != 1 + n_carried + n_scan \
            or n_scan < 0 or any(v is None for v in carried):
        raise _Refused(f"its body takes {len(body.inputs)} input(s) and gives "
                       f"{len(body.outputs)}; with {n_carried} loop-carried value(s) and "
                       f"{len(node.outputs)} output(s) it must take {2 + n_carried} and give "
                       f"{1 + len(node.outputs)}", unsupported=False)
    if trips is not None and not isinstance(trips, np.ndarray):
        raise _Refused("its trip count is computed at run time; Lamina unrolls loops at "
                       "import and needs it constant")
    limit = None if trips is None else max(int(trips.reshape(-1)[0]), 0)
    if limit is None and cond is None:
        raise _Refused("it has neither a trip count nor a condition: it never ends")
    if cond is None:
        cond = np.asarray(True)
        _check_unroll(limit, len(body.nodes), "its trip count")
    scans: list[list] = [[] for _ in range(n_scan)]
    running = None  # None while every iteration so far surely ran; else a run-time bool
    i = 0
    while limit is None or i < limit:
        if isinstance(cond, np.ndarray):
            if not bool(cond.reshape(-1)[0]):
                break
        else:
            running = _runs(walk, node, running, cond, n_scan, limit, len(body.nodes))
        _check_iteration(i, len(body.nodes), limit)
        outs = body.run(walk, [np.asarray(i, np.int64), cond, *carried],
                        f"{inside} (in iteration {i} of Loop '{node.name}')")
        walk.b.node = node
        new = outs[1:1 + n_carried]
        if running is not None:
            new = [_keep(walk, node, running, v, old, k) for k, (v, old) in
                   enumerate(zip(new, carried))]
        carried, cond = new, outs[0]
        for k, v in enumerate(outs[1 + n_carried:]):
            scans[k].append(v)
        i += 1
    walk.b.node = node
    return [*carried, *(_stack(walk, node, body, n_carried + 1 + k, s, 0)
                        for k, s in enumerate(scans))]


def _runs(walk, node: OnnxNode, running, cond, n_scan: int, limit, body_nodes: int):
    """The run-time flag of whether this iteration runs, given the condition computed at
    run time that it checks; refused where the loop's results would have a run-time size."""
    if n_scan:
        raise _Refused("its condition is computed at run time, so its number of iterations, "
                       f"the length of its {n_scan} scan output(s), is known only at run "
                       "time; Lamina's shapes are static")
    if limit is None:
        raise _Refused("its condition is computed at run time and it has no trip count: "
                       "Lamina unrolls loops at import and needs a bound on the iterations")
    if running is None and (limit > MAX_UNROLL or limit * body_nodes > MAX_UNROLLED_NODES):
        raise _Refused(f"its condition is computed at run time, so all {limit} possible "
                       f"iterations of its body of {body_nodes} node(s) would be unrolled, "
                       f"past Lamina's limit of {MAX_UNROLL} iterations and "
                       f"{MAX_UNROLLED_NODES} node copies")
    b = walk.b
    b.node = node
    flag = b.reshape(cond, ())
    if _type(flag).dtype != "bool":
        flag = b.call("cast", flag, dtype="bool")
    return flag if running is None else b.call("where", running, flag, np.asarray(False))


def _keep(walk, node: OnnxNode, running, new, old, k: int):
    """The carried value after an iteration that runs only where `running` holds."""
    if _type(new) != _type(old):
        raise _Refused(f"its condition is computed at run time, and loop-carried value {k} "
                       f"changes type in an iteration ({_type(old)} to {_type(new)}): the "
                       "value after the loop would have a run-time shape")
    return new if new is old else walk.b.call("where", running, new, old)


def _check_unroll(iterations: int, body_nodes: int, what: str) -> None:
    if iterations > MAX_UNROLL or iterations * body_nodes > MAX_UNROLLED_NODES:
        raise _Refused(f"{what} asks for {iterations} iterations of a body of {body_nodes} "
                       f"node(s); Lamina unrolls loops at import, at most {MAX_UNROLL} "
                       f"iterations and {MAX_UNROLLED_NODES} node copies")


def _check_iteration(i: int, body_nodes: int, limit) -> None:
    if i < MAX_UNROLL and (i + 1) * body_nodes <= MAX_UNROLLED_NODES:
        return
    if limit is not None:
        raise _Refused(f"its trip count asks for {limit} iterations of a body of {body_nodes} "
                       f"node(s), and its condition had not ended it after {i}; Lamina "
                       f"unrolls loops at import, at most {MAX_UNROLL} iterations and "
                       f"{MAX_UNROLLED_NODES} node copies")
    raise _Refused(f"it did not end within {i} iterations (body of {body_nodes} node(s)); "
                   f"Lamina unrolls loops at import, at most {MAX_UNROLL} iterations and "
                   f"{MAX_UNROLLED_NODES} node copies")


def _stack(walk, node: OnnxNode, body: _Body, k: int, items: list, axis: int):
    """The per-iteration values of scan output k, stacked along a new axis `axis`."""
    if not items:
        t = body.declared(k)
        if t is None:
            raise _Refused(f"it runs no iteration, and its body declares no static type for "
                           f"scan output '{body.outputs[k]}': the empty result's shape is "
                           "unknown")
        shape = list(t.shape)
        shape.insert(axis, 0)
        return np.zeros(shape, t.np_dtype)
    first = _type(items[0])
    for j, v in enumerate(items):
        if _type(v) != first:
            raise _Refused(f"scan output '{body.outputs[k]}' is {first} in iteration 0 and "
                           f"{_type(v)} in iteration {j}: stacked, they need one type",
                           unsupported=False)
    shape = list(first.shape)
    axis = axis + len(shape) + 1 if axis < 0 else axis
    if not 0 <= axis <= len(shape):
        raise _Refused(f"scan output axis {axis} is out of range for scan output "
                       f"'{body.outputs[k]}' of rank {len(shape)}", unsupported=False)
    shape.insert(axis, 1)
    b = walk.b
    b.node = node
    parts = [b.reshape(v, shape) for v in items]
    return parts[0] if len(parts) == 1 else b.call("concat", *parts, axis=axis)


# ---- Scan ----------------------------------------------------------------------------------
def _scan(walk, node: OnnxNode, inside: str) -> list:
    body = _Body(walk, node, "body")
    n_in = node.get("num_scan_inputs")
    if n_in is None or n_in < 1:
        raise _Refused("num_scan_inputs must be given, at least 1", unsupported=False)
    batched = walk.b.opset < 9  # opset 8: sequence_lens first, a batch axis 0 on everything
    first = 1 if batched else 0
    args = [_input(walk, node, k, "input") for k in range(first, len(node.inputs))]
    n_state = len(args) - n_in
    n_out = len(node.outputs) - n_state
    if n_state < 0 or n_out < 0 or any(a is None for a in args) \
            or len(body.inputs) != len(args) or len(body.outputs) != len(node.outputs):
        raise _Refused(f"with {len(args)} state and scan input(s), {n_in} of them scanned, "
                       f"and {len(node.outputs)} output(s), its body must take {len(args)} "
                       f"input(s) and give {len(node.outputs)}; it takes {len(body.inputs)} "
                       f"and gives {len(body.outputs)}", unsupported=False)
    states, xs = args[:n_state], args[n_state:]
    if batched:
        return _batched(walk, node, body, states, xs, n_out, inside)
    in_axes = _attr_list(node, "scan_input_axes", n_in, 0)
    in_dirs = _attr_list(node, "scan_input_directions", n_in, 0)
    out_axes = _attr_list(node, "scan_output_axes", n_out, 0)
    out_dirs = _attr_list(node, "scan_output_directions", n_out, 0)
    states, scans = _unroll_scan(walk, node, body, states, xs, in_axes, in_dirs, inside)
    walk.b.node = node
    return [*states, *(_stack(walk, node, body, n_state + k, s[::-1] if d else s, a)
                       for k, (s, a, d) in enumerate(zip(scans, out_axes, out_dirs)))]


def _attr_list(node: OnnxNode, key: str, n: int, default: int) -> list[int]:
    values = node.get(key)
    if values is None:
        return [default] * n
    if len(values) != n:
        raise _Refused(f"attribute {key} has {len(values)} entries for {n} tensors",
                       unsupported=False)
    return [int(v) for v in values]


def _unroll_scan(walk, node: OnnxNode, body: _Body, states, xs, axes, dirs, inside: str,
                 batch: str = ""):
    """(final states, each scan output's per-iteration values) of the body run over the
    scan inputs `xs` along their `axes`, in their directions (1: from the end)."""
    axes = [a + len(_type(x).shape) if a < 0 else a for x, a in zip(xs, axes)]
    for k, (x, a) in enumerate(zip(xs, axes)):
        if not 0 <= a < len(_type(x).shape):
            raise _Refused(f"scan input axis {a} is out of range for scan input {k} "
                           f"({_type(x)})", unsupported=False)
    lengths = {_type(x).shape[a] for x, a in zip(xs, axes)}
    if len(lengths) != 1:
        raise _Refused(f"its scan inputs have different lengths along their scan axes "
                       f"({sorted(lengths)})", unsupported=False)
    length = lengths.pop()
    _check_unroll(length, len(body.nodes), "its sequence length")
    scans: list[list] = [[] for _ in range(len(body.outputs) - len(states))]
    b = walk.b
    for t in range(length):
        b.node = node
        slices = [_take(b, x, a, length - 1 - t if d else t) for x, a, d in zip(xs, axes, dirs)]
        outs = body.run(walk, [*states, *slices],
                        f"{inside} (in step {t}{batch} of Scan '{node.name}')")
        states = outs[:len(states)]
        for k, v in enumerate(outs[len(states):]):
            scans[k].append(v)
    return states, scans


def _take(b, x, axis: int, index: int):
    """x[..., index, ...] along `axis`, that axis dropped."""
    shape = list(_type(x).shape)
    part = b.call("slice", x, starts=[index], ends=[index + 1], axes=[axis])
    del shape[axis]
    return b.reshape(part, shape)


def _batched(walk, node: OnnxNode, body: _Body, states, xs, n_out: int, inside: str):
    """Opset 8's Scan: every state and scan input has a batch axis 0, the scan axis is 1
    (0 of each batch element), and `sequence_lens` may end some sequences early."""
    b = walk.b
    batch = {_type(v).shape[0] if _type(v).shape else None for v in [*states, *xs]}
    if len(batch) != 1 or None in batch:
        raise _Refused("opset 8's Scan needs a batch axis 0 of one size on every state and "
                       f"scan input (sizes {sorted(batch, key=str)})", unsupported=False)
    size = batch.pop()
    seq_lens = _input(walk, node, 0, "sequence_lens")
    if seq_lens is not None:
        if not isinstance(seq_lens, np.ndarray):
            raise _Refused("its sequence_lens are computed at run time; Lamina needs them "
                           "constant (and equal to the sequence length)")
        full = {_type(x).shape[1] if len(_type(x).shape) > 1 else None for x in xs}
        if any(int(s) not in full for s in seq_lens.reshape(-1)):
            raise _Refused(f"sequence_lens {seq_lens.reshape(-1).tolist()} end sequences "
                           "early; Lamina unrolls only full sequences")
    dirs = _attr_list(node, "directions", len(xs), 0)
    length = max((_type(x).shape[1] for x in xs if len(_type(x).shape) > 1), default=0)
    _check_unroll(size * length, len(body.nodes), "its batch times its sequence length")
    finals, outs = [[] for _ in states], [[] for _ in range(n_out)]
    for i in range(size):
        b.node = node
        s_i = [_take(b, s, 0, i) for s in states]
        x_i = [_take(b, x, 0, i) for x in xs]
        s_i, scans = _unroll_scan(walk, node, body, s_i, x_i, [0] * len(xs), dirs, inside,
                                  f" of batch element {i}")
        for k, v in enumerate(s_i):
            finals[k].append(v)
        b.node = node
        for k, s in enumerate(scans):
            outs[k].append(_stack(walk, node, body, len(states) + k, s, 0))
    b.node = node
    return [_stack(walk, node, body, k, f, 0) for k, f in enumerate(finals)] + \
        [_stack(walk, node, body, len(states) + k, o, 0) for k, o in enumerate(outs)]


CONTROL = {"If": _if, "Loop": _loop, "Scan": _scan}  # ONNX op -> how it is taken apart
