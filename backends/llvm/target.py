"""The host target: an LLVM target machine for this CPU and the vector width kernels use.

LLVM assumes a generic x86-64 (SSE2 only) unless it is told the CPU name and features, so
both come from the host. `features` narrows them for tests and for machines without
AVX-512: a preset name ("host", "avx512", "avx2", "sse") or an LLVM feature string such as
"-avx512f,+avx2" applied on top of the host's features. It can only narrow: a "+feature" the
host lacks is refused (TargetError), since code using it would die of SIGILL here. The
vector width every kernel uses (16 floats with AVX-512, 8 with AVX2, 4 with SSE) follows the
resulting feature set.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import llvmlite.binding as llvm

from ir import LaminaError

# Features that need AVX-512 registers, and those that need at least AVX (VEX encodings).
_AVX512 = ("avx512", "avx10", "amx", "evex512")
_AVX = ("avx", "fma", "f16c", "vaes", "vpclmulqdq", "xop", "fma4")
PRESETS = ("host", "avx512", "avx2", "sse")


class TargetError(LaminaError, ValueError):
    """target_features asks for something this CPU cannot run, or is malformed."""


@functools.cache
def init_llvm() -> None:
    """Initialise LLVM's native target once per process."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()


@dataclass(frozen=True)
class Target:
    """A target machine plus what kernels need to know about it."""

    cpu: str
    features: str  # the LLVM feature string the machine was created with
    vector_bytes: int  # 64 (AVX-512), 32 (AVX/AVX2) or 16 (SSE)

    def new_machine(self) -> llvm.TargetMachine:
        """A fresh target machine (an execution engine takes ownership of the one it gets)."""
        init_llvm()
        target = llvm.Target.from_triple(llvm.get_process_triple())
        return target.create_target_machine(cpu=self.cpu, features=self.features, opt=3,
                                            jit=True)

    @property
    def machine(self) -> llvm.TargetMachine:
        """A shared target machine for optimisation and assembly printing."""
        return _machine(self)

    def lanes(self, itemsize: int) -> int:
        """Vector lanes for elements of `itemsize` bytes."""
        return max(1, self.vector_bytes // itemsize)

    def describe(self) -> str:
        return f"{self.cpu}, {self.vector_bytes * 8}-bit vectors"


@functools.cache
def _machine(target: Target) -> llvm.TargetMachine:
    return target.new_machine()


def _parse(features: str) -> dict[str, bool]:
    """'+a,-b,+c' -> {a: True, b: False, c: True}; later entries win."""
    out: dict[str, bool] = {}
    for item in filter(None, (f.strip() for f in features.split(","))):
        if item[0] not in "+-":
            raise TargetError(f"target feature {item!r} must start with '+' or '-'")
        out[item[1:]] = item[0] == "+"
    return out


def _render(features: dict[str, bool]) -> str:
    return ",".join(("+" if on else "-") + name for name, on in sorted(features.items()))


def _narrowed(host: dict[str, bool], preset: str) -> dict[str, bool]:
    out = dict(host)
    if preset in ("host", "avx512"):
        if preset == "avx512" and not host.get("avx512f"):
            raise TargetError("target_features='avx512' but this CPU has no AVX-512")
        return out
    drop = _AVX512 if preset == "avx2" else _AVX512 + _AVX
    for name in out:
        if name.startswith(drop):
            out[name] = False
    return out


def host_target(features: str | None = None) -> Target:
    """The host CPU's target, optionally narrowed by a preset or a feature string."""
    cpu = llvm.get_host_cpu_name()
    host = _parse(llvm.get_host_cpu_features().flatten())
    if features is None or features in PRESETS:
        feats = _narrowed(host, features or "host")
    elif isinstance(features, str):
        feats = {**host, **_checked(host, _parse(features))}
    else:
        raise TargetError(f"target_features must be one of {PRESETS} or an LLVM feature "
                          f"string, got {features!r}")
    feats = _consistent(feats)
    vector_bytes = 64 if feats.get("avx512f") else 32 if feats.get("avx") else 16
    return Target(cpu, _render(feats), vector_bytes)


def _checked(host: dict[str, bool], asked: dict[str, bool]) -> dict[str, bool]:
    """Refuse names LLVM does not know (it would ignore them) and features the host lacks."""
    for name, on in asked.items():
        if name not in host:
            raise TargetError(f"unknown target feature {name!r}")
        if on and not host[name]:
            raise TargetError(f"target feature '+{name}': this CPU lacks {name!r} "
                              "(target_features can only narrow the host's features)")
    return asked


def _consistent(feats: dict[str, bool]) -> dict[str, bool]:
    """Turn off what depends on a disabled feature: LLVM would otherwise re-enable, say,
    avx512f because avx512bw (still on) implies it."""
    out = dict(feats)
    drop: tuple[str, ...] = ()
    if not out.get("avx512f") or not out.get("avx2"):
        drop = _AVX512
    if not out.get("avx"):
        drop = _AVX512 + _AVX
    for name in out:
        if name.startswith(drop):
            out[name] = False
    return out
