"""Loss layers: called as loss(prediction, target), returning a scalar by default."""

from __future__ import annotations

from ir import LaminaError

from .. import functional as F
from .module import Module


def _reduction(layer: str, reduction: str, size_average, reduce) -> str:
    if size_average is not None or reduce is not None:
        raise LaminaError(f"{layer}: size_average and reduce are deprecated in torch; use "
                          "reduction='mean' | 'sum' | 'none'")
    if reduction not in ("mean", "sum", "none"):
        raise LaminaError(f"{layer}: reduction must be 'mean', 'sum' or 'none', got "
                          f"{reduction!r}")
    return reduction


class CrossEntropyLoss(Module):
    """Softmax cross-entropy: targets are class indices (int) or probabilities (float).

    torch's constructor; class weights, label smoothing and ignoring a valid class index are
    not supported (refused, never silently computed differently from torch)."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if weight is not None or label_smoothing or ignore_index >= 0:
            raise LaminaError("CrossEntropyLoss: class weights, label_smoothing and "
                              "ignore_index >= 0 are not supported")
        self.reduction = _reduction("CrossEntropyLoss", reduction, size_average, reduce)
        self.ignore_index = ignore_index

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction)


class MSELoss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("MSELoss", reduction, size_average, reduce)

    def forward(self, prediction, target):
        return F.mse_loss(prediction, target, self.reduction)
