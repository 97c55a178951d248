"""What the verbs share: reading MODEL and inputs, pipeline and backend options, and
optimising + building with a reproducer written when that fails."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
import textwrap
from pathlib import Path

import numpy as np

import backends
import ir

from ..compile import to_graph
from ..tools import repro
from ..tools.progress import Progress
from ..tools.runner import build, example_inputs
from ..tools.stepping import resolve, stats_table, steps

MODEL_HELP = ("an .onnx file, a graph saved with ir.save or `lamina compile` (.npz), or "
              "FILE.py:NAME / module:NAME naming a function that returns (model, *inputs) "
              "(or a model, or an ir.Graph)")
DEFAULT_REPRO = "lamina-repro.npz"


# ---- MODEL and inputs ---------------------------------------------------------------------
def import_path(where: str):
    """A module from a `.py` path (its folder goes on sys.path, as for a script, so it can
    import its neighbours) or a dotted module name."""
    if where.endswith(".py"):
        path = Path(where).resolve()
        if not path.exists():
            raise ir.LaminaError(f"no such file {where}")
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
        except BaseException:
            del sys.modules[name]
            raise
        return module
    try:
        return importlib.import_module(where)
    except ModuleNotFoundError as e:
        raise ir.LaminaError(f"cannot import module {where!r}: {e}") from None


def load_model(spec: str):
    """(model, graph or file path, example inputs) for a MODEL argument; `to_graph` takes
    any of them (an .onnx file's symbolic dimensions take the sizes of the inputs given)."""
    if spec.endswith((".onnx", ".npz")):
        if not Path(spec).exists():
            raise ir.LaminaError(f"MODEL {spec!r}: no such file")
        return spec, ()
    if ":" not in spec:
        raise ir.LaminaError(f"MODEL {spec!r}: expected FILE.onnx, FILE.npz, FILE.py:NAME or "
                             "module:NAME")
    where, name = spec.rsplit(":", 1)
    try:
        module = import_path(where)
    except ir.LaminaError as e:
        raise ir.LaminaError(f"MODEL {spec!r}: {e}") from None
    if not hasattr(module, name):
        raise ir.LaminaError(f"MODEL {spec!r}: {where} has no {name!r}")
    built = getattr(module, name)
    built = built() if callable(built) and not hasattr(built, "forward") else built
    if isinstance(built, ir.Graph):
        return built, ()
    model, *inputs = built if isinstance(built, tuple) else (built,)
    return model, tuple(inputs)


def load_graph(args) -> tuple[ir.Graph, list[np.ndarray]]:
    """The verified, unoptimised graph of args.model and the inputs to run it on: the
    --input files, else the MODEL's example inputs, else seeded random ones."""
    given = getattr(args, "input", None)
    arrays = []
    if given:
        try:
            arrays = [np.load(p, allow_pickle=False) for p in given]
        except (OSError, ValueError) as e:
            raise ir.LaminaError(f"--input: {e}") from None
    model, examples = load_model(args.model)
    if isinstance(model, str):  # a file: an .onnx one may need the input shapes
        examples = tuple(arrays)
    graph = to_graph(model, *examples)
    ir.verify(graph)
    return graph, arrays or example_inputs(graph, examples)


# ---- options ------------------------------------------------------------------------------
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


def add_backend(p: argparse.ArgumentParser, default: str) -> None:
    what = "llvm when available, else reference" if default == "auto" else default
    p.add_argument("--backend", choices=["auto", "reference", "llvm"], default=default,
                   help=f"the backend that compiles and runs the model (default: {what})")
    p.add_argument("--threads", type=int, metavar="N",
                   help="threads the llvm backend may use (default: all cores)")


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
    name = backends.DEFAULT if args.backend == "auto" else args.backend
    options = {}
    if args.threads is not None:
        if name != "llvm":
            raise ir.LaminaError("--threads applies to the llvm backend only")
        options["num_threads"] = args.threads
    backends.get(name)  # unknown or unavailable: a typed error naming the choices
    return name, options


# ---- optimise and build -------------------------------------------------------------------
def compile_graph(args, graph: ir.Graph, inputs, backend_name: str, options: dict,
                  progress: bool | None = None):
    """(optimised graph, compiled model, pass statistics table). On a failing pass or
    backend, writes a reproducer (args.repro) and raises an error that names it."""
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
    repro.save(path, graph, passes, inputs, kind=kind, backend=backend_name, finding=finding,
               options=options)
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
