"""Loss layers: called as loss(prediction, target), returning a scalar by default."""

from __future__ import annotations

import numpy as np

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
    """Softmax cross-entropy: targets are class indices (int) or probabilities (float), with
    torch's class weights (a `weight` buffer), ignore_index and label_smoothing."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean", label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing <= 1.0:
            raise LaminaError(f"CrossEntropyLoss: label_smoothing must be in [0, 1], got "
                              f"{label_smoothing}")
        self.reduction = _reduction("CrossEntropyLoss", reduction, size_average, reduce)
        self.register_buffer("weight", _array(weight))
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, logits, target):
        return F.cross_entropy_loss(logits, target, self.weight, self.ignore_index,
                                    self.reduction, self.label_smoothing)


def _array(weight):
    """A weight given as a tensor-like (torch users pass tensors) as float32, or None."""
    if weight is None:
        return None
    return np.array(weight.detach().numpy() if hasattr(weight, "detach") else weight,
                    np.float32)


class NLLLoss(Module):
    """Negative log-likelihood of class indices, from log-probabilities [N, C, *]."""

    def __init__(self, weight=None, size_average=None, ignore_index: int = -100, reduce=None,
                 reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("NLLLoss", reduction, size_average, reduce)
        self.register_buffer("weight", _array(weight))
        self.ignore_index = ignore_index

    def forward(self, log_probs, target):
        return F.nll_loss(log_probs, target, self.weight, self.ignore_index, self.reduction)


class BCELoss(Module):
    """Binary cross-entropy of probabilities, each log clamped at -100 (torch's rule)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("BCELoss", reduction, size_average, reduce)
        self.register_buffer("weight", _array(weight))

    def forward(self, probs, target):
        return F.binary_cross_entropy(probs, target, self.weight, self.reduction)


class BCEWithLogitsLoss(Module):
    """Binary cross-entropy of logits in torch's overflow-free form; `pos_weight` scales the
    positive term (a buffer, like `weight`)."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction: str = "mean",
                 pos_weight=None):
        super().__init__()
        self.reduction = _reduction("BCEWithLogitsLoss", reduction, size_average, reduce)
        self.register_buffer("weight", _array(weight))
        self.register_buffer("pos_weight", _array(pos_weight))

    def forward(self, logits, target):
        return F.binary_cross_entropy_with_logits(logits, target, self.weight, self.reduction,
                                                  self.pos_weight)


class L1Loss(Module):
    """Absolute error |prediction - target|, averaged or summed."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("L1Loss", reduction, size_average, reduce)

    def forward(self, prediction, target):
        return F.l1_loss(prediction, target, self.reduction)


class SmoothL1Loss(Module):
    """Quadratic below `beta`, linear above (beta = 0 is L1)."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 beta: float = 1.0):
        super().__init__()
        if beta < 0:
            raise LaminaError(f"SmoothL1Loss: beta must be >= 0, got {beta}")
        self.reduction = _reduction("SmoothL1Loss", reduction, size_average, reduce)
        self.beta = beta

    def forward(self, prediction, target):
        return F.smooth_l1_loss(prediction, target, self.reduction, self.beta)


class HuberLoss(Module):
    """Quadratic up to `delta`, then linear with slope delta."""

    def __init__(self, reduction: str = "mean", delta: float = 1.0):
        super().__init__()
        if delta <= 0:
            raise LaminaError(f"HuberLoss: delta must be > 0, got {delta}")
        self.reduction = _reduction("HuberLoss", reduction, None, None)
        self.delta = delta

    def forward(self, prediction, target):
        return F.huber_loss(prediction, target, self.reduction, self.delta)


class KLDivLoss(Module):
    """KL divergence with log-probability inputs; targets are probabilities (or their logs
    with log_target=True). reduction 'batchmean' is the mathematically proper mean."""

    def __init__(self, size_average=None, reduce=None, reduction: str = "mean",
                 log_target: bool = False):
        super().__init__()
        batchmean = reduction == "batchmean"
        self.reduction = "batchmean" if batchmean else \
            _reduction("KLDivLoss", reduction, size_average, reduce)
        self.log_target = log_target

    def forward(self, log_probs, target):
        return F.kl_div(log_probs, target, self.reduction, self.log_target)


class MSELoss(Module):
    def __init__(self, size_average=None, reduce=None, reduction: str = "mean"):
        super().__init__()
        self.reduction = _reduction("MSELoss", reduction, size_average, reduce)

    def forward(self, prediction, target):
        return F.mse_loss(prediction, target, self.reduction)
