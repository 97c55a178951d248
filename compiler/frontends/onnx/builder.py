"""What ONNX operator functions build with: the Builder (registry operators for one ONNX node
at a time, folding what is constant), the decoded OnnxNode, and the import's error types."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

import ir
from ir import LaminaError, TensorType
from ir.errors import LaminaWarning
from ir.ops import narrow, registry
from ir.tensor_type import DTYPES, FLOATS, check_size, dtype_name, format_bytes

IR_DTYPES = set(DTYPES.values())  # the numpy dtypes Lamina's tensors can have
# The most the importer computes at import time for one tensor (folding constants): a file
# declares sizes in a few bytes, so more is left to run time or, where only a constant will
# do, refused before numpy is asked for the memory. As large as an ONNX file's own limit.
# In all, folds that can outgrow their inputs (broadcasts, pads, ConstantOfShape, ...) may
# compute FOLD_BYTES more than FOLD_SHARE times the tensors the file holds (its weights,
# transposed or cast, stay within that), so many large folds cannot add up either.
FOLD_BYTES = 2**31
FOLD_SHARE = 4


class OnnxImportError(LaminaError, ValueError):
    """An ONNX model that cannot be imported. `problems` lists (op_type, node, reason) for
    every node at fault; `unsupported` only those that ask for something Lamina lacks."""

    def __init__(self, message: str, problems=(), unsupported=()):
        super().__init__(message)
        self.problems: list[tuple[str, str, str]] = list(problems) or list(unsupported)
        self.unsupported: list[tuple[str, str, str]] = list(unsupported)


class OnnxImportWarning(LaminaWarning):
    """Something in an ONNX model that was imported differently from how it was written
    (training-mode operators compiled for inference)."""


class OnnxOpsetWarning(LaminaWarning):
    """A model whose opset is newer than the ones Lamina's operator table follows: it is
    imported as written, but operators changed since then are read by their older
    definitions. (Not an OnnxImportWarning: nothing was imported differently.)"""


class Unsupported(Exception):
    """Raised by an operator function: this node needs something the registry lacks."""


class Decline(Unsupported):
    """Raised by an operator function, before it builds anything, for a case it leaves to
    the function ONNX defines the operator by (when there is one)."""


@dataclass
class OnnxNode:
    """One ONNX node, its attributes decoded to Python values."""

    op: str
    name: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    used: list[bool] = field(default_factory=list)  # which outputs anything reads

    def get(self, key: str, default=None):
        return self.attrs.get(key, default)

    @property
    def label(self) -> str:
        return f"{self.op} '{self.name}'"


# Element types Lamina's IR lacks, computed in a wider type it has: the importer reads them
# widened (weights, constants, inputs, casts) and compile() converts the model's inputs and
# outputs at the boundary, so a float16 model takes and returns float16 arrays while every
# operation runs in float32 (its results are float32's, rounded once to float16 at the end:
# closer to exact than a float16 run, so not bit-equal to one).
WIDER = {"float16": np.float32, "bfloat16": np.float32, "int8": np.int32,
         "uint8": np.int32, "int16": np.int32, "uint16": np.int32, "uint32": np.int64,
         "uint64": np.int64}  # (values past 2**63 wrap: stated in docs/ONNX_CONFORMANCE.md)
# float8, float4, int4 and int2 too; a Cast to one rounds to it (ir/ops/narrow.py), and their
# one-byte codes are read and written by narrow.from_storage / to_storage
WIDER.update({name: np.float32 if f.kind != "int" else np.int32
              for name, f in narrow.FORMATS.items()})


def widened(dt: np.dtype | None) -> np.dtype | None:
    """The dtype Lamina computes a tensor of `dt` in (dt itself where the IR has it)."""
    return None if dt is None else np.dtype(WIDER.get(dt.name, dt))


def read_array(tensor, what: str) -> np.ndarray:
    """A TensorProto's data, widened to a type the IR has (see WIDER)."""
    array = _read_stored(tensor, what)
    wider = widened(array.dtype)
    return array if wider == array.dtype else narrow.from_storage(array, wider)


def _read_stored(tensor, what: str) -> np.ndarray:
    from onnx import numpy_helper

    bad = [d for d in tensor.dims if d < 0]
    if bad:  # numpy would read -1 as "whatever the data holds"
        raise OnnxImportError(f"cannot read {what} '{tensor.name}': dimension {bad[0]} in its "
                              f"shape {list(tensor.dims)}")
    try:
        return np.asarray(numpy_helper.to_array(tensor))
    except Exception as e:
        raise OnnxImportError(f"cannot read {what} '{tensor.name}': {type(e).__name__}: "
                              f"{e}") from None


def np_dtype(elem_type: int) -> np.dtype | None:
    """The numpy dtype Lamina computes an ONNX element type in (widened, see WIDER), or None
    where there is none."""
    return widened(stored_dtype(elem_type))


def stored_dtype(elem_type: int) -> np.dtype | None:
    """The numpy dtype of an ONNX element type as stored, or None where numpy has none."""
    import onnx

    try:
        return np.dtype(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except Exception:
        return None


def onnx_type_name(elem_type: int) -> str:
    import onnx

    try:
        return onnx.TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type {elem_type}"


# ---- the builder operator functions use ------------------------------------------------------
class Builder:
    """Creates registry operators for one ONNX node at a time; folds what is constant."""

    def __init__(self, graph: ir.Graph, opset: int):
        self.graph, self.opset = graph, opset
        self.node: OnnxNode | None = None
        self.names: dict[int, str] = {}  # id(array) -> the ONNX name it came from
        self._values: dict[int, ir.Value] = {}  # id(array) -> its graph value
        self._keep: list[np.ndarray] = []  # arrays whose ids are keys above stay alive
        self.training: list[tuple[str, str]] = []  # (node label, what was done instead)
        self.file_bytes = 0  # bytes of the tensors the model file holds
        self.computed = 0  # bytes computed at import by folds (see FOLD_BYTES)
        # ONNX tensor name -> its element type as the file declares it (before WIDER): the
        # quantized operators (ops/quant.py) keep int8/uint8 as such where they meet them
        self.stored: dict[str, np.dtype] = {}

    def name_constant(self, array: np.ndarray, name: str) -> None:
        """Remember that `array` holds the ONNX tensor `name` (a folded weight is named
        after what it was made from)."""
        self.names.setdefault(id(array), name)
        self._keep.append(array)

    @property
    def base(self) -> str:
        n = self.node
        return (n.outputs[0] if n and n.outputs and n.outputs[0] else n.name if n else "") \
            or "v"

    def call(self, op: str, *inputs, **attrs):
        """Apply registry operator `op`; with every input constant, evaluate it right now."""
        if all(isinstance(x, np.ndarray) for x in inputs):
            return self._fold(op, inputs, attrs)
        values = [self.value(x) for x in inputs]
        try:
            node = self.graph.create_node(op, values, attrs, name=self.base)
        except ir.ShapeError as e:
            if "floating-point" in str(e) and any(v.dtype not in FLOATS for v in values):
                dtypes = ", ".join(sorted({v.dtype for v in values}))
                raise Unsupported(f"{op} on {dtypes} operands (it takes floats)") from None
            raise
        outs = node.outputs
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _fold(self, op: str, arrays, attrs):
        """Evaluate registry operator `op` on constants with its own numpy semantics; a
        result of more than FOLD_BYTES is left to run time instead."""
        opdef = registry.get(op)
        attrs = opdef.check_attrs(attrs, f"{op} (folding {self.node.label})")
        types = None
        foreign = any(a.dtype not in IR_DTYPES for a in arrays)
        if not foreign:
            try:
                types = opdef.infer_types([TensorType.of(a) for a in arrays], attrs)
            except ir.ShapeError as e:
                if "floating-point" not in str(e):
                    raise
                # integer shape arithmetic: numpy computes what the float-only operator would
            if types is not None and sum(t.nbytes for t in types) > FOLD_BYTES:
                node = self.graph.create_node(op, [self.value(a) for a in arrays], attrs,
                                              name=self.base, types=types)
                return node.outputs[0] if len(types) == 1 else tuple(node.outputs)
            if types is not None:
                self._charge(sum(t.nbytes for t in types), f"{op} (folding {self.node.label})")
        try:
            with np.errstate(all="ignore"):
                out = opdef.compute(*arrays, **attrs)
        except Exception:
            if not foreign:
                raise
            dts = ", ".join(sorted({str(a.dtype) for a in arrays}))  # e.g. uint8, float16
            raise Unsupported(f"{op} on {dts} tensors") from None
        out = out if isinstance(out, tuple) else (out,)
        if types is not None:
            out = tuple(np.asarray(o, t.np_dtype).reshape(t.shape) for o, t in zip(out, types))
        else:
            out = tuple(np.asarray(o) for o in out)
        source = next((self.names[id(a)] for a in arrays if id(a) in self.names), None)
        if source is not None:  # a folded weight is named after what it was made from
            for o in out:
                self.names.setdefault(id(o), f"{source}.{op}")
                self._keep.append(o)
        return out[0] if len(out) == 1 else out

    def value(self, x) -> ir.Value:
        """The graph value of an operand: itself, or a constant turned into a weight (or a
        `constant` node when it holds a single number)."""
        if isinstance(x, ir.Value):
            return x
        if not isinstance(x, np.ndarray):
            raise TypeError(f"not an operand: {x!r}")
        key = id(x)
        if key in self._values:
            return self._values[key]
        if x.dtype not in IR_DTYPES:
            raise Unsupported(f"a {x.dtype} tensor in the graph (Lamina has "
                              f"{', '.join(DTYPES)})")
        self._keep.append(x)
        name = self.names.get(key) or f"{self.base}.const"
        if x.size == 1 and (x.dtype.kind != "i" or abs(int(x.flat[0])) < 2**53):
            v = self.graph.call("constant", value=float(x.flat[0]), shape=x.shape,
                                dtype=dtype_name(x.dtype), name=name)
        else:
            v = self.graph.add_weight(self.graph.fresh_name(name), np.ascontiguousarray(x))
        self._values[key] = v
        return v

    def const(self, x, what: str = "this input") -> np.ndarray:
        """A constant operand's array, or Unsupported if it is only known at run time."""
        if isinstance(x, np.ndarray):
            return x
        raise Unsupported(f"{what} is computed at run time; Lamina needs it constant")

    def ints(self, x, what: str = "this input") -> list[int]:
        return [int(v) for v in self.const(x, what).reshape(-1)]

    def sized(self, shape, dtype, what: str = "the output") -> list[int]:
        """`shape`, checked before a constant of that shape and dtype is computed at import
        time: a negative or huge dimension, or more than FOLD_BYTES, is refused with the
        size."""
        shape = [int(d) for d in shape]
        itemsize = np.dtype(dtype).itemsize
        check_size(shape, itemsize, f"{what} shape")
        nbytes = math.prod(shape) * itemsize
        if nbytes > FOLD_BYTES:
            raise ir.ShapeError(f"{what} shape {shape} of {np.dtype(dtype)} would take "
                                f"{format_bytes(nbytes)}; the importer computes at most "
                                f"{format_bytes(FOLD_BYTES)} of constants at import time")
        self._charge(nbytes, what)
        return shape

    def _charge(self, nbytes: int, what: str) -> None:
        """Count `nbytes` about to be computed at import against the import's budget."""
        budget = FOLD_BYTES + FOLD_SHARE * self.file_bytes
        if self.computed + nbytes > budget:
            raise ir.ShapeError(
                f"{what}: {format_bytes(nbytes)} more would bring the constants computed at "
                f"import to {format_bytes(self.computed + nbytes)}, past the "
                f"{format_bytes(budget)} allowed ({format_bytes(FOLD_BYTES)} beyond "
                f"{FOLD_SHARE} times the {format_bytes(self.file_bytes)} of tensors in the "
                "model)")
        self.computed += nbytes

    def reshape(self, x, shape):
        shape = tuple(int(d) for d in shape)
        return x if tuple(x.shape) == shape else self.call("reshape", x, shape=shape)

    def warn_training(self, what: str) -> None:
        self.training.append((self.node.label, what))


