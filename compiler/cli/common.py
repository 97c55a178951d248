"""What the verbs share: reading MODEL and inputs, pipeline and backend options, and
optimising + building with a reproducer written when that fails."""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import inspect
import math
import sys
import textwrap
from pathlib import Path

import numpy as np

import backends
import ir
from backends import artifact
from ir.errors import OptionError, PathError

from ..compile import to_graph
from ..tools import repro
from ..tools.progress import Progress
from ..tools.runner import build, example_inputs
from ..tools.stepping import resolve, stats_table, steps

MODEL_HELP = ("an .onnx file, a graph saved with ir.save or `lamina compile` (.npz), a "
              "compiled model saved with fn.save (.lamina: run and bench run it as saved), or "
              "FILE.py:NAME / module:NAME naming a function defined there that returns "
              "(model, *inputs), a model, an ir.Graph or a model file's path; this runs that "
              "Python code, so name only code you trust")
DEFAULT_REPRO = "lamina-repro.npz"
# Verbs that run a saved compiled model (.lamina) as it is; the others take its optimised
# graph as their MODEL (`lamina compile m.lamina` compiles that graph again).
SAVED_AS_IS = ("run", "bench")


class ModelError(ir.LaminaError, ValueError):
    """A MODEL, --input or --plugin argument that names nothing loadable, or code that
    failed."""


class OutputError(PathError):
    """An output path (-o, --dump-dir, --repro) that cannot be written."""


# ---- MODEL and inputs ---------------------------------------------------------------------
def import_path(where: str, what: str = "MODEL"):
    """A module from a `.py` path (its folder goes on sys.path, as for a script, so it can
    import its neighbours) or a dotted module name. Importing runs its code: an exception
    there becomes ModelError naming `what` and `where`."""
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.is_file():
            raise ModelError(f"{what}: no such file {where}")
        for module in list(sys.modules.values()):  # loaded already (e.g. as a --plugin)
            if getattr(module, "__file__", None) == str(path):
                return module
        if str(path.parent) not in sys.path:
            sys.path.insert(0, str(path.parent))
        name = path.stem if path.stem not in sys.modules else f"lamina_model_{path.stem}"
        loader = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(loader)
        sys.modules[name] = module  # what decorators such as passes.graph_pass look up
        try:
            loader.loader.exec_module(module)
        except BaseException as e:
            del sys.modules[name]
            if isinstance(e, Exception):
                raise ModelError(f"{what}: running {where} raised {type(e).__name__}: {e}") \
                    from e
            raise
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as e:
        raise ModelError(f"{what}: cannot import module {where!r}: {e}") from None
    except Exception as e:  # importing runs the module's code
        raise ModelError(f"{what}: importing {where} raised {type(e).__name__}: {e}") from e


def load_model(spec: str):
    """(model, example inputs) for a MODEL argument, the model being a compiler.nn model,
    an ir.Graph or a model file's path; `to_graph` takes any of them (an .onnx file's
    symbolic dimensions take the sizes of the inputs given).

    FILE.py:NAME and module:NAME call NAME only when it is a function (or class) defined in
    that file or module: `os:abort` names a function of another module and is refused
    before anything is called."""
    if spec.endswith((".onnx", ".npz")):
        if not Path(spec).is_file():
            raise ModelError(f"MODEL {spec!r}: no such file")
        return spec, ()
    if ":" not in spec:
        raise ModelError(f"MODEL {spec!r}: expected FILE.onnx, FILE.npz, FILE.py:NAME or "
                         "module:NAME")
    where, name = spec.rsplit(":", 1)
    module = import_path(where, f"MODEL {spec!r}")
    if not name.isidentifier() or not hasattr(module, name):
        raise ModelError(f"MODEL {spec!r}: {where} has no {name!r}")
    built = _build(getattr(module, name), module, spec)
    model, *inputs = built if isinstance(built, tuple) else (built,)
    if not _is_model(model):
        raise ModelError(f"MODEL {spec!r}: gave {type(model).__name__}, not a compiler.nn "
                         "model, an ir.Graph or a model file's path (or a tuple of one and "
                         "example inputs)")
    return model, tuple(inputs)


def _build(found, module, spec: str):
    """`found` itself when it is a model (or a tuple); else call it, if it is a function or
    class the module itself defines."""
    if _is_model(found) or isinstance(found, tuple) or not callable(found):
        return found
    name = spec.rsplit(":", 1)[1]
    home = getattr(found, "__module__", None)
    why = ""
    if home != module.__name__:
        why = f"it comes from {home or 'another module'}, not from {module.__name__}"
    elif not (inspect.isfunction(found) or inspect.isclass(found)):
        why = f"it is a {type(found).__name__}, not a Python function or class"
    if why:
        raise ModelError(f"MODEL {spec!r}: {name} is not called ({why}); name a function "
                         "defined in that file or module that builds the model")
    if module.__name__.partition(".")[0] in sys.stdlib_module_names:
        raise ModelError(f"MODEL {spec!r}: {module.__name__} is part of Python's standard "
                         "library, which builds no models")
    try:
        return found()
    except Exception as e:  # the user's code
        raise ModelError(f"MODEL {spec!r}: calling it raised {type(e).__name__}: {e}") from e


def _is_model(x) -> bool:
    from ..nn import Module

    torch_module = any(c.__module__ == "torch.nn.modules.module" for c in type(x).__mro__)
    return torch_module or isinstance(x, (Module, ir.Graph, str, Path))


def load_graph(args) -> tuple[ir.Graph, list[np.ndarray]]:
    """The verified, unoptimised graph of args.model and the inputs to run it on: the
    --input files, else the MODEL's example inputs, else seeded random ones."""
    given = getattr(args, "input", None)
    arrays = []
    for path in given or ():
        try:
            array = np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError) as e:
            raise ModelError(f"--input {path}: {e}") from None
        if not isinstance(array, np.ndarray):  # an .npz archive
            array.close()
            raise ModelError(f"--input {path}: not a .npy array (an .npz archive?)")
        arrays.append(array)
    if str(args.model).endswith(".lamina"):  # compiled already: run as saved, no passes
        if not Path(args.model).is_file():
            raise ModelError(f"MODEL {args.model!r}: no such file")
        args.saved_model = artifact.load(args.model)
        return args.saved_model.graph, arrays or example_inputs(args.saved_model.graph, ())
    model, examples = load_model(args.model)
    if isinstance(model, (str, Path)) and arrays:  # an .onnx file may need input shapes
        examples = tuple(arrays)
    if str(model).endswith(".onnx") and not arrays:  # its symbolic dims: --dim, else 1
        from ..frontends.onnx import load_onnx

        graph = load_onnx(str(model), input_shapes=_sized(model, getattr(args, "dim", None)))
    else:
        graph = to_graph(model, *examples)
    ir.verify(graph)
    return graph, arrays or example_inputs(graph, examples)


def _sized(path, dims) -> dict | None:
    """The input shapes of an .onnx file with its symbolic dimensions sized by --dim
    NAME=SIZE (1 where not given); None when it has none."""
    from ..frontends.onnx import input_dims

    sizes = {}
    for item in dims or ():
        name, _, size = item.partition("=")
        if not size.isdigit():
            raise ModelError(f"--dim {item!r}: expected NAME=SIZE, a size >= 0")
        sizes[name] = int(size)
    declared = input_dims(str(path))
    names = {d for shape in declared.values() for d in shape if isinstance(d, str)}
    unknown = set(sizes) - names
    if unknown:
        raise ModelError(f"--dim {', '.join(sorted(unknown))}: {path} has no such symbolic "
                         f"dimension (it has {', '.join(sorted(names)) or 'none'})")
    if not names:
        return None
    return {i: [sizes.get(d, 1) if isinstance(d, str) else d for d in shape]
            for i, shape in declared.items()}


# ---- options ------------------------------------------------------------------------------
def count(lowest: int):
    """An argparse type: an integer >= lowest (argparse reports the ValueError's message)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < lowest:
            raise argparse.ArgumentTypeError(f"must be at least {lowest}, got {value}")
        return value

    return parse


def amount(positive: bool):
    """An argparse type: a finite number > 0 (positive) or >= 0."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(value) or value < 0 or (positive and value == 0):
            raise argparse.ArgumentTypeError(
                f"must be a finite number {'>' if positive else '>='} 0, got {text}")
        return value

    return parse


def output_dir(option: str, path: str) -> None:
    """Refuse, before any work, an output folder that exists as something else."""
    if Path(path).exists() and not Path(path).is_dir():
        raise OutputError(f"{option} {path}: exists and is not a directory")


@contextlib.contextmanager
def writing(option: str, path):
    """OSErrors while writing the output `option` names become OutputError naming both."""
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        failed = e.filename if e.filename is not None else path
        raise OutputError(f"{option} {path}: cannot write {failed}: "
                          f"{e.strerror or e}") from e


def add_model(p: argparse.ArgumentParser, opt_default: int | None = 2) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    when = "no passes" if opt_default is None else f"{opt_default}"
    p.add_argument("-O", "--opt-level", type=int, choices=range(4), default=opt_default,
                   help=f"optimisation level, the pipelines O0..O3 (default: {when}; "
                        "`lamina passes` lists them)")
    p.add_argument("--passes", nargs="+", metavar="PASS",
                   help="run these passes in order instead of an -O pipeline (names, "
                        "space- or comma-separated; after MODEL)")


def add_inputs(p: argparse.ArgumentParser) -> None:
    p.add_argument("--input", nargs="+", metavar="X.npy",
                   help="input arrays, one .npy per graph input (default: the MODEL's example "
                        "inputs, else seeded random ones)")
    p.add_argument("--dim", nargs="+", metavar="NAME=SIZE",
                   help="sizes of an .onnx MODEL's symbolic dimensions (`batch=16`) for the "
                        "random inputs (default: 1 each; --input arrays give their own)")


def add_backend(p: argparse.ArgumentParser, default: str) -> None:
    what = "llvm when available, else reference" if default == "auto" else default
    p.add_argument("--backend", choices=["auto", "reference", "llvm"], default=default,
                   help=f"the backend that compiles and runs the model (default: {what})")
    p.add_argument("--threads", type=count(1), metavar="N",
                   help="threads the llvm backend may use (default: $LAMINA_NUM_THREADS, "
                        "else the CPUs this process may use)")


def add_repro(p: argparse.ArgumentParser, when: str) -> None:
    p.add_argument("--repro", metavar="FILE", default=DEFAULT_REPRO,
                   help=f"where to write a reproducer {when} (default: {DEFAULT_REPRO}; "
                        "'' writes none); replay it with `lamina repro FILE`")


def pipeline(args, default_level: int = 2) -> list:
    """The passes chosen by --passes or -O (default_level when neither is given)."""
    if args.passes:
        names = [n for item in args.passes for n in item.split(",") if n]
        return resolve(names)
    level = default_level if args.opt_level is None else args.opt_level
    return resolve(None, level)


def backend(args) -> tuple[str, dict]:
    """(backend name, backend options) from --backend and --threads."""
    if _runs_saved(args):  # its code and thread count were fixed when it was saved
        if args.backend not in ("auto", "llvm") or args.threads is not None:
            raise OptionError(f"{args.model} is a saved compiled model (llvm, "
                              f"{args.saved_model.num_threads} thread(s)): it runs as saved, "
                              "without --backend or --threads")
        return "llvm", {}
    name = backends.DEFAULT if args.backend == "auto" else args.backend
    options = {}
    if args.threads is not None:
        if name != "llvm":
            raise OptionError("--threads applies to the llvm backend only")
        options["num_threads"] = args.threads
    backends.get(name)  # unknown or unavailable: a typed error naming the choices
    return name, options


def _runs_saved(args) -> bool:
    """Whether this verb runs the saved compiled model load_graph found, as it is."""
    return getattr(args, "saved_model", None) is not None and \
        getattr(args, "verb", None) in SAVED_AS_IS


# ---- optimise and build -------------------------------------------------------------------
def compile_graph(args, graph: ir.Graph, inputs, backend_name: str, options: dict,
                  progress: bool | None = None):
    """(optimised graph, compiled model, pass statistics table). On a failing pass or
    backend, writes a reproducer (args.repro) and raises an error that names it."""
    if _runs_saved(args):  # a .lamina file: its code is what runs
        return graph, args.saved_model, "(a saved compiled model: no passes run)"
    passes = pipeline(args)
    records, last = [], graph
    try:
        with Progress("optimising", total=len(passes), enabled=progress) as bar:
            for step in steps(graph, passes):
                bar.advance(note=step.name)
                records.append(step.record)
                last = step.after
            bar.set(f"compiling with {backend_name}")
            model = build(last, backend_name, **options)
    except ir.LaminaError as e:
        failing = passes[len(records)].name if len(records) < len(passes) else \
            f"backend {backend_name}"
        finding = {"kind": "pass-error" if len(records) < len(passes) else "backend-error",
                   "culprit": failing, "node": None, "detail": str(e)}
        note = save_repro(args, graph, passes, inputs, "compile", backend_name, finding,
                          options)
        raise ir.LaminaError(f"{e}{note}") from e
    return last, model, stats_table(records)


def save_repro(args, graph, passes, inputs, kind, backend_name, finding, options) -> str:
    """Write the reproducer if --repro names a file; the note to append to a message."""
    path = getattr(args, "repro", "")
    if not path:
        return ""
    try:
        repro.save(path, graph, passes, inputs, kind=kind, backend=backend_name,
                   finding=finding, options=options)
    except OSError as e:  # keep the error being reported; say why there is no reproducer
        return f" (no reproducer: cannot write --repro {path}: {e.strerror or e})"
    return f" (reproducer written to {path}; replay it with `lamina repro {path}`)"


def progress_enabled(args) -> bool | None:
    """None (on when stderr is a terminal) unless --quiet turned it off."""
    return False if getattr(args, "quiet", False) else None


def out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


class Formatter(argparse.HelpFormatter):
    """Wraps descriptions paragraph by paragraph but keeps indented lines (examples) as
    written."""

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines, para = [], []

        def flush():
            if para:
                lines.append(textwrap.fill(" ".join(para), width, initial_indent=indent,
                                           subsequent_indent=indent))
                para.clear()

        for line in text.splitlines():
            if not line.strip() or line.startswith(" "):
                flush()
                lines.append(indent + line)
            else:
                para.append(line.strip())
        flush()
        return "\n".join(lines)
