"""Loss layers: called as loss(prediction, target), returning a scalar by default."""

from __future__ import annotations

from .. import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    """Softmax cross-entropy: targets are class indices (int) or probabilities (float)."""

    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, self.reduction)


class MSELoss(Module):
    def __init__(self, reduction: str = "mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, prediction, target):
        return F.mse_loss(prediction, target, self.reduction)
