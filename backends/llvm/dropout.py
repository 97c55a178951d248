"""Dropout, inference and training: the mask drawn bit for bit like numpy's (see rng.py),
so compiled results equal the reference interpreter's."""

from __future__ import annotations

import numpy as np

from ir import LaminaError

from . import rng
from .builder import I32, I64, KBuilder, const
from .elementwise import map_kernel
from .kernel import Kernel
from .registry import lowering


@lowering("dropout")
def lower_dropout(k: Kernel) -> None:
    """Inference: a copy. Training: the mask of np.random.default_rng(seed).random(shape),
    drawn bit for bit like numpy (rng.py), so results equal the reference's."""
    ratio, seed = k.attrs["ratio"], k.attrs["seed"]
    if not (k.attrs["training"] and ratio):
        return map_kernel(k, lambda b, xs: xs[0])
    if seed < 0:
        raise LaminaError(f"{k.where}: dropout seed must be >= 0 (numpy refuses {seed})")
    words = rng.const_words(rng.words(seed))
    if len(words) > 4:
        raise LaminaError(f"{k.where}: dropout seed {seed} is too large (at most 128 bits)")
    dropout_phase(k, k.inputs[0], k.outputs[0], ratio, lambda b: words)


@lowering("dropout_seeded")
def lower_dropout_seeded(k: Kernel) -> None:
    """Mask from np.random.default_rng([seed % 2**64, step % 2**64]).random(shape)."""
    x, step = k.inputs
    ratio, seed = k.attrs["ratio"], k.attrs["seed"]
    if not ratio:
        return map_kernel(k, lambda b, xs: xs[0], ins=[x])
    seed_words = rng.const_words(rng.words(seed % 2**64))

    def entropy(b):
        s = b.vload(step.ptr, 0, step.elem)
        s = s if step.dtype == "i64" else b.sext(s, I64)
        # numpy's words of the step: [lo] or [lo, hi]; a missing hi is 0 either way
        return [*seed_words, b.trunc(s, I32), b.trunc(b.lshr(s, b.i64(32)), I32)]

    dropout_phase(k, x, k.outputs[0], ratio, entropy)


def dropout_phase(k: Kernel, x, out, ratio: float, entropy) -> None:
    """out = where(random() >= ratio, x / (1 - ratio), 0), numpy's draws in C order."""
    el = x.elem

    def body(b: KBuilder, lo, hi, worker):
        state, inc = rng.pcg64_from_entropy(b, entropy(b))
        slot = b.var(rng.I128, state, "pcg")
        scale = const(el, float(np.asarray(1 - ratio, x.type.np_dtype)))
        with b.loop(0, x.size, name="i") as i:
            keep = b.fcmp(">=", rng.next_double(b, slot, inc), const(rng.F64, ratio))
            y = b.fdiv(b.vload(x.ptr, i, el), scale)
            b.vstore(b.select(keep, y, const(el, 0)), out.ptr, i)

    k.phase(1, body, parallel=False, cost=x.size)
