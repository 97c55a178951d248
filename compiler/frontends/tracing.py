"""Tracing: run a model's forward() on symbolic tensors that record IR nodes.

Parameters are plain numpy arrays; while tracing, an array that a layer hands to an
operator becomes a graph weight named by its state_dict key (`conv1.weight`), found by
identity. Nodes are named by the module that created them (`layer1.0.conv1`), so the IR
reads like the model.
"""

from __future__ import annotations

import contextlib
import contextvars
import inspect
import numbers
from collections.abc import Sequence

import numpy as np

import ir
from ir import LaminaError, TensorType
from passes.eliminate_dead_code import eliminate_dead_code

_TRACER: contextvars.ContextVar[Tracer | None] = contextvars.ContextVar("tracer", default=None)


class TraceError(LaminaError):
    """A model that cannot be traced (names the layer)."""


class Tracer:
    def __init__(self, graph: ir.Graph, weight_names: dict[int, str],
                 module_paths: dict[int, str]):
        self.graph = graph
        self.weight_names = weight_names  # id(array) -> state_dict key
        self.module_paths = module_paths  # id(module) -> its path in the model
        self.scopes: list[tuple[str, str]] = []  # (module path, class name)
        self._arrays: dict[int, ir.Value] = {}  # id(array) -> weight value
        self._keep: list[np.ndarray] = []  # anonymous constants stay alive while tracing

    def scope_name(self, op: str) -> str:
        path = self.scopes[-1][0] if self.scopes else ""
        return path or op

    @contextlib.contextmanager
    def scope(self, path: str, cls: str):
        self.scopes.append((path, cls))
        try:
            yield
        finally:
            self.scopes.pop()

    def value(self, x, like: TensorType | None = None) -> ir.Value:
        """The IR value for an operand: a traced tensor, a parameter array, or a scalar."""
        if isinstance(x, Tensor):
            return x.value
        if isinstance(x, np.ndarray):
            return self._weight(x)
        if isinstance(x, (numbers.Number, np.number)) and not isinstance(x, bool):
            dtype = like.dtype if like is not None else "f32"
            return self.graph.call("constant", value=float(x), dtype=dtype,
                                   name=self.scope_name("c"))
        raise TraceError(f"{self.where()}cannot use {type(x).__name__} as a tensor operand")

    def _weight(self, array: np.ndarray) -> ir.Value:
        key = id(array)
        if key not in self._arrays:
            name = self.weight_names.get(key) or self.graph.fresh_name("const")
            self._keep.append(array)
            self._arrays[key] = self.graph.add_weight(name, array)
        return self._arrays[key]

    def where(self) -> str:
        if not self.scopes:
            return ""
        path, cls = self.scopes[-1]
        return f"layer '{path or '<model>'}' ({cls}): "

    def op(self, name: str, *inputs, **attrs):
        """Record one operator; returns a Tensor, or a tuple of Tensors for several outputs."""
        like = next((x.value.type for x in inputs if isinstance(x, Tensor)), None)
        values = [self.value(x, like) for x in inputs]
        try:
            node = self.graph.create_node(name, values, attrs, name=self.scope_name(name))
        except LaminaError as e:
            raise type(e)(f"{self.where()}{e}") from None
        outs = tuple(Tensor(v) for v in node.outputs)
        return outs[0] if len(outs) == 1 else outs


def current() -> Tracer:
    tracer = _TRACER.get()
    if tracer is None:
        raise TraceError("operators on symbolic tensors can only run inside compiler.trace()")
    return tracer


def tracing() -> bool:
    return _TRACER.get() is not None


def where() -> str:
    """'layer 'path' (Class): ' for the layer being traced, to start error messages with."""
    tracer = _TRACER.get()
    return tracer.where() if tracer is not None else ""


@contextlib.contextmanager
def name_scope(part: str):
    """Name the nodes recorded inside after a part of the current layer: `lstm.l0.t3`."""
    tracer = current()
    path, cls = tracer.scopes[-1] if tracer.scopes else ("", "")
    with tracer.scope(f"{path}.{part}" if path else part, cls):
        yield


def op(name: str, *inputs, **attrs):
    """Record operator `name` in the active trace (the one primitive every layer uses)."""
    return current().op(name, *inputs, **attrs)


def trace(model, *example_inputs, name: str = "main") -> ir.Graph:
    """Trace `model` (a compiler.nn.Module or any callable) on example inputs into a graph.

    Nested output tuples (an LSTM's `(output, (h_n, c_n))`) become the graph's flat list of
    outputs, in order; None results (MultiheadAttention's weights when not asked for) are
    left out."""
    return trace_structured(model, *example_inputs, name=name)[0]


def trace_structured(model, *example_inputs, name: str = "main"):
    """`trace`, plus the nesting of the outputs as indices into graph.outputs (`(0, (1, 2))`;
    a bare 0 for one tensor): `unflatten(structure, results)` rebuilds what forward() returned."""
    if not example_inputs:
        raise TraceError("trace needs at least one example input (for shapes and dtypes)")
    graph = ir.Graph(name)
    weight_names, module_paths = {}, {}
    if hasattr(model, "state_dict"):
        weight_names = {id(a): k for k, a in model.state_dict().items()}
        module_paths = {id(m): path for path, m in model.named_modules()}
    tracer = Tracer(graph, weight_names, module_paths)
    arg_names = _arg_names(model, len(example_inputs))
    inputs = []
    for arg, x in zip(arg_names, example_inputs):
        try:
            t = TensorType.of(np.asarray(x))
        except (ir.LaminaError, ValueError) as e:  # a dtype the IR lacks; a ragged list
            cls = type(e) if isinstance(e, ir.LaminaError) else TraceError
            raise cls(f"example input '{arg}': {e}") from None
        inputs.append(Tensor(graph.add_input(arg, t)))
    token = _TRACER.set(tracer)
    try:
        out = model(*inputs)
    finally:
        _TRACER.reset(token)
    outs: list[Tensor] = []
    structure = _flatten(out, outs, "")
    if not outs:
        raise TraceError("the model returned no traced tensor")
    graph.outputs = [o.value for o in outs]
    # forget what forward() computed but did not return (an LSTM's unused h_n) and the
    # parameters nothing read: the IR has no side effects, so they are dead
    eliminate_dead_code(graph)
    return graph, structure


def _flatten(out, outs: list, where: str):
    if isinstance(out, Tensor):
        outs.append(out)
        return len(outs) - 1
    if isinstance(out, (tuple, list)):
        return tuple(_flatten(o, outs, f"{where}[{i}]") for i, o in enumerate(out))
    if out is None:  # torch-style optional results (attention weights not asked for)
        return None
    raise TraceError(f"model output{where or ''} is {type(out).__name__}, not a traced tensor "
                     "(outputs are tensors, None, or tuples of them)")


def unflatten(structure, results):
    """The nesting `trace_structured` recorded, filled with `results` (graph outputs);
    None stays None."""
    if isinstance(structure, tuple):
        return tuple(unflatten(s, results) for s in structure)
    return None if structure is None else results[structure]


def _arg_names(model, n: int) -> list[str]:
    fn = getattr(model, "forward", model)
    try:
        params = [p for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    names = [p.name for p in params[:n]]
    if len(names) < n or len(set(names)) < n:
        names = ["x"] if n == 1 else [f"x{i}" for i in range(n)]
    return names


def _shape_arg(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = shape[0]
    return tuple(int(d) for d in shape)


class Tensor:
    """A symbolic tensor: its IR value plus the torch-like methods forward() code uses."""

    __array_priority__ = 1000  # numpy defers to our reflected operators (array + Tensor)

    def __init__(self, value: ir.Value):
        self.value = value

    # ---- facts -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    @property
    def dtype(self) -> str:
        return self.value.type.dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({self.value!r})"

    def __bool__(self):
        raise TraceError("a traced tensor has no truth value: data-dependent control flow "
                         "cannot be traced")

    # ---- arithmetic --------------------------------------------------------------------
    def __add__(self, o):
        return op("add", self, o)

    def __radd__(self, o):
        return op("add", o, self)

    def __sub__(self, o):
        return op("sub", self, o)

    def __rsub__(self, o):
        return op("sub", o, self)

    def __mul__(self, o):
        return op("mul", self, o)

    def __rmul__(self, o):
        return op("mul", o, self)

    def __truediv__(self, o):
        return op("div", self, o)

    def __rtruediv__(self, o):
        return op("div", o, self)

    def __pow__(self, o):
        return op("pow", self, o)

    def __rpow__(self, o):
        return op("pow", o, self)

    def __neg__(self):
        return op("neg", self)

    def __abs__(self):
        return op("abs", self)

    def __matmul__(self, o):
        return op("matmul", self, o)

    def __rmatmul__(self, o):
        return op("matmul", o, self)

    # ---- shape methods -----------------------------------------------------------------
    def reshape(self, *shape):
        shape, n = _shape_arg(shape), self.value.type.size
        if shape.count(-1) == 1 and all(d >= -1 for d in shape):
            known = int(np.prod([d for d in shape if d != -1]))
            if known and n % known == 0:  # resolve -1: the IR reads better concrete
                shape = tuple(n // known if d == -1 else d for d in shape)
        return op("reshape", self, shape=shape)

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        s, e = start_dim % max(self.ndim, 1), end_dim % max(self.ndim, 1)
        return self.reshape(*self.shape[:s], -1, *self.shape[e + 1:])

    def permute(self, *dims):
        return op("transpose", self, perm=_shape_arg(dims))

    def transpose(self, dim0: int, dim1: int):
        perm = list(range(self.ndim))
        perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
        return op("transpose", self, perm=perm)

    @property
    def T(self):
        return self.permute(*reversed(range(self.ndim)))

    def unsqueeze(self, dim: int):
        dim = dim % (self.ndim + 1)
        return self.reshape(*self.shape[:dim], 1, *self.shape[dim:])

    def squeeze(self, dim: int | None = None):
        if dim is None:
            return self.reshape(*[d for d in self.shape if d != 1])
        dim %= self.ndim
        return self if self.shape[dim] != 1 else self.reshape(
            *self.shape[:dim], *self.shape[dim + 1:])

    def split(self, size, dim: int = 0):
        n = self.shape[dim]
        sizes = [size] * (n // size) + ([n % size] if n % size else []) if isinstance(
            size, int) else list(size)
        out = op("split", self, axis=dim, sizes=sizes)
        return out if isinstance(out, tuple) else (out,)

    def chunk(self, chunks: int, dim: int = 0):
        return self.split(-(-self.shape[dim] // chunks), dim)

    def __getitem__(self, index):
        """Basic indexing: ints, slices, `...` and None, as numpy reads them."""
        index = index if isinstance(index, tuple) else (index,)
        dots = [k for k, i in enumerate(index) if i is Ellipsis]  # not `in`: arrays compare
        if len(dots) > 1:
            raise TraceError("an index can hold at most one '...'")
        if dots:
            k = dots[0]
            fill = self.ndim - (len(index) - 1 - sum(i is None for i in index))
            index = index[:k] + (slice(None),) * fill + index[k + 1:]
        starts, ends, axes, steps, shape, axis = [], [], [], [], [], 0
        for item in index:
            if item is None:
                shape.append(1)
                continue
            if axis >= self.ndim:
                raise TraceError(f"too many indices for a tensor of rank {self.ndim}")
            n = self.shape[axis]
            if isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
                i = int(item) + n if item < 0 else int(item)
                if not 0 <= i < n:
                    raise TraceError(f"index {item} is out of range for axis {axis} of size {n}")
                starts, ends = [*starts, i], [*ends, i + 1]
                axes, steps = [*axes, axis], [*steps, 1]
            elif isinstance(item, slice):
                s, e, st = item.indices(n)
                if (s, e, st) != (0, n, 1):
                    starts, ends, axes, steps = [*starts, s], [*ends, e], [*axes, axis], \
                        [*steps, st]
                shape.append(len(range(s, e, st)))
            else:
                raise TraceError(f"unsupported index {item!r} (ints, slices, ... and None)")
            axis += 1
        shape += self.shape[axis:]
        out = self
        if starts:
            # python's clamped stop for negative steps (-1) has no int form: use -n-1
            ends = [e if e >= 0 else -self.shape[a] - 1 for e, a in zip(ends, axes)]
            out = op("slice", out, starts=starts, ends=ends, axes=axes, steps=steps)
        return out.reshape(*shape) if tuple(shape) != out.shape else out

    # ---- reductions and maps -----------------------------------------------------------
    def _reduce(self, name, dim, keepdim):
        axes = () if dim is None else (dim,) if isinstance(dim, int) else tuple(dim)
        return op(name, self, axes=axes, keepdims=keepdim)

    def sum(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_sum", dim, keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_mean", dim, keepdim)

    def amax(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_max", dim, keepdim)

    def amin(self, dim=None, keepdim: bool = False):
        return self._reduce("reduce_min", dim, keepdim)

    def softmax(self, dim: int = -1):
        return op("softmax", self, axis=dim)

    def log_softmax(self, dim: int = -1):
        return op("log_softmax", self, axis=dim)

    def exp(self):
        return op("exp", self)

    def log(self):
        return op("log", self)

    def sqrt(self):
        return op("sqrt", self)

    def abs(self):
        return op("abs", self)

    def relu(self):
        return op("relu", self)

    def sigmoid(self):
        return op("sigmoid", self)

    def tanh(self):
        return op("tanh", self)

    def pow(self, exponent):
        return op("pow", self, exponent)

    def matmul(self, other):
        return op("matmul", self, other)

    def clamp(self, min=None, max=None):
        return op("clip", self, **({} if min is None else {"min": min}),
                  **({} if max is None else {"max": max}))

    clip = clamp

    def contiguous(self):
        return self  # traced values have no memory layout

    def float(self):
        return op("cast", self, dtype="f32")

    def long(self):
        return op("cast", self, dtype="i64")
