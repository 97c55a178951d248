"""Normalisation layers with torch's parameter names and buffers."""

from __future__ import annotations

import numpy as np

from ir import ShapeError

from .. import functional as F
from ..frontends import tracing
from . import init
from .module import Module


class _BatchNorm(Module):
    """torch's batch norm: running statistics in eval(), batch statistics in train().

    A traced graph has no side effects, so training-mode calls do not update the running
    statistics (torch's do)."""

    rank: tuple[int, ...] = ()

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = True, track_running_stats: bool = True):
        super().__init__()
        init.check_sizes(type(self).__name__, num_features=num_features)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = np.ones(num_features, np.float32) if affine else None
        self.bias = np.zeros(num_features, np.float32) if affine else None
        if track_running_stats:
            self.register_buffer("running_mean", np.zeros(num_features, np.float32))
            self.register_buffer("running_var", np.ones(num_features, np.float32))
            self.register_buffer("num_batches_tracked", np.zeros((), np.int64))
        # stand-ins for what torch leaves out (not parameters: no state_dict entries)
        object.__setattr__(self, "_ones", np.ones(num_features, np.float32))
        object.__setattr__(self, "_zeros", np.zeros(num_features, np.float32))

    def forward(self, x):
        if x.ndim not in self.rank:
            raise_rank(self, x, self.rank)
        tracked = self.track_running_stats
        mean = self.running_mean if tracked else self._zeros
        var = self.running_var if tracked else self._ones
        weight = self.weight if self.affine else self._ones
        bias = self.bias if self.affine else self._zeros
        return F.batch_norm(x, mean, var, weight, bias, self.training or not tracked,
                            self.momentum, self.eps)

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


def raise_rank(layer, x, ranks):
    where = tracing.where() or f"{type(layer).__name__}: "
    raise ShapeError(f"{where}expects input of rank {' or '.join(map(str, ranks))}, got shape "
                     f"{list(x.shape)}")


class BatchNorm1d(_BatchNorm):
    rank = (2, 3)


class BatchNorm2d(_BatchNorm):
    rank = (4,)


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        many = isinstance(normalized_shape, (list, tuple, np.ndarray))
        shape = tuple(normalized_shape) if many else (normalized_shape,)
        for d in shape:
            init.check_sizes("LayerNorm", normalized_shape=d)
        self.normalized_shape, self.eps = shape, eps
        self.weight = np.ones(shape, np.float32) if elementwise_affine else None
        self.bias = np.zeros(shape, np.float32) if elementwise_affine and bias else None

    def forward(self, x):
        n = len(self.normalized_shape)
        if tuple(x.shape[x.ndim - n:]) != self.normalized_shape or x.ndim < n:
            raise ShapeError(f"{tracing.where()}normalized_shape {list(self.normalized_shape)} "
                             f"does not end the input shape {list(x.shape)}")
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"
