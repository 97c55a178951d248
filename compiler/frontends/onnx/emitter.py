"""What exporter functions write with: the `Exporter` (ONNX nodes and initialisers, IR values
named by their IR names), the table of exporter functions and the export's error type."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import ir
from ir import LaminaError

DEFAULT_OPSET = 18


class OnnxExportError(LaminaError):
    """A graph that cannot be written as ONNX (names the nodes and operators)."""


EXPORTERS: dict[str, tuple[Callable, tuple[str, ...]]] = {}


def exporter(*ops: str, handles: tuple[str, ...]):
    """Register the ONNX writer of registry operators `ops`. `handles` names the attributes
    it translates; an attribute added to an operator later is refused by the export unless
    it holds its default value, so a new meaning is never dropped silently."""

    def deco(fn):
        for op in ops:
            EXPORTERS[op] = (fn, handles)
        return fn

    return deco


class Exporter:
    """Accumulates ONNX nodes and initialisers; names IR values by their IR names."""

    def __init__(self, graph: ir.Graph, opset: int):
        self.graph, self.opset = graph, opset
        self.nodes: list = []
        self.initializers: list = []
        self.names: dict[int, str] = {}  # id(IR value) -> ONNX name, where it differs
        self.taken: set[str] = {v.name for v in graph.values()}
        self._weights: set[str] = set()

    def name(self, v: ir.Value) -> str:
        name = self.names.get(id(v), v.name)
        if v.kind == "weight" and v.name not in self._weights and id(v) not in self.names:
            self._weights.add(v.name)
            self.initializers.append(tensor(self.graph.weights[v.name], v.name))
        return name

    def fresh(self, hint: str) -> str:
        name, k = hint, 0
        while name in self.taken:
            k += 1
            name = f"{hint}_{k}"
        self.taken.add(name)
        return name

    def const(self, array, hint: str) -> str:
        """A new initialiser holding `array`; returns its name."""
        name = self.fresh(hint)
        self.initializers.append(tensor(np.asarray(array), name))
        return name

    def emit(self, op_type: str, inputs, outputs=None, hint: str = "t", **attrs) -> str:
        """Append one ONNX node; returns its (first) output name."""
        import onnx

        outputs = list(outputs) if outputs is not None else [self.fresh(hint)]
        self.nodes.append(onnx.helper.make_node(op_type, list(inputs), outputs,
                                                name=self.fresh(f"{outputs[0]}.{op_type}"),
                                                **attrs))
        return outputs[0]


    # ---- helpers for exporter functions
    def ins(self, node: ir.Node) -> list[str]:
        return [self.name(v) for v in node.inputs]

    def out(self, node: ir.Node, i: int = 0) -> str:
        return self.name(node.outputs[i])

    def scalar(self, value, like, hint: str) -> str:
        """A 0-d initialiser of the dtype of `like` (an IR value or a numpy dtype)."""
        dtype = like.type.np_dtype if isinstance(like, ir.Value) else like
        return self.const(np.asarray(value, dtype), hint)

    def ints(self, values, hint: str) -> str:
        return self.const(np.asarray(list(values), np.int64), hint)


def tensor(array: np.ndarray, name: str):
    from onnx import numpy_helper

    return numpy_helper.from_array(np.ascontiguousarray(array), name)


def onnx_dtype(dtype) -> int:
    import onnx

    return onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
