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


def _normalized_shape(layer: str, normalized_shape) -> tuple:
    """torch's normalized_shape, an int or a sequence of them, as a checked tuple."""
    many = isinstance(normalized_shape, (list, tuple, np.ndarray))
    shape = tuple(normalized_shape) if many else (normalized_shape,)
    for d in shape:
        init.check_sizes(layer, normalized_shape=d)
    return shape


class LayerNorm(Module):
    def __init__(self, normalized_shape, eps: float = 1e-5, elementwise_affine: bool = True,
                 bias: bool = True):
        super().__init__()
        shape = _normalized_shape("LayerNorm", normalized_shape)
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


def _channel_shape(c: int, trailing: int) -> tuple[int, ...]:
    """A per-channel parameter's shape against [C, *trailing axes] (broadcasting)."""
    return (c,) + (1,) * trailing


class GroupNorm(Module):
    """torch's GroupNorm: channels (axis 1) split into `num_groups` groups, each normalised
    over its channels and spatial positions, then a per-channel affine map.

    The statistics are the layer_norm operator's (offset-safe: centred before the mean)."""

    def __init__(self, num_groups: int, num_channels: int, eps: float = 1e-5,
                 affine: bool = True):
        super().__init__()
        init.check_sizes("GroupNorm", ("num_groups",), num_groups=num_groups,
                         num_channels=num_channels)
        if num_channels % num_groups:
            raise ShapeError(f"GroupNorm: num_groups {num_groups} must divide num_channels "
                             f"{num_channels}")
        self.num_groups, self.num_channels, self.eps = num_groups, num_channels, eps
        self.affine = affine
        self.weight = np.ones(num_channels, np.float32) if affine else None
        self.bias = np.zeros(num_channels, np.float32) if affine else None

    def forward(self, x):
        if x.ndim < 2 or x.shape[1] != self.num_channels:
            raise ShapeError(f"{tracing.where()}expects [N, {self.num_channels}, *], got "
                             f"{list(x.shape)}")
        n = x.shape[0]
        y = F.layer_norm(x.reshape(n, self.num_groups, -1), (1,), eps=self.eps)
        y = y.reshape(*x.shape)
        return _affine(y, self.weight, self.bias, x.ndim - 2)

    def extra_repr(self):
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


def _affine(y, weight, bias, trailing: int):
    """y * weight + bias with per-channel parameters broadcast over `trailing` axes."""
    if weight is not None:
        y = y * F._tensor(weight).reshape(*_channel_shape(weight.shape[0], trailing))
    if bias is not None:
        y = y + F._tensor(bias).reshape(*_channel_shape(bias.shape[0], trailing))
    return y


class _InstanceNorm(_BatchNorm):
    """torch's instance norm: each sample's channel normalised over its own spatial axes
    (running statistics only in eval() with track_running_stats=True; as for batch norm, a
    traced training step does not update them). Unbatched input ([C, *spatial]) is accepted
    as torch accepts it."""

    spatial = 1

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1,
                 affine: bool = False, track_running_stats: bool = False):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def forward(self, x):
        k = self.spatial
        if x.ndim not in (k + 1, k + 2):
            raise_rank(self, x, (k + 1, k + 2))
        if x.shape[-k - 1] != self.num_features:
            raise ShapeError(f"{tracing.where()}expects {self.num_features} channels on axis "
                             f"{-k - 1}, got shape {list(x.shape)}")
        if self.track_running_stats and not self.training:
            batched = x if x.ndim == k + 2 else x.unsqueeze(0)
            y = F.batch_norm(batched, self.running_mean, self.running_var,
                             *self._affine_args(), False, self.momentum, self.eps)
            return y if x.ndim == k + 2 else y.squeeze(0)
        y = F.layer_norm(x, x.shape[-k:], eps=self.eps)
        return _affine(y, self.weight if self.affine else None,
                       self.bias if self.affine else None, k)

    def _affine_args(self):
        return (self.weight, self.bias) if self.affine else (self._ones, self._zeros)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    """Instance norm of [N, C, L] (or [C, L]) over L."""

    spatial = 1


class InstanceNorm2d(_InstanceNorm):
    """Instance norm of [N, C, H, W] (or [C, H, W]) over H and W."""

    spatial = 2


class RMSNorm(Module):
    """torch's RMSNorm: x / sqrt(mean(x^2 over normalized_shape) + eps) * weight; eps=None
    is float32's machine epsilon, as torch uses for a float32 input."""

    def __init__(self, normalized_shape, eps: float | None = None,
                 elementwise_affine: bool = True):
        super().__init__()
        shape = _normalized_shape("RMSNorm", normalized_shape)
        self.normalized_shape, self.eps = shape, eps
        self.elementwise_affine = elementwise_affine
        self.weight = np.ones(shape, np.float32) if elementwise_affine else None

    def forward(self, x):
        n = len(self.normalized_shape)
        if x.ndim < n or tuple(x.shape[x.ndim - n:]) != self.normalized_shape:
            raise ShapeError(f"{tracing.where()}normalized_shape {list(self.normalized_shape)} "
                             f"does not end the input shape {list(x.shape)}")
        eps = float(np.finfo(np.float32).eps) if self.eps is None else self.eps
        axes = tuple(range(x.ndim - n, x.ndim))
        y = x / ((x * x).mean(axes, keepdim=True) + eps).sqrt()
        return y * self.weight if self.weight is not None else y

    def extra_repr(self):
        return f"{self.normalized_shape}, eps={self.eps}"


class LocalResponseNorm(Module):
    """torch's LocalResponseNorm across channels (axis 1): x / (k + alpha * mean of x^2 over
    a window of `size` channels, zero-padded)^beta."""

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        init.check_sizes("LocalResponseNorm", ("size",), size=size)
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        if x.ndim < 3:
            raise_rank(self, x, (3, 4, 5))
        c = x.shape[1]
        sq = F.pad(x * x, [0, 0] * (x.ndim - 2) + [self.size // 2, (self.size - 1) // 2])
        window = sq.narrow(1, 0, c)
        for j in range(1, self.size):
            window = window + sq.narrow(1, j, c)
        div = (window * (self.alpha / self.size) + self.k) ** self.beta
        return x / div

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"
