"""Dynamic dimensions: one compiled callable that serves every size of the dimensions named
symbolic (a batch `N`, a sequence `S`).

    fn = compiler.compile(model, x, dynamic={"x": {0: "N"}})   # or {0: Dim("N", max=64)}
    fn(x8), fn(x1)                                              # any N

The signature holds symbolic types (`f32[N,3,224,224]`). A call binds each symbol from its
inputs' shapes, refusing with InputError a wrong rank, a fixed dimension of another size, a
symbol two inputs give different sizes, or a size outside the declared bounds, each naming
the input. Each new binding is compiled once by specialising the model to those sizes
(traced, imported or exported again, then optimised and compiled as a static model: Lamina's
kernels are built for static shapes, so each size runs exactly the code a static compile
would) and kept in a bounded cache, least recently used first out; calls of a size already
seen cost one dictionary lookup more than a static model's.
"""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

import ir
from ir.errors import InputError, LaminaWarning, OptionError


@dataclass(frozen=True)
class Dim:
    """A symbolic dimension: its name and the sizes it may take (inclusive bounds)."""

    name: str
    min: int = 0
    max: int | None = None

    def __post_init__(self):
        ir.TensorType((self.name,))  # a name like an identifier, or ShapeError
        if self.min < 0 or (self.max is not None and self.max < self.min):
            raise OptionError(f"Dim {self.name!r}: bounds must satisfy 0 <= min <= max, got "
                              f"min={self.min}, max={self.max}")

    def check(self, size: int, where: str) -> None:
        if size < self.min or (self.max is not None and size > self.max):
            bounds = (f"at least {self.min}" if self.max is None
                      else f"between {self.min} and {self.max}")
            raise InputError(f"{where} is {self.name}={size}; {self.name} must be {bounds}")


def signature(graph: ir.Graph, dynamic) -> tuple[list[ir.TensorType], dict[str, Dim]]:
    """The symbolic input types of `graph` (traced at the example sizes) under `dynamic`:
    True (dimension 0 of every input is the batch, `N`), or {input name or position:
    {dimension: name or Dim}}. Returns the types and the symbols' Dims by name."""
    names = [v.name for v in graph.inputs]
    if dynamic is True:
        dynamic = {i: {0: "N"} for i, v in enumerate(graph.inputs) if v.type.rank}
    if not isinstance(dynamic, dict):
        raise OptionError(f"dynamic must be True or a dict {{input: {{dim: name}}}}, got "
                          f"{dynamic!r}"[:300])
    types = [v.type for v in graph.inputs]
    dims: dict[str, Dim] = {}
    for key, spec in dynamic.items():
        i = _input_index(key, names)
        shape = list(types[i].shape)
        if not isinstance(spec, dict):
            raise OptionError(f"dynamic[{key!r}] must be a dict {{dimension: name}}, got "
                              f"{spec!r}"[:300])
        for axis, d in spec.items():
            d = _as_dim(d)
            if not isinstance(axis, int) or not -len(shape) <= axis < len(shape):
                raise OptionError(f"dynamic: input %{names[i]} has rank {len(shape)}, no "
                                  f"dimension {axis!r}")
            if dims.setdefault(d.name, d) != d:
                raise OptionError(f"dynamic: {d.name} is declared twice with different bounds")
            d.check(shape[axis], f"dynamic: the example input %{names[i]}'s dimension {axis}")
            shape[axis] = d.name
        types[i] = types[i].with_shape(shape)
    return types, dims


def _as_dim(d) -> Dim:
    """A Dim from a Dim, a name, or torch.export's Dim (its name and bounds)."""
    if isinstance(d, Dim):
        return d
    if isinstance(d, str):
        return Dim(d)
    name, lo, hi = getattr(d, "__name__", None), getattr(d, "min", 0), getattr(d, "max", None)
    if not isinstance(name, str):
        raise OptionError(f"dynamic: a dimension is a name or a compiler.Dim, got {d!r}"[:300])
    return Dim(name, int(lo), None if hi is None or hi >= 2**62 else int(hi))


def _input_index(key, names: list[str]) -> int:
    if isinstance(key, int) and 0 <= key < len(names):
        return key
    if isinstance(key, str) and key.lstrip("%") in names:
        return names.index(key.lstrip("%"))
    raise OptionError(f"dynamic: no input {key!r}; the inputs are "
                      f"{', '.join('%' + n for n in names)} (or their positions)")


class DynamicModel:
    """A compiled model serving every size of its symbolic dimensions (see the module's
    docstring). `graph` and the other attributes of a static model are those of the
    example sizes' build; `specializations` maps each binding seen to its build."""

    def __init__(self, name: str, types, dims, build, first, max_specializations: int = 8):
        self.name, self.types, self.dims = name, types, dims
        self.input_names = [v.name for v in first.graph.inputs]
        self._build, self._max = build, max_specializations
        self.example = first
        key = self.example_key = self.bind([v.type.shape for v in first.graph.inputs])
        self.specializations: OrderedDict[tuple, object] = OrderedDict({key: first})
        self._lock = threading.Lock()
        self._by_shapes: dict[tuple, object] = {}  # exact input shapes -> build (fast path)

    @property
    def graph(self) -> ir.Graph:
        return self.example.graph

    def __getattr__(self, name):  # backend, num_threads, llvm_ir, ... of the example build
        if name.startswith("_") or name in ("example", "example_key", "specializations"):
            raise AttributeError(name)
        return getattr(self.example, name)

    @property
    def signature(self) -> str:
        ins = ", ".join(f"%{n}: {t}" for n, t in zip(self.input_names, self.types))
        return f"@{self.name}({ins})"

    def bind(self, shapes) -> tuple[tuple[str, int], ...]:
        """The symbols' sizes in inputs of these shapes, or InputError naming the input at
        fault."""
        if len(shapes) != len(self.types):
            raise InputError(f"{self.signature} takes {len(self.types)} input(s), got "
                             f"{len(shapes)}")
        sizes: dict[str, tuple[int, str]] = {}
        for name, t, shape in zip(self.input_names, self.types, shapes):
            if len(shape) != t.rank:
                raise InputError(f"input %{name} expects {t} (rank {t.rank}), got shape "
                                 f"{list(shape)}")
            for axis, (d, n) in enumerate(zip(t.shape, shape)):
                where = f"input %{name}'s dimension {axis}"
                if isinstance(d, int):
                    if d != n:
                        raise InputError(f"{where} is {n}; it must be {d} ({t})")
                    continue
                self.dims[d].check(n, where)
                seen = sizes.setdefault(d, (n, name))
                if seen[0] != n:
                    raise InputError(f"{where} is {d}={n}, but input %{seen[1]} has "
                                     f"{d}={seen[0]}")
        return tuple(sorted((k, n) for k, (n, _) in sizes.items()))

    def specialize(self, *args):
        """The static build serving these inputs' sizes (compiled on first use)."""
        key = self.bind([np.shape(a) for a in args])
        with self._lock:  # one build per size, even when threads race to it
            fn = self.specializations.get(key)
            if fn is None:
                fn = self._build(args)
                self.specializations[key] = fn
                if len(self.specializations) > self._max:
                    self.specializations.popitem(last=False)
                    self._by_shapes = {}  # (it may point at the build just dropped)
            self.specializations.move_to_end(key)
        return fn

    def __call__(self, *args, **kwargs):
        if kwargs:
            raise InputError(f"{self.signature} takes its inputs by position, not by "
                             f"keyword: got {', '.join(map(repr, kwargs))}")
        # inputs of shapes seen before skip binding: one lookup, no lock (a small model's
        # call takes tens of microseconds, binding several)
        shapes = tuple(np.shape(a) for a in args)
        fn = self._by_shapes.get(shapes)
        if fn is None:
            args = tuple(np.asarray(a) for a in args)
            fn = self.specialize(*args)
            self._by_shapes[shapes] = fn
        return fn(*args)

    def save(self, path) -> None:
        """Save the build for the example inputs' sizes: a saved model serves one size
        today (said by a warning); `fn.specialize(x).save(path)` saves another size's."""
        sizes = " ".join(f"{k}={n}" for k, n in self.example_key)
        warnings.warn(f"{self.signature}: a saved model serves one size; saving the build for "
                      f"{sizes} (fn.specialize(x).save(path) saves another)",
                      LaminaWarning, stacklevel=2)
        self.example.save(path)

    def __repr__(self) -> str:
        sizes = ", ".join(" ".join(f"{k}={n}" for k, n in key) for key in self.specializations)
        return f"<dynamic {self.signature}: built for {sizes or 'no size yet'}>"
