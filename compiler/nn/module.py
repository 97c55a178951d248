"""Module: the base of every layer, with torch.nn.Module's conventions.

Parameters and buffers are numpy arrays assigned as attributes (buffers through
`register_buffer`); submodules register the same way. Keys of `state_dict()` are torch's,
so a torch model's weights load with `load_state_dict({k: v.numpy() ...})`.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator

import numpy as np

from ir import LaminaError

from ..frontends import tracing


class StateDictError(LaminaError):
    """A state dict whose keys or shapes do not fit the model."""


class Module:
    training: bool = True

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())

    # ---- registration --------------------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise LaminaError(f"{type(self).__name__}.__init__ must call super().__init__() "
                              "before assigning attributes")
        if name in self._buffers and not isinstance(value, Module):
            self._buffers[name] = value
            return
        is_param = isinstance(value, np.ndarray) or (value is None and name in self._parameters)
        for table in (self._parameters, self._buffers, self._modules):
            table.pop(name, None)
        if isinstance(value, Module) or is_param:
            self.__dict__.pop(name, None)  # a plain attribute would shadow the table entry
        if isinstance(value, Module):
            self._modules[name] = value
        elif is_param:
            self._parameters[name] = value
        else:
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        for table in ("_parameters", "_buffers", "_modules"):
            d = self.__dict__.get(table)
            if d is not None and name in d:
                return d[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __delattr__(self, name):
        for table in (self._parameters, self._buffers, self._modules):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array) -> None:
        self._parameters.pop(name, None)
        self._buffers[name] = None if array is None else np.asarray(array)

    # ---- traversal -----------------------------------------------------------------------
    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def children(self) -> Iterator[Module]:
        yield from (m for m in self._modules.values() if m is not None)

    def named_parameters(self) -> Iterator[tuple[str, np.ndarray]]:
        for path, m in self.named_modules():
            for name, p in m._parameters.items():
                if p is not None:
                    yield (f"{path}.{name}" if path else name), p

    def parameters(self) -> Iterator[np.ndarray]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for path, m in self.named_modules():
            for name, b in m._buffers.items():
                if b is not None:
                    yield (f"{path}.{name}" if path else name), b

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """Parameters then buffers of each module, parents before children (torch's order)."""
        out = OrderedDict()
        for path, m in self.named_modules():
            for name, a in [*m._parameters.items(), *m._buffers.items()]:
                if a is not None:
                    out[f"{path}.{name}" if path else name] = a
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays in, keeping each parameter's dtype; shapes must match exactly."""
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise StateDictError(f"state dict does not fit {type(self).__name__}: missing "
                                 f"{missing or 'none'}, unexpected {unexpected or 'none'}")
        owners = {}
        for path, m in self.named_modules():
            for name in [*m._parameters, *m._buffers]:
                owners[f"{path}.{name}" if path else name] = (m, name)
        for key, value in state.items():
            if key not in own:
                continue
            value = np.asarray(value)
            if value.shape != own[key].shape:
                raise StateDictError(f"'{key}': expected shape {own[key].shape}, got "
                                     f"{value.shape}")
            m, name = owners[key]
            table = m._buffers if name in m._buffers else m._parameters
            table[name] = np.array(value, dtype=own[key].dtype)

    # ---- modes ---------------------------------------------------------------------------
    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", mode)
        return self

    def eval(self) -> Module:
        return self.train(False)

    # ---- calling -------------------------------------------------------------------------
    def forward(self, *args):
        raise NotImplementedError(f"{type(self).__name__} does not define forward()")

    def __call__(self, *args, **kwargs):
        if not tracing.tracing():
            return _run_eagerly(self, *args, **kwargs)
        tracer = tracing.current()
        path = tracer.module_paths.get(id(self), type(self).__name__.lower())
        with tracer.scope(path, type(self).__name__):
            return self.forward(*args, **kwargs)

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [f"({n}): " + repr(m).replace("\n", "\n  ") for n, m in self._modules.items()]
        head = f"{type(self).__name__}({self.extra_repr()}"
        return head + ")" if not lines else head + "\n  " + "\n  ".join(lines) + "\n)"


def _run_eagerly(model: Module, *args, **kwargs):
    """Calling a model on numpy arrays outside a trace: trace it and interpret it.

    As in torch, positional arguments may be None or tuples of arrays (an LSTM's
    `(h0, c0)`) and keyword arguments pass through (arrays among them become constants)."""
    from backends import reference

    arrays: list = []
    spec = _arg_spec(args, arrays)
    if kwargs or any(not isinstance(a, int) for a in spec):
        model = _Bound(model, spec, kwargs)
    graph, structure = tracing.trace_structured(model, *arrays)
    return tracing.unflatten(structure, reference.run(graph, *arrays))


def _arg_spec(arg, arrays: list):
    """Positional arguments as indices into `arrays` (the traced inputs), None kept."""
    if isinstance(arg, tuple):
        return tuple(_arg_spec(a, arrays) for a in arg)
    if arg is None:
        return None
    arrays.append(np.asarray(arg))
    return len(arrays) - 1


class _Bound(Module):
    """`model(*args, **kwargs)` as a module of flat array inputs, for eager calls."""

    def __init__(self, model: Module, spec: tuple, kwargs: dict):
        super().__init__()
        self.model = model
        object.__setattr__(self, "_call", (spec, kwargs))

    def forward(self, *xs):
        spec, kwargs = self._call
        return self.model(*tracing.unflatten(spec, xs), **kwargs)


class _Container(Module):
    """Submodules named 0, 1, 2, ... in order, indexable and iterable."""

    def __init__(self, modules=()):
        super().__init__()
        for m in modules:
            setattr(self, str(len(self._modules)), m)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())


class Sequential(_Container):
    def __init__(self, *layers: Module):
        super().__init__(layers)

    def forward(self, x):
        for layer in self._modules.values():
            x = layer(x)
        return x


class ModuleList(_Container):
    def append(self, m: Module) -> ModuleList:
        setattr(self, str(len(self._modules)), m)
        return self
