"""3-D convolution and pooling, transposed convolutions and adaptive pooling, with torch.nn's
constructor signatures, defaults and state_dict keys: Conv3d, ConvTranspose1d/2d/3d,
MaxPool3d, AvgPool3d, AdaptiveAvgPool1d/3d and AdaptiveMaxPool1d/2d/3d.

Each accepts torch's unbatched input too ([C, *spatial]), computed as a batch of one."""

from __future__ import annotations

import math

from ir import ShapeError

from .. import functional as F
from ..frontends import tracing
from . import init
from .layers import _PAD_MODES as PAD_MODES  # torch's padding modes -> F.pad's
from .module import Module


def _ntuple(v, k: int, layer: str, name: str) -> tuple[int, ...]:
    """torch's size argument: an int, or a tuple of `k` ints."""
    t = (v,) * k if isinstance(v, int) else tuple(v)
    if len(t) != k or not all(isinstance(x, int) for x in t):
        raise ShapeError(f"{layer}: {name} must be an int or a {k}-tuple of ints, got {v!r}")
    return t


def _batched(x, k: int, layer: str):
    """x as [N, C, *spatial] (k spatial axes), and whether it came unbatched."""
    if x.ndim not in (k + 1, k + 2):
        raise ShapeError(f"{tracing.where() or layer + ': '}expects a {k + 2}-D batch or a "
                         f"{k + 1}-D unbatched input, got {list(x.shape)}")
    return (x.unsqueeze(0), True) if x.ndim == k + 1 else (x, False)


def _unbatched(y, unbatched: bool):
    return y.squeeze(0) if unbatched else y


def _check_channels(layer, in_channels, out_channels, groups):
    init.check_sizes(layer, ("groups",), in_channels=in_channels, out_channels=out_channels,
                     groups=groups)
    if in_channels % groups or out_channels % groups:
        raise ShapeError(f"{layer}: groups={groups} must divide in_channels {in_channels} "
                         f"and out_channels {out_channels}")


class Conv3d(Module):
    """torch's Conv3d: cross-correlation over [N, C, D, H, W] with weight
    [out_channels, in_channels/groups, kD, kH, kW]; `padding` an int, a triple, 'same' or
    'valid'; `padding_mode` 'zeros', 'reflect', 'replicate' or 'circular'."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__()
        _check_channels("Conv3d", in_channels, out_channels, groups)
        if padding_mode not in PAD_MODES:
            raise ShapeError(f"Conv3d: padding_mode must be one of {sorted(PAD_MODES)}, got "
                             f"{padding_mode!r}")
        self.kernel_size = _ntuple(kernel_size, 3, "Conv3d", "kernel_size")
        for k in self.kernel_size:
            init.check_sizes("Conv3d", ("kernel_size",), kernel_size=k)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.stride = _ntuple(stride, 3, "Conv3d", "stride")
        self.padding = padding if isinstance(padding, str) else \
            _ntuple(padding, 3, "Conv3d", "padding")
        if isinstance(padding, str) and padding not in ("same", "valid"):
            raise ShapeError(f"Conv3d: padding must be 'same', 'valid' or sizes, got "
                             f"{padding!r}")
        self.dilation = _ntuple(dilation, 3, "Conv3d", "dilation")
        self.padding_mode = padding_mode
        fan_in = in_channels // groups * math.prod(self.kernel_size)
        self.weight = init.fan_in_uniform((out_channels, in_channels // groups,
                                           *self.kernel_size), fan_in)
        self.bias = init.fan_in_uniform((out_channels,), fan_in) if bias else None

    def forward(self, x):
        x, unbatched = _batched(x, 3, "Conv3d")
        pads = F.window_padding(self.padding, self.kernel_size, self.dilation)
        if self.padding_mode != "zeros" and any(pads):
            # F.pad's pairs run from the last axis back: (left, right, top, bottom, ...)
            pairs = [v for i in (2, 1, 0) for v in (pads[i], pads[i + 3])]
            x = F.pad(x, pairs, PAD_MODES[self.padding_mode])
            pads = (0,) * 6
        y = F.conv3d(x, self.weight, self.bias, self.stride, pads, self.dilation, self.groups)
        return _unbatched(y, unbatched)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}")


class _ConvTransposeNd(Module):
    """torch's ConvTranspose{k}d: the gradient of a convolution with respect to its input,
    weight [in_channels, out_channels/groups, *kernel]; `output_padding` (smaller than the
    stride or the dilation) adds to one side of the output, and forward's `output_size`
    picks it instead."""

    k = 0

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 output_padding=0, groups: int = 1, bias: bool = True, dilation=1,
                 padding_mode: str = "zeros"):
        super().__init__()
        name, k = type(self).__name__, self.k
        _check_channels(name, in_channels, out_channels, groups)
        if padding_mode != "zeros":
            raise ShapeError(f"{name}: only padding_mode 'zeros' is supported (as in torch), "
                             f"got {padding_mode!r}")
        self.kernel_size = _ntuple(kernel_size, k, name, "kernel_size")
        for kk in self.kernel_size:
            init.check_sizes(name, ("kernel_size",), kernel_size=kk)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.stride = _ntuple(stride, k, name, "stride")
        self.padding = _ntuple(padding, k, name, "padding")
        self.output_padding = _ntuple(output_padding, k, name, "output_padding")
        self.dilation = _ntuple(dilation, k, name, "dilation")
        self.padding_mode = padding_mode
        # torch computes the fan from weight dim 1: out_channels/groups * kernel
        fan_in = out_channels // groups * math.prod(self.kernel_size)
        self.weight = init.fan_in_uniform((in_channels, out_channels // groups,
                                           *self.kernel_size), fan_in)
        self.bias = init.fan_in_uniform((out_channels,), fan_in) if bias else None

    def forward(self, x, output_size=None):
        x, unbatched = _batched(x, self.k, type(self).__name__)
        y = F._conv_transpose(x, self.weight, self.bias, self.stride, self.padding,
                              self._output_padding(x, output_size), self.groups,
                              self.dilation, self.k)
        return _unbatched(y, unbatched)

    def _output_padding(self, x, output_size):
        if output_size is None:
            return self.output_padding
        sizes = list(output_size)[-self.k:]
        least = [(x.shape[2 + i] - 1) * self.stride[i] - 2 * self.padding[i]
                 + self.dilation[i] * (self.kernel_size[i] - 1) + 1 for i in range(self.k)]
        if len(sizes) != self.k:
            raise ShapeError(f"{tracing.where()}output_size {list(output_size)} needs {self.k} "
                             "spatial sizes")
        return tuple(s - lo for s, lo in zip(sizes, least))

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, "
                f"output_padding={self.output_padding}, groups={self.groups}")


class ConvTranspose1d(_ConvTransposeNd):
    __doc__ = _ConvTransposeNd.__doc__.replace("{k}", "1")
    k = 1


class ConvTranspose2d(_ConvTransposeNd):
    __doc__ = _ConvTransposeNd.__doc__.replace("{k}", "2")
    k = 2


class ConvTranspose3d(_ConvTransposeNd):
    __doc__ = _ConvTransposeNd.__doc__.replace("{k}", "3")
    k = 3


class MaxPool3d(Module):
    """torch's MaxPool3d over [N, C, D, H, W]; padding (at most half the kernel) never wins."""

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise ShapeError("MaxPool3d: return_indices=True is not supported")
        self.kernel_size = _ntuple(kernel_size, 3, "MaxPool3d", "kernel_size")
        self.stride = self.kernel_size if stride is None else _ntuple(stride, 3, "MaxPool3d",
                                                                      "stride")
        self.padding = _ntuple(padding, 3, "MaxPool3d", "padding")
        self.dilation = _ntuple(dilation, 3, "MaxPool3d", "dilation")
        self.ceil_mode = ceil_mode

    def forward(self, x):
        x, unbatched = _batched(x, 3, "MaxPool3d")
        y = F.max_pool3d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                         self.ceil_mode)
        return _unbatched(y, unbatched)


class AvgPool3d(Module):
    """torch's AvgPool3d over [N, C, D, H, W]; count_include_pad counts the zero padding in
    each window's divisor (never the ceil_mode margin)."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
                 count_include_pad: bool = True, divisor_override=None):
        super().__init__()
        if divisor_override is not None:
            raise ShapeError("AvgPool3d: divisor_override is not supported")
        self.kernel_size = _ntuple(kernel_size, 3, "AvgPool3d", "kernel_size")
        self.stride = self.kernel_size if stride is None else _ntuple(stride, 3, "AvgPool3d",
                                                                      "stride")
        self.padding = _ntuple(padding, 3, "AvgPool3d", "padding")
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        x, unbatched = _batched(x, 3, "AvgPool3d")
        y = F.avg_pool3d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                         self.count_include_pad)
        return _unbatched(y, unbatched)


class _AdaptivePool(Module):
    """torch's adaptive pooling: output i of an axis of length L pools the input window
    [floor(i*L/O), ceil((i+1)*L/O)), for any output size O (None keeps the axis)."""

    fn = None

    def __init__(self, output_size, return_indices: bool = False):
        super().__init__()
        if return_indices:
            raise ShapeError(f"{type(self).__name__}: return_indices=True is not supported")
        self.output_size = output_size

    def forward(self, x):
        return type(self).fn(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(_AdaptivePool):
    """torch's AdaptiveAvgPool1d: the mean of each adaptive window of the last axis."""

    fn = staticmethod(F.adaptive_avg_pool1d)

    def __init__(self, output_size):
        super().__init__(output_size)


class AdaptiveAvgPool3d(_AdaptivePool):
    """torch's AdaptiveAvgPool3d: the mean of each adaptive window of the last three axes."""

    fn = staticmethod(F.adaptive_avg_pool3d)

    def __init__(self, output_size):
        super().__init__(output_size)


class AdaptiveMaxPool1d(_AdaptivePool):
    """torch's AdaptiveMaxPool1d: the max of each adaptive window of the last axis."""

    fn = staticmethod(F.adaptive_max_pool1d)


class AdaptiveMaxPool2d(_AdaptivePool):
    """torch's AdaptiveMaxPool2d: the max of each adaptive window of the last two axes."""

    fn = staticmethod(F.adaptive_max_pool2d)


class AdaptiveMaxPool3d(_AdaptivePool):
    """torch's AdaptiveMaxPool3d: the max of each adaptive window of the last three axes."""

    fn = staticmethod(F.adaptive_max_pool3d)
