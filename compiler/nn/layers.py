"""Feed-forward layers: linear, convolution, pooling, dropout, embedding, activations."""

from __future__ import annotations

import itertools

from ir import ShapeError

from .. import functional as F
from . import init
from .module import Module


def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)


# torch's Conv2d padding modes -> the pad operator's modes
_PAD_MODES = {"zeros": "constant", "reflect": "reflect", "replicate": "edge",
              "circular": "circular"}


class Identity(Module):
    def forward(self, x):
        return x


class Linear(Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        init.check_sizes("Linear", in_features=in_features, out_features=out_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.fan_in_uniform((out_features, in_features), in_features)
        self.bias = init.fan_in_uniform((out_features,), in_features) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Conv2d(Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 dilation=1, groups: int = 1, bias: bool = True, padding_mode: str = "zeros"):
        super().__init__()
        init.check_sizes("Conv2d", ("groups",), in_channels=in_channels,
                         out_channels=out_channels, groups=groups)
        if padding_mode not in _PAD_MODES:
            raise ShapeError(f"Conv2d: padding_mode must be one of {sorted(_PAD_MODES)}, got "
                             f"{padding_mode!r}")
        if in_channels % groups or out_channels % groups:
            raise ShapeError(f"Conv2d: groups={groups} must divide in_channels {in_channels} "
                             f"and out_channels {out_channels}")
        self.padding_mode = padding_mode
        pair = tuple(kernel_size) if isinstance(kernel_size, (list, tuple)) else (kernel_size,) * 2
        if len(pair) != 2:
            raise ShapeError(f"Conv2d: kernel_size must be an int or a pair, got {kernel_size!r}")
        for k in pair:
            init.check_sizes("Conv2d", ("kernel_size",), kernel_size=k)
        kh, kw = pair
        self.in_channels, self.out_channels, self.kernel_size = in_channels, out_channels, (kh, kw)
        self.stride, self.padding, self.dilation, self.groups = stride, padding, dilation, groups
        fan_in = in_channels // groups * kh * kw
        self.weight = init.fan_in_uniform((out_channels, in_channels // groups, kh, kw), fan_in)
        self.bias = init.fan_in_uniform((out_channels,), fan_in) if bias else None

    def forward(self, x):
        if self.padding_mode == "zeros" or self.padding in (0, (0, 0), "valid"):
            return F.conv2d(x, self.weight, self.bias, self.stride, self.padding,
                            self.dilation, self.groups)
        if isinstance(self.padding, str):  # 'same': the split F.conv2d would use
            top, left, bottom, right = F.same_padding(self.kernel_size, _pair(self.dilation))
        else:
            (top, left), (bottom, right) = _pair(self.padding), _pair(self.padding)
        x = F.pad(x, (left, right, top, bottom), _PAD_MODES[self.padding_mode])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)

    def extra_repr(self):
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, padding={self.padding}, groups={self.groups}")


class MaxPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1,
                 return_indices: bool = False, ceil_mode: bool = False):
        super().__init__()
        if return_indices:
            raise ShapeError("MaxPool2d: return_indices=True is not supported")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.dilation, self.ceil_mode = dilation, ceil_mode

    def forward(self, x):
        return F.max_pool2d(x, self.kernel_size, self.stride, self.padding, self.dilation,
                            self.ceil_mode)


class AvgPool2d(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__()
        if divisor_override is not None:
            raise ShapeError("AvgPool2d: divisor_override is not supported")
        self.kernel_size, self.stride, self.padding = kernel_size, stride, padding
        self.ceil_mode, self.count_include_pad = ceil_mode, count_include_pad

    def forward(self, x):
        return F.avg_pool2d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size: global (1), or any size that divides the
    input (torchvision's `AdaptiveAvgPool2d((7, 7))` on 7x7 or 14x14 maps)."""

    def __init__(self, output_size=1):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)


class Flatten(Module):
    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)


_dropout_seeds = itertools.count()


def next_dropout_seed() -> int:
    """A fresh seed per dropout site: each gets its own reproducible mask stream."""
    return next(_dropout_seeds)


class Dropout(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False, *, seed: int | None = None):
        super().__init__()
        if not 0 <= p < 1:
            raise ShapeError(f"Dropout: p must be in [0, 1), got {p}")
        self.p = p
        self.seed = seed if seed is not None else next_dropout_seed()

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.seed)

    def extra_repr(self):
        return f"p={self.p}"


class Embedding(Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None):
        super().__init__()
        init.check_sizes("Embedding", num_embeddings=num_embeddings, embedding_dim=embedding_dim)
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ShapeError(f"Embedding: padding_idx {padding_idx} must be within "
                             f"num_embeddings {num_embeddings}")
        # torch keeps it non-negative
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        self.weight = init.normal((num_embeddings, embedding_dim))
        if padding_idx is not None:  # torch: the padding row starts (and stays) zero
            self.weight[padding_idx] = 0

    def forward(self, indices):
        return F.embedding(indices, self.weight, self.padding_idx)


class _Activation(Module):
    fn = staticmethod(F.relu)

    def forward(self, x):
        return self.fn(x)


class ReLU(_Activation):
    fn = staticmethod(F.relu)

    def __init__(self, inplace: bool = False):  # torch's flag; tracing has no aliasing
        super().__init__()


class ReLU6(_Activation):
    fn = staticmethod(F.relu6)

    def __init__(self, inplace: bool = False):
        super().__init__()


class Sigmoid(_Activation):
    fn = staticmethod(lambda x: F.sigmoid(x))


class Tanh(_Activation):
    fn = staticmethod(lambda x: F.tanh(x))


class LeakyReLU(Module):
    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)


class GELU(Module):
    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, self.approximate)


class SiLU(_Activation):
    fn = staticmethod(F.silu)

    def __init__(self, inplace: bool = False):  # torch's flag; tracing has no aliasing
        super().__init__()


class Mish(SiLU):
    fn = staticmethod(F.mish)


class Hardswish(SiLU):
    fn = staticmethod(F.hardswish)


class Hardsigmoid(SiLU):
    fn = staticmethod(F.hardsigmoid)


class SELU(SiLU):
    fn = staticmethod(F.selu)


class Softsign(_Activation):
    fn = staticmethod(F.softsign)


class ELU(Module):
    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return F.elu(x, self.alpha)

    def extra_repr(self):
        return f"alpha={self.alpha}"


class Softplus(Module):
    def __init__(self, beta: float = 1.0, threshold: float = 20.0):
        super().__init__()
        self.beta, self.threshold = beta, threshold

    def forward(self, x):
        return F.softplus(x, self.beta, self.threshold)

    def extra_repr(self):
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False):
        super().__init__()
        if max_val <= min_val:
            raise ShapeError(f"Hardtanh: max_val {max_val} must be greater than min_val "
                             f"{min_val}")
        self.min_val, self.max_val = min_val, max_val

    def forward(self, x):
        return F.hardtanh(x, self.min_val, self.max_val)


class Unflatten(Module):
    """Axis `dim` becomes the axes `unflattened_size` (one of them may be -1)."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        d = self.dim % x.ndim
        return x.reshape(*x.shape[:d], *self.unflattened_size, *x.shape[d + 1:])

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


class Softmax(Module):
    def __init__(self, dim: int = -1):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim)


class LogSoftmax(Softmax):
    def forward(self, x):
        return F.log_softmax(x, self.dim)
