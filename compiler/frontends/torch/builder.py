"""What the ATen operator functions build with: the Builder (registry operators for one
exported node at a time, folding what is constant), the node as they see it, and the
import's error and warning types. Nothing here imports torch."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

import ir
from ir import LaminaError, TensorType
from ir.errors import LaminaWarning
from ir.ops import registry
from ir.tensor_type import DTYPES, dtype_name

IR_DTYPES = set(DTYPES.values())  # the numpy dtypes Lamina's tensors can have


class TorchImportError(LaminaError):
    """A torch module that cannot be imported. `unsupported` maps each ATen operator (or
    case of one) Lamina cannot lower to the module paths using it, with counts; `problems`
    lists (op, node, reason) for nodes that failed otherwise."""

    def __init__(self, message: str, unsupported=None, problems=()):
        super().__init__(message)
        self.unsupported: dict[str, dict[str, int]] = dict(unsupported or {})
        self.problems: list[tuple[str, str, str]] = list(problems)


class TorchImportWarning(LaminaWarning):
    """Something in a torch module imported differently from how it would run as it is:
    submodules in training mode (dropout, batch statistics) imported for inference."""


class Unsupported(Exception):
    """Raised by an operator function: this node needs something Lamina lacks."""


@dataclass
class TorchNode:
    """One call in the exported program, as the operator functions see it."""

    op: str  # the ATen operator without namespace and overload: "convolution"
    overload: str  # "default", "Tensor", "Scalar", "dim", ...
    name: str  # the exported node's name: "convolution_3"
    module: str  # the module path it came from: "layer1.0.conv1" ("" for the root)
    out_shapes: list = field(default_factory=list)  # per output: shape, or None
    out_dtypes: list = field(default_factory=list)  # per output: numpy dtype, or None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.out_shapes[0]

    @property
    def dtype(self) -> np.dtype:
        return self.out_dtypes[0]


class Builder:
    """Creates registry operators for one exported node at a time, named after the module
    the node came from; evaluates on the spot what has only constant inputs."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.node: TorchNode | None = None
        self.names: dict[int, str] = {}  # id(array) -> the state_dict name it holds
        self.transposed: dict[int, np.ndarray] = {}  # id(w.T) -> w: linear layers' weights
        self._values: dict[int, ir.Value] = {}  # id(array) -> its graph value
        self._keep: list[np.ndarray] = []  # arrays whose ids are keys above stay alive

    def keep(self, array: np.ndarray) -> np.ndarray:
        self._keep.append(array)
        return array

    @property
    def base(self) -> str:
        n = self.node
        return (n.module or n.op) if n else "v"

    def call(self, op: str, *inputs, **attrs):
        """Apply registry operator `op`; with every input constant, evaluate it now."""
        if all(isinstance(x, np.ndarray) for x in inputs):
            return self.fold(op, *inputs, **attrs)
        values = [self.value(x) for x in inputs]
        outs = self.graph.create_node(op, values, attrs, name=self.base).outputs
        return outs[0] if len(outs) == 1 else tuple(outs)

    def fold(self, op: str, *arrays, **attrs):
        """Registry operator `op` on constants, by its own numpy semantics."""
        opdef = registry.get(op)
        attrs = opdef.check_attrs(attrs, f"{op} (folding {self.node.name})")
        with np.errstate(all="ignore"):
            out = opdef.compute(*arrays, **attrs)
        out = tuple(np.asarray(o) for o in (out if isinstance(out, tuple) else (out,)))
        for o in out:
            self.derive(o, *arrays)
        return out[0] if len(out) == 1 else out

    def derive(self, out, *sources):
        """Name constant `out` after the first named constant it was computed from (a
        conv1d's weight reshaped to 2-D stays `conv.weight`)."""
        if isinstance(out, np.ndarray):
            name = next((self.names[id(s)] for s in sources if id(s) in self.names), None)
            if name is not None:
                self.names.setdefault(id(out), name)
                self.keep(out)
        return out

    def value(self, x) -> ir.Value:
        """The graph value of an operand: itself, or a constant made a weight (under its
        state_dict name when it is a parameter or buffer), or a `constant` node when it
        holds a single number."""
        if isinstance(x, ir.Value):
            return x
        x = np.asarray(x)
        key = id(x)
        if key in self._values:
            return self._values[key]
        if x.dtype not in IR_DTYPES:
            raise Unsupported(f"a {x.dtype} tensor (Lamina has {', '.join(DTYPES)})")
        self.keep(x)
        if key not in self.names and _uniform(x):  # one number: a fill, not a weight
            v = self.graph.call("constant", value=float(x.flat[0]), shape=x.shape,
                                dtype=dtype_name(x.dtype), name=f"{self.base}.const")
        else:
            name = self.names.get(key) or f"{self.base}.const"
            v = self.graph.add_weight(self.graph.fresh_name(name), np.ascontiguousarray(x))
        self._values[key] = v
        return v

    def const(self, x, what: str = "this operand") -> np.ndarray:
        """A constant operand's array, or Unsupported if it is only known at run time."""
        if isinstance(x, np.ndarray):
            return x
        if isinstance(x, (int, float, bool)):
            return np.asarray(x)
        raise Unsupported(f"{what} is computed at run time; Lamina needs it constant")

    def reshape(self, x, shape):
        shape = tuple(int(d) for d in shape)
        if tuple(x.shape) == shape:
            return x
        if isinstance(x, np.ndarray):
            return self.derive(x.reshape(shape), x)
        return self.call("reshape", x, shape=shape)

    def cast(self, x, dtype):
        """x as `dtype` (numpy), unchanged when it already is."""
        dtype = np.dtype(dtype)
        if dtype_of(x) == dtype:
            return x
        if isinstance(x, np.ndarray):
            return x.astype(dtype)
        if dtype not in IR_DTYPES:
            raise Unsupported(f"a cast to {dtype}")
        return self.call("cast", x, dtype=dtype_name(dtype))


def _uniform(x: np.ndarray) -> bool:
    """Whether every element is the same number (exactly representable as a float)."""
    if x.size == 0:
        return False
    first = x.flat[0]
    if x.dtype.kind in "iu" and abs(int(first)) >= 2**53:
        return False
    return x.size == 1 or not any(x.strides) or bool(np.all(x == first))


def dtype_of(x) -> np.dtype:
    """The numpy dtype of an operand (a graph value or a constant)."""
    return x.dtype if isinstance(x, np.ndarray) else x.type.np_dtype


def check_type(value, node: TorchNode, k: int = 0) -> None:
    """The shape (and dtype) torch recorded for output k must be what was built."""
    want = node.out_shapes[k] if k < len(node.out_shapes) else None
    if want is None or value is None:
        return
    got = tuple(value.shape)
    if got != tuple(want):
        raise LaminaError(f"built shape {list(got)}, torch says {list(want)}")
    dt = node.out_dtypes[k]
    if dt is not None and dt in IR_DTYPES and dtype_of(value) != dt:
        raise LaminaError(f"built dtype {dtype_of(value)}, torch says {dt}")


def type_of(shape, dtype) -> TensorType:
    return TensorType(tuple(shape), dtype_name(dtype))
