"""The fused operators the passes create (ir/ops/fused.py states their contract).

fused_conv2d and fused_linear reuse the conv and linear kernels with their epilogue
(bias, residual, activation) applied in registers before the only store. fused_elementwise
is one broadcasting vector loop over the output (elementwise.map_kernel) whose body emits
the body graph's operators in order on the loaded values: numpy broadcasting commutes with
elementwise operators, so each body value is computed at the output element's position.
"""

from __future__ import annotations

import numpy as np

from ir import LaminaError

from .builder import ITEMSIZE, const, scalar_type
from .conv import conv
from .elementwise import EXPENSIVE, convert, map_kernel
from .emit import EMITTERS, emit
from .kernel import Kernel
from .linalg import linear
from .registry import lowering


@lowering("fused_conv2d")
def lower_fused_conv2d(k: Kernel) -> None:
    x, w, bias = k.inputs[:3]
    conv(k, x, w, bias, k.inputs[3] if len(k.inputs) > 3 else None, k.outputs[0])


@lowering("fused_linear")
def lower_fused_linear(k: Kernel) -> None:
    x, w, bias = k.inputs[:3]
    linear(k, x, w, bias, k.outputs[0], k.inputs[3] if len(k.inputs) > 3 else None)


@lowering("fused_elementwise")
def lower_fused_elementwise(k: Kernel) -> None:
    body = k.attrs["body"]
    for n in body.nodes:
        if n.op not in EMITTERS and n.op not in ("cast", "constant"):
            raise LaminaError(f"{k.where}: body node %{n.name} ({n.op}) has no elementwise "
                              f"emitter in the LLVM backend")
    widest = max(ITEMSIZE[v.dtype] for v in body.values())
    cost = sum(EXPENSIVE.get(n.op, 1) for n in body.nodes)

    def evaluate(b, vals):
        env = {id(p): v for p, v in zip(body.inputs, vals)}
        lanes = getattr(vals[0].type, "count", 1) if vals else 1
        for n in body.nodes:
            args = [env[id(v)] for v in n.inputs]
            if n.op == "constant":
                value = const(scalar_type(n.output.dtype), _literal(n))
                env[id(n.output)] = b.splat(value, lanes)
            elif n.op == "cast":
                env[id(n.output)] = convert(b, args[0], n.inputs[0].dtype, n.output.dtype)
            else:
                env[id(n.output)] = emit(b, n.op, args, n.output.dtype, n.attrs)
        return env[id(body.outputs[0])]

    map_kernel(k, evaluate, cost=cost, lanes=k.cg.lanes(widest))


def _literal(n):
    """The constant's value converted as numpy's np.full converts it."""
    value = np.full((), n.attrs["value"], n.output.type.np_dtype)
    return float(value) if n.output.dtype in ("f32", "f64") else int(value)
