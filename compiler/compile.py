"""compile(): model or graph -> optimised graph -> a callable on numpy arrays; and `public`,
the check every public function's arguments pass before any work is done."""

from __future__ import annotations

import contextlib
import functools
import gc
import inspect
import math
import numbers
import os
import threading
import warnings

import numpy as np

import backends
import ir
import passes as _passes
from ir.errors import (
    LaminaWarning,
    MissingDependencyError,
    OptionError,
    OptionTypeError,
    PathError,
)
from ir.ops.narrow import from_storage, to_storage

from .dynamic import DynamicModel, signature
from .frontends.tracing import output_structure, restructure, trace
from .nn import BatchNorm1d, BatchNorm2d, Dropout, Module

ONNX_MISSING = ('reading or writing ONNX needs the onnx package, which is not installed: '
                'pip install "lamina[onnx]"')


class TrainingModeWarning(LaminaWarning):
    """A model compiled for inference while some of its layers are in training mode."""


# ---- the API boundary ---------------------------------------------------------------------
def public(fn=None, *, model: str | None = None):
    """Check a public function's arguments before it runs: a call that does not fit its
    signature, and the arguments named in CHECKS (opt_level, passes, backend and the
    backend's options, repeat, tolerances, ...) raise OptionError naming the function and the
    argument; `model="traced"` also checks that the model can be traced (is callable),
    `model="any"` that it is a model, an ir.Graph or a path. A missing `onnx` package
    becomes MissingDependencyError saying how to install it."""
    if fn is None:
        return functools.partial(public, model=model)
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args, **kwargs):
        try:
            bound = signature.bind(*args, **kwargs)
        except TypeError as e:
            raise OptionTypeError(f"{fn.__name__}(): {e}") from None
        bound.apply_defaults()
        check_arguments(fn.__name__, bound, model)
        try:
            return fn(*args, **kwargs)
        except ModuleNotFoundError as e:
            if (e.name or "").partition(".")[0] != "onnx":
                raise
            raise MissingDependencyError(ONNX_MISSING) from None
        except OSError as e:  # a path that cannot be read or written (save_onnx, ir.load)
            if isinstance(e, ir.LaminaError):
                raise
            raise path_error(f"{fn.__name__}", e) from e

    return checked


def path_error(where: str, e: OSError) -> PathError:
    """An OSError as PathError, keeping its errno and path, saying where it happened."""
    err = PathError(f"{where}: cannot access {e.filename}: {e.strerror or e}")
    err.errno, err.strerror, err.filename = e.errno, e.strerror, e.filename
    return err


def _opt_level(v) -> bool:
    return (v if isinstance(v, str) else f"O{v}") in _passes.PIPELINES


def _pass_list(v) -> bool:
    return v is None or all(isinstance(p, (str, _passes.Pass)) for p in v)


def _shapes(v) -> bool:
    shapes = [] if v is None else v.values() if isinstance(v, dict) else v
    return all(isinstance(s, (list, tuple)) and all(
        isinstance(d, numbers.Integral) and not isinstance(d, bool) and d >= 0 for d in s)
        for s in shapes)


INT, REAL = (numbers.Integral,), (numbers.Real,)
# argument name -> (types, test, what it must be), for whichever public function has it: a
# value of another type is an OptionTypeError, one failing the test an OptionError
CHECKS = {
    "opt_level": ((numbers.Integral, str), _opt_level,
                  f"an opt level, 0..3 or one of {', '.join(_passes.PIPELINES)}"),
    "passes": ((list, tuple, type(None)), _pass_list, "None or a list of pass names"),
    # an unknown name is refused by backends.get, which says which exist
    "backend": ((str,), lambda v: True, f"a backend name, one of {', '.join(backends.BACKENDS)}"),
    "repeat": (INT, lambda v: v >= 1, "a positive integer"),
    "warmup": (INT, lambda v: v >= 0, "a non-negative integer"),
    "cores": (INT, lambda v: v >= 1, "a positive integer"),
    "backend_rtol": (REAL, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "backend_atol": (REAL, lambda v: math.isfinite(v) and v >= 0, "a finite number >= 0"),
    "progress": ((bool, type(None)), lambda v: True, "True, False or None"),
    "training": ((bool,), lambda v: True, "True or False"),
    "input_shapes": ((list, tuple, dict, type(None)), _shapes,
                     "None, a list of shapes (one per input) or a dict of name -> shape"),
}


def check_arguments(where: str, bound: inspect.BoundArguments, model: str | None) -> None:
    """Raise OptionError for the first argument of `bound` that fails its check."""
    for name, value in bound.arguments.items():
        if name not in CHECKS:
            continue
        types, test, what = CHECKS[name]
        # bool is an int to Python, never a count or a level to us
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise OptionTypeError(f"{where}: {name} must be {what}, got {value!r}"[:300])
        if not test(value):
            raise OptionError(f"{where}: {name} must be {what}, got {value!r}"[:300])
    if model is not None:
        check_model(bound.arguments["model"], where, traced=model == "traced")
    kind = bound.signature.parameters
    extra = next((bound.arguments[p] for p in kind if kind[p].kind is kind[p].VAR_KEYWORD), None)
    if extra and "backend" in bound.arguments:
        check_backend_options(where, bound.arguments["backend"], extra)


def check_model(model, where: str, traced: bool = False) -> None:
    """A compiler.nn model or another callable (to trace), or else an ir.Graph or a path."""
    if callable(model) and not isinstance(model, type):
        return
    if not traced and isinstance(model, (ir.Graph, str, os.PathLike)):
        return
    what = "a compiler.nn model (or a function of tensors)"
    if not traced:
        what += ", an ir.Graph, or a path to an .onnx or .npz file"
    if isinstance(model, type):
        what += f" (an instance, {model.__name__}(...), not the class)"
    raise OptionTypeError(f"{where}: model must be {what}, got {model!r}"[:300])


def check_backend_options(where: str, backend: str, options: dict) -> None:
    """The options a backend takes are the keyword-only parameters its compile_graph
    declares; others are refused here, with the list, rather than as a TypeError from inside
    the backend (or, in bisect, as a finding against it)."""
    params = inspect.signature(backends.get(backend)).parameters.values()
    known = [p.name for p in params if p.kind is p.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise OptionTypeError(f"{where}: unknown option(s) {', '.join(unknown)} for backend "
                              f"{backend!r}; it takes {', '.join(known) or 'none'}")


# ---- compile ------------------------------------------------------------------------------
@public(model="any")
def to_graph(model, *example_inputs) -> ir.Graph:
    """A graph from a compiler.nn model (traced), an ir.Graph, or a saved graph file."""
    if isinstance(model, ir.Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if path.endswith(".onnx"):
            from .frontends.onnx import load_onnx

            # symbolic dimensions (a dynamic batch) take the example inputs' sizes
            return load_onnx(path, input_shapes=[np.shape(x) for x in example_inputs] or None)
        return ir.load(path)
    if any(c.__module__ == "torch.nn.modules.module" for c in type(model).__mro__):
        from .frontends.torch import from_torch  # a torch.nn.Module: torch.export, lazily

        return from_torch(model, *example_inputs)
    try:
        return trace(model, *example_inputs)
    except ir.ShapeError as e:
        hint = _dtype_hint(example_inputs) if "dtype" in str(e) else ""
        if not hint:
            raise
        raise type(e)(f"{e}; {hint}") from e


def _dtype_hint(example_inputs) -> str:
    """Float64 example inputs (numpy's default) meeting float32 weights: say to cast."""
    wide = [i for i, x in enumerate(example_inputs) if np.asarray(x).dtype == np.float64]
    if not wide:
        return ""
    which = ", ".join(map(str, wide))
    return (f"hint: example input(s) {which} are float64 (numpy's default) while Lamina's "
            "layers hold float32 weights: pass x.astype(np.float32)")


@public(model="any")
def compile(model, *example_inputs, opt_level: int = 2, passes=None,
            backend: str = backends.DEFAULT, training: bool = False, dynamic=None, **options):
    """Trace (if needed), optimise and compile `model`; the result is called with numpy
    arrays and returns an array, or a tuple for several outputs. `fn.graph` is what runs.

    `backend` is "llvm" (native code, the default) or "reference" (the numpy interpreter);
    `passes` overrides the opt-level pipeline with a list of pass names; other keyword
    options go to the LLVM backend (num_threads, fast_math, cache_dir, target_features).
    `dynamic` names dimensions that vary between calls: {input name or position: {axis:
    name or compiler.Dim}}, or True for dimension 0 of every input; the callable then
    serves every size of them (compiler.dynamic), as it does an ONNX model's `dim_param`s.
    A model with dropout or batch-norm layers still in training mode gets a
    TrainingModeWarning (call `.eval()` first); `training=True` says that is meant: the
    layers keep their training-mode behaviour and nothing is said."""
    try:
        example_inputs = tuple(np.asarray(x) for x in example_inputs)
    except ValueError as e:  # a ragged nested list
        raise ir.InputError(f"an example input is not an array: {e}") from None
    compile_graph = backends.get(backend)  # an unknown backend: refused before any work
    if not training:
        _warn_training_mode(model)

    def build(inputs):
        with gc_paused():
            graph = to_graph(model, *inputs)
            if not _is_onnx(model):
                ir.verify(graph)  # (load_onnx has just verified what it built)
            optimized = _passes.optimize(graph, opt_level=opt_level, passes=passes)
            return graph, compile_graph(optimized, **options)

    graph, fn = build(example_inputs)
    structure = output_structure(graph)  # forward()'s nesting, before passes copy the graph
    onnx_dims, narrow_in, narrow_out = {}, [None], [None]
    if _is_onnx(model):
        from .frontends.onnx import signature as onnx_signature

        onnx_dims, narrow_in, narrow_out = onnx_signature(model)
    dynamic = onnx_dims if dynamic is None else dynamic
    if dynamic:
        fn = _dynamic(model, graph, fn, dynamic, lambda inputs: build(inputs)[1])
    if any(narrow_in) or any(narrow_out):
        fn = Converted(fn, narrow_in, narrow_out)
    return restructure(fn, structure)


_gc_lock = threading.Lock()
_gc_pausers = 0  # compiles running with the collector paused by gc_paused


@contextlib.contextmanager
def gc_paused():
    """Run a compile with Python's cyclic collector off, then collect the young generations
    once. A compile allocates millions of short-lived objects (IR, llvmlite's LLVM IR
    builder objects, which form cycles), and each automatic collection on the way walks
    every object they have made so far, and, in full collections, the whole heap (torch's
    too, when it is loaded): a third of ConvNeXt-T's warm compile (issue 13). The one
    collection at the end walks only what the compile made and frees its garbage at once.
    Nested and concurrent compiles leave the collector as the first one found it."""
    global _gc_pausers
    with _gc_lock:
        if _gc_pausers == 0:
            gc_paused.was_enabled = gc.isenabled()
            gc.disable()
        _gc_pausers += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pausers -= 1
            if _gc_pausers == 0 and gc_paused.was_enabled:
                gc.enable()
                gc.collect(1)


gc_paused.was_enabled = True


class Converted:
    """A model whose file declares inputs or outputs in types Lamina computes in a wider
    one (float16, bfloat16, float8 and float4 in float32, 2- to 16-bit integers in int32):
    inputs are converted on the way in, outputs rounded back to the declared types on the
    way out. Every attribute but the call is the wrapped model's."""

    def __init__(self, fn, inputs, outputs):
        self.fn, self.inputs, self.outputs = fn, inputs, outputs

    def __call__(self, *args):
        wider = [v.type.np_dtype for v in self.fn.graph.inputs]
        # (float8, float4, int4, int2: their one-byte codes, by ir.ops.narrow's own bit
        # arithmetic; outputs rounded as a Cast without saturation would)
        args = [from_storage(a, w) if dt is not None and np.asarray(a).dtype == dt else a
                for a, dt, w in zip(args, self.inputs, wider)]
        out = self.fn(*args)
        outs = out if isinstance(out, tuple) else (out,)
        outs = tuple(o if dt is None else to_storage(o, dt) for o, dt in zip(outs, self.outputs))
        return outs if isinstance(out, tuple) else outs[0]

    def __getattr__(self, name):
        return getattr(self.__dict__["fn"], name)

    def __repr__(self) -> str:
        return f"{self.fn!r} (converting its inputs and outputs to the file's types)"


def _is_onnx(model) -> bool:
    return isinstance(model, (str, os.PathLike)) and os.fspath(model).endswith(".onnx")


def _dynamic(model, graph: ir.Graph, fn, dynamic, build) -> DynamicModel:
    if isinstance(model, ir.Graph) or (isinstance(model, (str, os.PathLike))
                                       and not _is_onnx(model)):
        raise OptionError("compile: dynamic= needs a model to specialise to each size (a "
                          "compiler.nn model, a torch module or an ONNX file); an ir.Graph "
                          "or a saved .npz graph holds one size")
    types, dims = signature(graph, dynamic)
    return DynamicModel(graph.name, types, dims, build, fn)


def _warn_training_mode(model) -> None:
    if not isinstance(model, Module):
        return
    layers = [f"'{path or '<model>'}' ({type(m).__name__})" for path, m in
              model.named_modules() if m.training and _behaves_differently_in_training(m)]
    if layers:
        warnings.warn(f"compile: the model is in training mode and these layers behave "
                      f"differently there (dropout on, batch statistics): "
                      f"{', '.join(layers)}; call model.eval() before compiling for "
                      "inference, or pass training=True if training mode is meant",
                      TrainingModeWarning, stacklevel=4)


def _behaves_differently_in_training(m: Module) -> bool:
    """Dropout layers, batch norm, and layers with a dropout rate (attention, RNNs)."""
    if isinstance(m, Dropout):
        return m.p > 0
    if isinstance(m, (BatchNorm1d, BatchNorm2d)):
        return True
    rate = getattr(m, "dropout", 0)
    return isinstance(rate, numbers.Real) and rate > 0
