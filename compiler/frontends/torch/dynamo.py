"""`torch.compile(model, backend="lamina")`: Lamina as a TorchDynamo backend.

    model = torch.compile(model.eval(), backend="lamina")
    y = model(x)                    # CPU tensors in, CPU tensors out

The backend is registered through the `torch_dynamo_backends` entry point (pyproject.toml),
so nothing needs importing first. Dynamo hands it each captured FX graph; the callable it
returns compiles the graph with Lamina on its first call for each set of input shapes:
the graph's parameters and buffers are frozen into a module of their own (named by their
state_dict paths), that module goes through `torch.export` and the importer like any
other, then `passes.optimize` and the chosen backend. Tensors cross as numpy views of the
same memory (no copies for contiguous float32 inputs; outputs are fresh arrays wrapped
without a copy). Torch's guards decide when dynamo captures again; a graph that dynamo
makes shape-generic is compiled once per concrete shape.

Frozen parameters are checked on every call: a parameter replaced or updated in place (its
version counter moved) compiles the graph again. A call whose inputs require gradients, and
a graph with an operator Lamina cannot lower, run in eager PyTorch with one warning that
says why (naming the operators). Options come through `torch.compile(...,
options={...})`: opt_level (default 2), backend ("llvm" or "reference") and the backend's
own options (num_threads, fast_math, ...).

Dynamo itself leaves nn.LSTM and nn.GRU to eager PyTorch (no backend sees them) unless
`torch._dynamo.config.allow_rnn = True` is set before the first call.
"""

from __future__ import annotations

import re
import warnings
from collections import OrderedDict

import numpy as np

import backends
import passes

from .builder import TorchImportError, TorchImportWarning
from .importer import export, import_program, torch_module

MAX_CACHED = 8  # compiled shapes (and parameter versions) kept per captured graph
NOT_CPU = "tensors not on the CPU run in eager PyTorch"


def lamina_backend(gm, example_inputs, options: dict | None = None):
    """The dynamo backend: a callable running `gm` (an FX GraphModule) with Lamina."""
    return LaminaGraph(gm, dict(options or {}))


class LaminaGraph:
    """One captured graph: compiled per input signature, or run eagerly where Lamina
    cannot (then said once, in one warning)."""

    def __init__(self, gm, options: dict):
        self.gm = gm
        self.name = _graph_name(torch_module())
        self.opt_level = options.pop("opt_level", 2)
        self.backend = options.pop("backend", backends.DEFAULT)
        self.options = options
        holders = [n for n in gm.graph.nodes if n.op == "placeholder"]
        self.static = {i: _weight_name(n, i) for i, n in enumerate(holders) if _is_weight(n)}
        self.cache: OrderedDict = OrderedDict()
        self.warned: set[str] = set()
        self.inputs: list[int] | None = None  # the other tensors' positions
        self.sizes: list[int] = []  # the size arguments' positions

    def __call__(self, *args):
        torch = torch_module()
        if self.inputs is None:  # fixed by the graph, so found once
            self.inputs = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)
                           and i not in self.static]
            self.sizes = [i for i, a in enumerate(args) if not isinstance(a, torch.Tensor)]
        tensors = self.inputs
        if torch.is_grad_enabled() and any(args[i].requires_grad for i in tensors):
            self.warn("grad", "inputs that require gradients run in eager PyTorch (Lamina "
                      "compiles inference: call the model under torch.no_grad())")
            return self.gm(*args)
        if any(args[i].device.type != "cpu" for i in tensors):  # parameters: in compile
            self.warn("device", NOT_CPU)
            return self.gm(*args)
        key = self.key(args)
        if key not in self.cache:
            self.cache[key] = self.compile(torch, args, tensors)
            while len(self.cache) > MAX_CACHED:
                self.cache.popitem(last=False)
        fn = self.cache[key]
        if fn is None:
            return self.gm(*args)
        outs = fn(*[_array(args[i]) for i in tensors])
        outs = outs if isinstance(outs, tuple) else (outs,)
        return tuple(torch.from_numpy(o) for o in outs)

    def key(self, args) -> tuple:
        """What a compiled graph depends on: the shapes and dtypes of the inputs, the values
        of size arguments, and the identity and version of each frozen parameter. Built on
        every call, so a few flat tuples: a model's hundreds of parameters cost
        microseconds, not a per-tensor tuple each."""
        weights = [args[i] for i in self.static]
        return (tuple([(tuple(args[i].shape), args[i].dtype) for i in self.inputs]),
                tuple([args[i] for i in self.sizes]), tuple(map(id, weights)),
                tuple([w._version for w in weights]))

    def compile(self, torch, args, tensors: list[int]):
        """A Lamina-compiled callable for these arguments, or None to run eagerly."""
        if any(args[i].device.type != "cpu" for i in self.static):
            self.warn("device", NOT_CPU)
            return None
        module = _frozen(torch, self.gm, args, tensors, self.static)
        try:
            program = export(torch, module, tuple(args[i].detach() for i in tensors), None,
                             "a graph captured by torch.compile")
            graph = import_program(program, self.name)
            graph = passes.optimize(graph, opt_level=self.opt_level)
            return backends.get(self.backend)(graph, **self.options)
        except TorchImportError as e:
            ops = ", ".join(f"{op} (x{sum(uses.values())})" for op, uses in
                            sorted(e.unsupported.items()))
            why = f"Lamina cannot lower {ops}" if ops else str(e).splitlines()[-1].strip()
        except Exception as e:  # anything else Lamina fails at: eager still gives the answer
            why = f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e) else ''}"
        self.warn("fallback", f"a captured graph runs in eager PyTorch: {why}")
        return None

    def warn(self, kind: str, message: str) -> None:
        if kind not in self.warned:
            self.warned.add(kind)
            warnings.warn(TorchImportWarning(f"torch.compile(backend='lamina'): {message}"),
                          stacklevel=3)


def _graph_name(torch) -> str:
    """The compiled module's class name (ResNet.forward -> ResNet), as `from_torch` names
    its graph, so dumps, profiles and the compile cache see one name for one model;
    "lamina_dynamo" for a function. Read while dynamo traces (the root frame's code comes
    first in its tracing context)."""
    try:
        code = torch._guards.TracingContext.try_get().traced_code[0]
        owner, method = code.co_qualname.rsplit(".", 2)[-2:]
    except Exception:  # no context, nothing traced, a plain function, an older Python
        return "lamina_dynamo"
    return owner if method == "forward" and re.fullmatch(r"[A-Za-z_]\w*", owner) \
        else "lamina_dynamo"


def _is_weight(node) -> bool:
    """A placeholder dynamo lifted from a module's parameters or buffers."""
    if (node.meta.get("tensor_dict") or {}).get("_dynamo_static_input_type"):
        return True
    source = getattr(node.meta.get("grapharg"), "source", None)
    name = source.name if isinstance(getattr(source, "name", None), str) else ""
    return "._parameters[" in name or "._buffers[" in name


def _weight_name(node, i: int) -> str:
    """A parameter's state_dict path from dynamo's source, L['self']._modules['fc'].
    _parameters['weight'] -> fc.weight; its placeholder's name where there is none."""
    source = getattr(node.meta.get("grapharg"), "source", None)
    name = source.name if isinstance(getattr(source, "name", None), str) else ""
    parts = re.findall(r"\['([^'\]]+)'\]", name)[1:]  # the first is the local's name
    if parts and all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
        return ".".join(parts)
    return re.sub(r"[^A-Za-z0-9_]", "_", node.name) or f"weight{i}"


def _frozen(torch, gm, args, tensors: list[int], static: dict[int, str]):
    """A module holding the graph's parameters and buffers under their state_dict paths,
    whose forward takes the remaining tensors and runs `gm` on everything."""

    class Frozen(torch.nn.Module):
        def forward(self, *xs):
            full = list(template)
            for i, x in zip(tensors, xs):
                full[i] = x
            for i, path in paths.items():
                full[i] = self.get_buffer(path)
            return gm(*full)

    module = Frozen()
    template = [None if isinstance(a, torch.Tensor) else _concrete(a) for a in args]
    paths = {}
    for i, path in static.items():
        paths[i] = _place(torch, module, path, args[i].detach(), i)
    return module


def _place(torch, root, path: str, tensor, i: int) -> str:
    """Register `tensor` as a buffer at `path` under `root`, making the modules on the way;
    a path that clashes gets a plain name."""
    *parents, leaf = path.split(".")
    m = root
    try:
        for p in parents:
            child = m._modules.get(p)
            if child is None:
                child = torch.nn.Module()
                m.add_module(p, child)
            m = child
        if leaf in m._buffers or leaf in m._modules:
            raise KeyError(leaf)
        m.register_buffer(leaf, tensor)
        return path
    except (KeyError, TypeError, AttributeError):
        name = f"weight{i}"
        root.register_buffer(name, tensor)
        return name


def _concrete(v):
    """A size argument dynamo made symbolic, as the int it is in this call."""
    hint = getattr(getattr(v, "node", None), "hint", None)
    return v if hint is None else hint


def _array(t) -> np.ndarray:
    """The tensor's memory as a numpy array (a view; no copy for a CPU tensor)."""
    return t.detach().numpy()
