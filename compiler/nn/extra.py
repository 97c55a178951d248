"""More torch.nn layers written with existing operators: 1-D convolution and pooling (the
2-D operators over a unit height), PReLU, pixel (un)shuffle, upsampling, cosine similarity
and the bilinear layer."""

from __future__ import annotations

import math

import numpy as np

from ir import ShapeError

from .. import functional as F
from ..frontends import tracing
from . import init
from .layers import _PAD_MODES
from .module import Module

_init = init  # PReLU's argument `init` (torch's name) shadows the module there


def _single(v, layer: str, name: str) -> int:
    """torch's 1-D size argument: an int or a 1-tuple."""
    if isinstance(v, (tuple, list)):
        if len(v) != 1:
            raise ShapeError(f"{layer}: {name} must be an int or a 1-tuple, got {v!r}")
        v = v[0]
    return int(v)


def _to_2d(x, layer):
    """[N, C, L] (or unbatched [C, L]) as [N, C, 1, L] for the 2-D operators."""
    if x.ndim not in (2, 3):
        raise ShapeError(f"{tracing.where() or layer + ': '}expects [N, C, L] or [C, L], got "
                         f"{list(x.shape)}")
    return (x if x.ndim == 3 else x.unsqueeze(0)).unsqueeze(2), x.ndim == 2


def _from_2d(y, unbatched: bool):
    y = y.squeeze(2)
    return y.squeeze(0) if unbatched else y


class Conv1d(Module):
    """torch's Conv1d, computed as conv2d over a unit height; weight [out, in/groups, k]."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__()
        init.check_sizes("Conv1d", ("groups", "kernel_size"), in_channels=in_channels,
                         out_channels=out_channels, groups=groups,
                         kernel_size=_single(kernel_size, "Conv1d", "kernel_size"))
        if padding_mode not in _PAD_MODES:
            raise ShapeError(f"Conv1d: padding_mode must be one of {sorted(_PAD_MODES)}, got "
                             f"{padding_mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"Conv1d: groups={groups} must divide in_channels {in_channels} "
                             f"and out_channels {out_channels}")
        k = _single(kernel_size, "Conv1d", "kernel_size")
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (k,)
        self.stride = (_single(stride, "Conv1d", "stride"),)
        self.padding = padding if isinstance(padding, str) else \
            (_single(padding, "Conv1d", "padding"),)
        self.dilation = (_single(dilation, "Conv1d", "dilation"),)
        self.groups, self.padding_mode = groups, padding_mode
        fan_in = in_channels // groups * k
        self.weight = init.fan_in_uniform((out_channels, in_channels // groups, k), fan_in)
        self.bias = init.fan_in_uniform((out_channels,), fan_in) if bias else None

    def forward(self, x):
        x2, unbatched = _to_2d(x, "Conv1d")
        (d,), (k,) = self.dilation, self.kernel_size
        if isinstance(self.padding, str):  # 'same' puts the odd unit at the end, as torch
            total = d * (k - 1) if self.padding == "same" else 0
            left, right = total // 2, total - total // 2
        else:
            left = right = self.padding[0]
        if self.padding_mode != "zeros" and (left or right):
            x2 = F.pad(x2, (left, right), _PAD_MODES[self.padding_mode])
            left = right = 0
        w = F._tensor(self.weight).unsqueeze(2)
        y = F.conv2d(x2, w, self.bias, (1, self.stride[0]), (0, left, 0, right), (1, d),
                     self.groups)
        return _from_2d(y, unbatched)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}")


class MaxPool1d(Module):
    """torch's MaxPool1d, as max_pool2d over a unit height."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise ShapeError("MaxPool1d: return_indices=True is not supported")
        self.kernel_size = _single(kernel_size, "MaxPool1d", "kernel_size")
        self.stride = self.kernel_size if stride is None else _single(stride, "MaxPool1d",
                                                                      "stride")
        self.padding = _single(padding, "MaxPool1d", "padding")
        self.dilation = _single(dilation, "MaxPool1d", "dilation")
        self.ceil_mode = ceil_mode

    def forward(self, x):
        x2, unbatched = _to_2d(x, "MaxPool1d")
        y = F.max_pool2d(x2, (1, self.kernel_size), (1, self.stride), (0, self.padding),
                         (1, self.dilation), self.ceil_mode)
        return _from_2d(y, unbatched)


class AvgPool1d(Module):
    """torch's AvgPool1d, as avg_pool2d over a unit height."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True):
        super().__init__()
        self.kernel_size = _single(kernel_size, "AvgPool1d", "kernel_size")
        self.stride = self.kernel_size if stride is None else _single(stride, "AvgPool1d",
                                                                      "stride")
        self.padding = _single(padding, "AvgPool1d", "padding")
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        x2, unbatched = _to_2d(x, "AvgPool1d")
        y = F.avg_pool2d(x2, (1, self.kernel_size), (1, self.stride), (0, self.padding),
                         self.ceil_mode, self.count_include_pad)
        return _from_2d(y, unbatched)


class PReLU(Module):
    """x where x > 0, else weight * x; weight is one slope, or one per channel (axis 1)."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25):
        super().__init__()
        _init.check_sizes("PReLU", ("num_parameters",), num_parameters=num_parameters)
        self.num_parameters = num_parameters
        self.weight = np.full(num_parameters, init, np.float32)

    def forward(self, x):
        w = F._tensor(self.weight)
        if self.num_parameters > 1:
            if x.ndim < 2 or x.shape[1] != self.num_parameters:
                raise ShapeError(f"{tracing.where()}{self.num_parameters} slopes for axis 1 "
                                 f"of an input of shape {list(x.shape)}")
            w = w.reshape(self.num_parameters, *(1,) * (x.ndim - 2))
        return F.where(x > 0, x, x * w)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class PixelShuffle(Module):
    """[*, C r^2, H, W] -> [*, C, H r, W r] (a reshape and a transpose)."""

    def __init__(self, upscale_factor: int):
        super().__init__()
        init.check_sizes("PixelShuffle", ("upscale_factor",), upscale_factor=upscale_factor)
        self.upscale_factor = upscale_factor

    def forward(self, x):
        r = self.upscale_factor
        if x.ndim < 3 or x.shape[-3] % (r * r):
            raise ShapeError(f"{tracing.where()}PixelShuffle({r}) needs [*, C*{r * r}, H, W], "
                             f"got {list(x.shape)}")
        *lead, c, h, w = x.shape
        n = len(lead)
        y = x.reshape(*lead, c // (r * r), r, r, h, w)
        y = y.permute(*range(n), n, n + 3, n + 1, n + 4, n + 2)
        return y.reshape(*lead, c // (r * r), h * r, w * r)

    def extra_repr(self):
        return f"upscale_factor={self.upscale_factor}"


class PixelUnshuffle(Module):
    """[*, C, H r, W r] -> [*, C r^2, H, W], the inverse of PixelShuffle."""

    def __init__(self, downscale_factor: int):
        super().__init__()
        init.check_sizes("PixelUnshuffle", ("downscale_factor",),
                         downscale_factor=downscale_factor)
        self.downscale_factor = downscale_factor

    def forward(self, x):
        r = self.downscale_factor
        if x.ndim < 3 or x.shape[-1] % r or x.shape[-2] % r:
            raise ShapeError(f"{tracing.where()}PixelUnshuffle({r}) needs [*, C, H, W] with H "
                             f"and W multiples of {r}, got {list(x.shape)}")
        *lead, c, h, w = x.shape
        n = len(lead)
        y = x.reshape(*lead, c, h // r, r, w // r, r)
        y = y.permute(*range(n), n, n + 2, n + 4, n + 1, n + 3)
        return y.reshape(*lead, c * r * r, h // r, w // r)

    def extra_repr(self):
        return f"downscale_factor={self.downscale_factor}"


class Upsample(Module):
    """torch's Upsample: modes 'nearest' (any size), 'linear', 'bilinear' and 'bicubic' (with
    or without align_corners), by F.interpolate."""

    def __init__(self, size=None, scale_factor=None, mode: str = "nearest",
                 align_corners: bool | None = None, recompute_scale_factor: bool | None = None):
        super().__init__()
        self.size, self.scale_factor, self.mode = size, scale_factor, mode
        self.align_corners, self.recompute_scale_factor = align_corners, recompute_scale_factor
        F.check_interpolate(size, scale_factor, mode, align_corners, recompute_scale_factor)

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             self.recompute_scale_factor)

    def extra_repr(self):
        return f"size={self.size}, scale_factor={self.scale_factor}, mode={self.mode!r}"


class CosineSimilarity(Module):
    """Cosine of the angle between x1 and x2 along `dim`: each divided by max(norm, eps)."""

    def __init__(self, dim: int = 1, eps: float = 1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class Bilinear(Module):
    """y = x1^T W x2 + b per output feature; weight [out, in1, in2], bias [out]."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int,
                 bias: bool = True):
        super().__init__()
        init.check_sizes("Bilinear", in1_features=in1_features, in2_features=in2_features,
                         out_features=out_features)
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        bound = 1 / math.sqrt(in1_features) if in1_features else 0.0
        self.weight = init.uniform((out_features, in1_features, in2_features), bound)
        self.bias = init.uniform((out_features,), bound) if bias else None

    def forward(self, x1, x2):
        i, j, o = self.in1_features, self.in2_features, self.out_features
        if x1.shape[-1] != i or x2.shape[-1] != j or x1.shape[:-1] != x2.shape[:-1]:
            raise ShapeError(f"{tracing.where()}expects [*, {i}] and [*, {j}] with the same "
                             f"leading axes, got {list(x1.shape)} and {list(x2.shape)}")
        lead = x1.shape[:-1]
        w = F._tensor(self.weight).permute(1, 0, 2).reshape(i, o * j)
        t = (x1.reshape(-1, i) @ w).reshape(-1, o, j)  # [B, out, in2]
        y = (t * x2.reshape(-1, 1, j)).sum(-1)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*lead, o)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")
