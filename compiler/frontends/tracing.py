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
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import numpy as np

import ir
from ir import LaminaError, TensorType
from passes.eliminate_dead_code import eliminate_dead_code

from .tensor_methods import TensorMethods

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


_OURS = tuple(str(Path(__file__).resolve().parents[2] / pkg) for pkg in
              ("compiler", "ir", "passes", "backends"))


def _user_line() -> str:
    """' (at FILE:LINE: code)' for the innermost frame of the user's code, outside Lamina,
    numpy and the standard library."""
    for frame in reversed(traceback.extract_stack()[:-2]):
        name = str(Path(frame.filename).resolve())
        if not name.startswith(_OURS) and "site-packages" not in name \
                and not name.startswith(sys.prefix) and not name.startswith(sys.base_prefix):
            return f" (at {frame.filename}:{frame.lineno}: {frame.line})"
    return ""


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
    left out. The nesting is kept as `graph.output_structure` (see `trace_structured`);
    `restructure` gives a compiled callable that nesting back."""
    graph, structure = trace_structured(model, *example_inputs, name=name)
    graph.output_structure = structure
    return graph


def output_structure(graph: ir.Graph):
    """The nesting of a traced graph's outputs, or None for a graph that was not traced
    (read it before passes copy the graph: copies do not keep it)."""
    return getattr(graph, "output_structure", None)


def restructure(fn, structure):
    """`fn` (a compiled graph: returns an array or a flat tuple of its outputs) returning
    what forward() returned instead: nested tuples and lists, None kept. `fn` itself when
    the flat results already have that shape (one tensor, or a flat tuple of them), or
    when it is restructured already."""
    flat = structure is None or isinstance(structure, int) or (
        type(structure) is tuple and len(structure) > 1
        and all(isinstance(s, int) for s in structure))
    return fn if flat or isinstance(fn, Restructured) else Restructured(fn, structure)


class Restructured:
    """A compiled callable whose results come back nested as the model returned them;
    every attribute (`graph`, `llvm_ir`, ...) is the wrapped callable's."""

    def __init__(self, fn, structure):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "structure", structure)

    def __call__(self, *args, **kwargs):
        out = self.fn(*args, **kwargs)
        return unflatten(self.structure, out if isinstance(out, tuple) else (out,))

    def __getattr__(self, name):
        return getattr(self.fn, name)

    def __setattr__(self, name, value):
        setattr(self.fn, name, value)

    def __repr__(self) -> str:
        return repr(self.fn)


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
    if isinstance(out, (tuple, list)):  # lists, tuples and named tuples keep their type
        inner = [_flatten(o, outs, f"{where}[{i}]") for i, o in enumerate(out)]
        return _rebuild(out, inner)
    if out is None:  # torch-style optional results (attention weights not asked for)
        return None
    raise TraceError(f"model output{where or ''} is {type(out).__name__}, not a traced tensor "
                     "(outputs are tensors, None, or tuples of them)")


def unflatten(structure, results):
    """The nesting `trace_structured` recorded, filled with `results` (graph outputs);
    None stays None."""
    if isinstance(structure, (tuple, list)):
        return _rebuild(structure, [unflatten(s, results) for s in structure])
    return None if structure is None else results[structure]


def _rebuild(like, items: list):
    """`items` in a sequence of the type of `like` (a list, a tuple, a named tuple)."""
    if isinstance(like, list):
        return items
    return type(like)(*items) if hasattr(like, "_fields") else tuple(items)


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


def _check_indices(x, item) -> None:
    if _is_mask(item):
        raise x._fail("indexing with a boolean mask tensor gives a shape that depends on the "
                      "data, which cannot be traced: keep the shape and zero what the mask "
                      "leaves out, torch.where(mask, x, 0) or x.masked_fill(~mask, 0); to "
                      "assign, x[mask] = v and x.masked_fill(mask, v) work (a constant numpy "
                      "mask may index: its places are known)")
    dtype = item.dtype if isinstance(item, Tensor) else str(item.dtype)
    if dtype not in ("i32", "i64", "int32", "int64"):
        raise x._fail(f"an index tensor must hold integers, got {dtype}")


def _is_mask(item) -> bool:
    return (isinstance(item, Tensor) and item.dtype == "bool") or (
        isinstance(item, np.ndarray) and item.dtype == np.bool_)


def _in_range(x, idx, n: int):
    """An integer index with its negative entries counted from the end (constants checked
    against the axis length now; traced ones cannot be)."""
    if isinstance(idx, Tensor):
        return idx.long().where(idx >= 0, idx.long() + n)
    idx = np.asarray(idx, np.int64)
    if idx.size and not (-n <= idx.min() and idx.max() < n):
        raise x._fail(f"index {idx.min()}..{idx.max()} is out of range for an axis of size {n}")
    return np.where(idx < 0, idx + n, idx)


def _advanced(out, picks):
    """torch's advanced indexing by several integer tensors (broadcast together): the picked
    axes merged into one, read at the linear index. The result's axes go where the picked
    ones were when those are adjacent, first otherwise (torch's and numpy's rule)."""
    if len(picks) == 1:
        return op("gather", out, picks[0][1], axis=picks[0][0])
    axes = [a for a, _ in picks]
    sizes = [out.shape[a] for a in axes]
    at = axes[0] if axes == list(range(axes[0], axes[0] + len(axes))) else 0
    rest = [a for a in range(out.ndim) if a not in axes]
    perm = rest[:at] + axes + rest[at:]
    moved = out.permute(*perm) if perm != list(range(out.ndim)) else out
    merged = moved.reshape(*moved.shape[:at], int(np.prod(sizes)),
                           *moved.shape[at + len(axes):])
    linear, stride = 0, 1
    for (_, idx), n in reversed(list(zip(picks, sizes))):
        linear = _in_range(out, idx, n) * stride + linear
        stride *= n
    return op("gather", merged, linear, axis=at)


def _index_tuple(index) -> tuple:
    """An index as a tuple, lists (of ints or bools) as arrays."""
    return tuple(np.asarray(i) if isinstance(i, list) else i for i in
                 (index if isinstance(index, tuple) else (index,)))


def _shape_arg(shape) -> tuple[int, ...]:
    if len(shape) == 1 and isinstance(shape[0], Sequence):
        shape = shape[0]
    return tuple(int(d) for d in shape)


class Tensor(TensorMethods):
    """A symbolic tensor: its IR value plus the torch-like methods forward() code uses (the
    operators, comparisons, reductions and selections are in tensor_methods.py)."""

    __array_priority__ = 1000  # numpy defers to our reflected operators (array + Tensor)

    def __init__(self, value: ir.Value):
        self.value = value

    @staticmethod
    def _op(name: str, *inputs, **attrs):
        return op(name, *inputs, **attrs)

    @staticmethod
    def _fail(message: str) -> TraceError:
        return TraceError(f"{where()}{message}")

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

    def numel(self) -> int:
        return self.value.type.size

    def dim(self) -> int:
        return self.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"Tensor({self.value!r})"

    def __bool__(self):
        raise TraceError(f"{where()}a traced tensor has no truth value{_user_line()}: "
                         "data-dependent control flow (if/while/and/or on a tensor) cannot be "
                         "traced; compute both branches and pick with x.where(cond, y) or "
                         "F.where(cond, x, y)")

    def _no_value(self, what: str):
        raise TraceError(f"{where()}{what} of a traced tensor{_user_line()}: its value exists "
                         "only when the compiled model runs; keep it a tensor (x * t rather "
                         "than x * float(t))")

    def __float__(self):
        self._no_value("float()")

    def __int__(self):
        self._no_value("int()")

    def item(self):
        self._no_value(".item()")

    def __array__(self, *args, **kwargs):
        # numpy functions (np.exp(x)) and np.asarray(x) come here; binary operators with an
        # array on the left do not (__array_priority__ sends them to our reflected methods)
        raise TraceError(f"{where()}numpy was handed a traced tensor{_user_line()}: numpy "
                         "computes on values, not on the graph; use the tensor's methods or "
                         "compiler.functional instead (x.exp(), F.relu(x), ...)")

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
        """Indexing as numpy and torch read it: ints, slices, `...`, None, and one integer
        tensor (or array, or list) of indices, which picks along its axis (a gather)."""
        index = _index_tuple(index)
        if len(index) == 1 and isinstance(index[0], np.ndarray) and _is_mask(index[0]):
            return self._constant_mask(index[0])
        # a constant 1-D mask among other indices is its true places (as torch reads it)
        index = tuple(np.flatnonzero(i) if isinstance(i, np.ndarray) and _is_mask(i)
                      and i.ndim == 1 else i for i in index)
        dots = [k for k, i in enumerate(index) if i is Ellipsis]  # not `in`: arrays compare
        if len(dots) > 1:
            raise self._fail("an index can hold at most one '...'")
        if dots:
            k = dots[0]
            fill = self.ndim - (len(index) - 1 - sum(i is None for i in index))
            index = index[:k] + (slice(None),) * fill + index[k + 1:]
        starts, ends, axes, steps, shape, axis = [], [], [], [], [], 0
        picks = []  # (output axis, indices)
        for item in index:
            if item is None:
                shape.append(1)
                continue
            if axis >= self.ndim:
                raise self._fail(f"too many indices for a tensor of rank {self.ndim}")
            n = self.shape[axis]
            if isinstance(item, (Tensor, np.ndarray)):
                _check_indices(self, item)
                picks.append((len(shape), item))
                shape.append(n)
            elif isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_)):
                i = int(item) + n if item < 0 else int(item)
                if not 0 <= i < n:
                    raise self._fail(f"index {item} is out of range for axis {axis} of size "
                                     f"{n}")
                starts, ends = [*starts, i], [*ends, i + 1]
                axes, steps = [*axes, axis], [*steps, 1]
            elif isinstance(item, slice):
                s, e, st = item.indices(n)
                if (s, e, st) != (0, n, 1):
                    starts, ends, axes, steps = [*starts, s], [*ends, e], [*axes, axis], \
                        [*steps, st]
                shape.append(len(range(s, e, st)))
            else:
                raise self._fail(f"unsupported index {item!r} (ints, slices, ..., None and "
                                 "one integer tensor)")
            axis += 1
        shape += self.shape[axis:]
        out = self
        if starts:
            # python's clamped stop for negative steps (-1) has no int form: use -n-1
            ends = [e if e >= 0 else -self.shape[a] - 1 for e, a in zip(ends, axes)]
            out = op("slice", out, starts=starts, ends=ends, axes=axes, steps=steps)
        out = out.reshape(*shape) if tuple(shape) != out.shape else out
        # ints select (torch's rule, not numpy's), so the picked axes stay where they are
        return _advanced(out, picks) if picks else out

    def _constant_mask(self, mask: np.ndarray):
        """x[mask] for a numpy mask over x's leading axes: its true places are known now."""
        k = mask.ndim
        if k == 0 or tuple(mask.shape) != self.shape[:k]:
            raise self._fail(f"a boolean mask {list(mask.shape)} must match the leading axes "
                             f"of the tensor {list(self.shape)}")
        rows = self.reshape(-1, *self.shape[k:]) if k != 1 else self
        return op("gather", rows, np.flatnonzero(mask).astype(np.int64), axis=0)

    def __setitem__(self, index, value):
        """`x[mask] = v`, `x[0, 1:3] = v`, `x[[0, 2]] = v` (indices known now): the IR has no
        mutation, so x is rebound to a new value, v where the index selects and x elsewhere.
        A tensor taken from x before the assignment (a view in torch) keeps the old values."""
        self.value = self._assigned(_index_tuple(index), value).value

    def _assigned(self, index: tuple, value):
        v = value.type(self.dtype) if isinstance(value, Tensor) else self._as(value, self.dtype)
        if len(index) == 1 and isinstance(index[0], Tensor) and _is_mask(index[0]):
            mask = index[0]
            k = mask.ndim
            if tuple(mask.shape) != self.shape[:k] or getattr(v, "ndim", 0) > self.ndim - k:
                raise self._fail(f"x[mask] = v needs a mask matching the leading axes of "
                                 f"{list(self.shape)} (got {list(mask.shape)}) and v a scalar "
                                 "or broadcasting over the other axes (a v of one entry per "
                                 "selected element has a data-dependent shape)")
            return op("where", mask.reshape(*mask.shape, *(1,) * (self.ndim - k)), v, self)
        if any(isinstance(i, Tensor) for i in index):  # (numpy masks and indices: below)
            raise self._fail("assignment at traced index tensors (other than one boolean mask) "
                             "cannot be traced: use x.scatter(dim, index, src) or torch.where")
        if any(isinstance(i, np.ndarray) for i in index) and any(
                isinstance(i, (int, np.integer)) for i in index):
            raise self._fail("assignment with both an index array and an int index: numpy "
                             "and torch order the result differently; index one at a time")
        try:
            places = np.arange(self.numel()).reshape(self.shape)[index]
        except (IndexError, TypeError, ValueError) as e:
            raise self._fail(f"unsupported assignment index: {e}") from None
        selected = np.zeros(self.numel(), np.bool_)
        selected[places.ravel()] = True
        selected = selected.reshape(self.shape)
        if getattr(v, "ndim", 0) == 0 or places.size == 0:
            return op("where", selected, v, self)
        source = np.zeros(self.numel(), np.int64)  # the entry of v each element takes
        source[places.ravel()] = np.arange(places.size)  # a repeated place: the last wins
        if isinstance(v, Tensor):
            v = v.expand(*places.shape).reshape(-1)
        else:
            v = np.ascontiguousarray(np.broadcast_to(v, places.shape)).reshape(-1)
        return op("where", selected, op("gather", v, source.reshape(self.shape), axis=0), self)

    # ---- maps ---------------------------------------------------------------------------
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

    def contiguous(self):
        return self  # traced values have no memory layout
