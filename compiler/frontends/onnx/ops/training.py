"""Operators of the ai.onnx.preview.training domain, registered under their qualified names
(`ai.onnx.preview.training.Gradient`).

Gradient {xs, y}: the gradients of `y` with respect to the tensors named in `xs` (graph
inputs or values computed before the node), built by Lamina's own reverse-mode autodiff
(passes/autodiff.py) into the graph being imported. A `y` that is not a scalar is
differentiated as the sum of its elements (a seed of ones)."""

from __future__ import annotations

import ir
from passes.autodiff import gradients

from ..builder import Builder, OnnxNode, Unsupported
from .common import HANDLERS

DOMAIN = "ai.onnx.preview.training"


def Gradient(b: Builder, n: OnnxNode, *_inputs):
    xs, y = n.get("xs"), n.get("y")
    if not xs or not y:
        raise ir.InvalidAttributeError("Gradient needs its xs and y attributes")
    env = b.env
    missing = [name for name in [*xs, y] if name not in env]
    if missing:
        raise ir.ShapeError(f"Gradient names {missing}, which no earlier node, input or "
                            "initialiser defines")
    targets, loss = [env[name] for name in xs], env[y]
    if not all(isinstance(v, ir.Value) for v in [*targets, loss]):
        raise Unsupported("a Gradient of or with respect to a value known at import time "
                          "(only values computed at run time have gradients here)")
    if loss.shape != ():
        loss = b.call("reduce_sum", loss, axes=list(range(loss.type.rank)), keepdims=False)
    return tuple(gradients(b.graph, loss, targets))


HANDLERS.alias(f"{DOMAIN}.Gradient", Gradient)
