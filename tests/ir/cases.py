"""Operator cases: a tiny Lamina graph and the same computation as an ONNX model.

Each `Case` applies one registered operator (with one set of attributes) to fixed random
data. `case.graph()` builds the Lamina graph; `case.onnx_model()` builds the ONNX peer from
`onnx.helper`, which onnxruntime runs as an independent check of the reference semantics.
The ONNX nodes read the Lamina argument names and write `y` (or `y0`, `y1`, ... for several
outputs). The concrete cases live in `cases_elementwise.py`, `cases_shape.py`, `cases_nn.py`
and `cases_fused.py`; `BY_OP` maps each operator name to its cases so that an operator
without a peer test is noticed.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import helper, numpy_helper

from ir import Graph, TensorType

OPSET = 21  # Gelu needs 20, reductions with axes as inputs 18, AveragePool dilations 19
IR_VERSION = 10

_rng = np.random.default_rng(20240601)


def randn(*shape, scale=1.0, dtype=np.float32) -> np.ndarray:
    return np.asarray(_rng.standard_normal(shape) * scale, dtype)


def uniform(lo, hi, *shape, dtype=np.float32) -> np.ndarray:
    return np.asarray(_rng.uniform(lo, hi, shape), dtype)


def randint(lo, hi, *shape, dtype=np.int64) -> np.ndarray:
    return np.asarray(_rng.integers(lo, hi, shape), dtype)


def i64(*values) -> np.ndarray:
    return np.array(values, np.int64)


def f32(value) -> np.ndarray:
    return np.array(value, np.float32)


def N(op_type: str, *inputs: str, out: str | Sequence[str] = "y", **attrs) -> onnx.NodeProto:
    """An ONNX node; `out` names its output(s)."""
    outs = [out] if isinstance(out, str) else list(out)
    return helper.make_node(op_type, list(inputs), outs, **attrs)


@dataclass
class Case:
    op: str
    variant: str
    args: dict[str, np.ndarray]  # the operands, in order
    nodes: list[onnx.NodeProto]  # the ONNX peer
    attrs: dict = field(default_factory=dict)
    weights: tuple[str, ...] = ()  # args that are graph weights rather than inputs
    consts: dict[str, np.ndarray] = field(default_factory=dict)  # extra ONNX initialisers
    rtol: float = 1e-5
    atol: float = 1e-6
    opset: int = OPSET  # the peer's (BitCast needs 26)

    @property
    def id(self) -> str:
        return f"{self.op}-{self.variant}"

    @property
    def inputs(self) -> list[np.ndarray]:
        return [a for k, a in self.args.items() if k not in self.weights]

    def graph(self) -> Graph:
        g = Graph()
        values = [g.add_weight(k, a) if k in self.weights else g.add_input(k, TensorType.of(a))
                  for k, a in self.args.items()]
        out = g.call(self.op, *values, name="y", **self.attrs)
        g.outputs = list(out) if isinstance(out, tuple) else [out]
        return g

    def onnx_model(self, g: Graph | None = None) -> onnx.ModelProto:
        g = g or self.graph()
        names = ["y"] if len(g.outputs) == 1 else [f"y{i}" for i in range(len(g.outputs))]

        def info(name, dtype, shape):
            return helper.make_tensor_value_info(
                name, helper.np_dtype_to_tensor_dtype(np.dtype(dtype)), shape)

        inputs = [info(k, a.dtype, a.shape) for k, a in self.args.items() if k not in self.weights]
        outputs = [info(n, v.type.np_dtype, None) for n, v in zip(names, g.outputs)]
        inits = {**{k: self.args[k] for k in self.weights}, **self.consts}
        graph = helper.make_graph(self.nodes, self.variant, inputs, outputs,
                                  [numpy_helper.from_array(a, k) for k, a in inits.items()])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  ir_version=IR_VERSION)
        return model  # onnxruntime checks it (onnx.checker wants output shapes we leave out)


CASES: list[Case] = []


def case(op: str, variant: str, args: dict, nodes, **kw) -> Case:
    c = Case(op, variant, args, nodes if isinstance(nodes, list) else [nodes], **kw)
    assert all(c.id != other.id for other in CASES), c.id
    CASES.append(c)
    return c


def by_op() -> dict[str, list[Case]]:
    out: dict[str, list[Case]] = defaultdict(list)
    for c in CASES:
        out[c.op].append(c)
    return dict(out)


def _load() -> None:
    from . import (  # noqa: F401
        cases_backward,
        cases_bf16,
        cases_elementwise,
        cases_fused,
        cases_math,
        cases_narrow,
        cases_nn,
        cases_quant,
        cases_recurrent,
        cases_shape,
        cases_volumetric,
    )


_load()
BY_OP: dict[str, list[Case]] = by_op()
