"""Parameter initialisation with torch's default rules, from one seedable generator."""

from __future__ import annotations

import math

import numpy as np

from ir import ShapeError
from ir.tensor_type import MAX_DIM

_state = {"rng": np.random.default_rng(0)}


def manual_seed(seed: int) -> None:
    """Make every later layer construction reproducible (torch.manual_seed's role)."""
    _state["rng"] = np.random.default_rng(seed)


def check_sizes(layer: str, positive: tuple[str, ...] = (), **sizes) -> None:
    """Refuse a layer size that is not a non-negative integer (positive for the names in
    `positive`), naming the layer and the argument: numpy would fail later, and vaguely."""
    for name, v in sizes.items():
        lo = 1 if name in positive else 0
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or not lo <= v < MAX_DIM:
            raise ShapeError(f"{layer}: {name} must be a {'positive' if lo else 'non-negative'} "
                             f"integer, got {v!r}")


def uniform(shape, bound: float) -> np.ndarray:
    return _state["rng"].uniform(-bound, bound, size=shape).astype(np.float32)


def normal(shape, std: float = 1.0) -> np.ndarray:
    return (_state["rng"].standard_normal(shape) * std).astype(np.float32)


def fan_in_uniform(shape, fan_in: int) -> np.ndarray:
    """torch's default for Linear/Conv weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    (kaiming_uniform with a=sqrt(5) reduces to this bound)."""
    return uniform(shape, 1 / math.sqrt(fan_in) if fan_in else 0.0)


def xavier_uniform(shape, gain: float = 1.0) -> np.ndarray:
    """torch.nn.init.xavier_uniform_: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)),
    fans of a [out, in, *kernel] weight as torch counts them."""
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    fan_in, fan_out = shape[1] * receptive, shape[0] * receptive
    return uniform(shape, gain * math.sqrt(6.0 / (fan_in + fan_out)))
