"""Bad arguments to every public function and every `lamina` verb (issue 20, Must 2 and 3).

The API raises one of the project's types (an ir.LaminaError, with ValueError, TypeError,
OSError or ImportError as a base where Python users expect one) naming the argument; the
command line prints one line `lamina: error: ...` and exits non-zero, never a traceback
(`--debug` shows one). Also the findings of the issue about rough edges: the training-mode
warning, the float64 hint, `__version__`, py.typed, the onnx extra and hostile reproducers.

CLI cases run `compiler.cli.main` in this process; the two that must not run in it (onnx
missing, `os:abort`) run in a child process."""

from __future__ import annotations

import json
import tomllib
import warnings
from pathlib import Path

import numpy as np
import pytest

import backends
import compiler
import ir
import passes
from compiler import nn, optim
from compiler.cli import main
from compiler.tools import repro
from ir.errors import (
    MissingDependencyError,
    OptionError,
    OptionTypeError,
    PathError,
)
from tests.compiler.cli_models import build_elementwise

from .isolate import ROOT, run_isolated

TINY = f"{ROOT / 'tests/compiler/cli_models.py'}:build"
llvm_only = pytest.mark.skipif(not backends.available("llvm"), reason="no llvm backend")


@pytest.fixture(scope="module")
def model():
    """A small eval-mode model and an input for it."""
    return nn.Sequential(nn.Linear(4, 3), nn.ReLU()).eval(), np.ones((2, 4), np.float32)


@pytest.fixture(scope="module")
def graph():
    return build_elementwise()


# ---- the API ------------------------------------------------------------------------------
def _raises(call, kind: type, *fragments: str) -> ir.LaminaError:
    with pytest.raises(ir.LaminaError) as info:
        call()
    e = info.value
    assert isinstance(e, kind), f"{type(e).__mro__} is not {kind}"
    for f in fragments:
        assert f in str(e), str(e)
    return e


def test_compile_findings(model):
    """The four raw TypeErrors of the issue, and their neighbours."""
    m, x = model
    _raises(lambda: compiler.compile(None, x), TypeError, "compile", "model", "None")
    _raises(lambda: compiler.compile(m, x, passes=5), TypeError, "passes", "5")
    _raises(lambda: compiler.compile(m, x, passes="fold_batch_norm"), TypeError, "passes")
    _raises(lambda: compiler.compile(m, x, passes=[5]), ValueError, "passes")
    _raises(lambda: compiler.compile(m, x, bogus=1), TypeError, "unknown option", "bogus",
            "num_threads")
    _raises(lambda: compiler.compile(m, x, backend="reference", num_threads=2), TypeError,
            "num_threads", "reference")
    _raises(lambda: compiler.compile(), TypeError, "compile()", "model")
    _raises(lambda: compiler.compile(nn.Linear, x), TypeError, "not the class")


@pytest.mark.parametrize("options, kind, fragment", [
    ({"opt_level": 7}, ValueError, "opt_level"),
    ({"opt_level": "fast"}, ValueError, "opt_level"),
    ({"opt_level": True}, TypeError, "opt_level"),
    ({"opt_level": [1]}, TypeError, "opt_level"),
    ({"backend": ["llvm"]}, TypeError, "backend"),
    ({"backend": "nope"}, ValueError, "unknown backend 'nope'"),
    ({"training": "yes"}, TypeError, "training"),
])
def test_compile_options_are_checked(model, options, kind, fragment):
    _raises(lambda: compiler.compile(*model, **options), kind, fragment)


@llvm_only
@pytest.mark.parametrize("options, kind, fragment", [
    ({"fast_math": "no"}, TypeError, "fast_math"),  # was: any truthy value turned it on
    ({"fast_math": 1}, TypeError, "fast_math"),
    ({"num_threads": 0}, ValueError, "num_threads"),
    ({"num_threads": "2"}, ValueError, "num_threads"),
    ({"cache_dir": 5}, ir.LaminaError, "cache_dir"),
    ({"target_features": 5}, ValueError, "target_features"),
])
def test_llvm_options_are_checked(graph, options, kind, fragment):
    g, x = graph
    _raises(lambda: compiler.compile(g, x, **options), kind, fragment)


@llvm_only
def test_fast_math_takes_booleans(graph):
    g, x = graph
    assert compiler.compile(g, x, fast_math=True, num_threads=1).fp_mode == "fast"
    assert compiler.compile(g, x, fast_math=False, num_threads=1).fp_mode == "strict"


@llvm_only
def test_compiled_model_refuses_keywords(graph):
    g, x = graph
    fn = compiler.compile(g, x, num_threads=1)
    _raises(lambda: fn(x=x), ir.InputError, "by position", "%x", "'x'")
    assert isinstance(ir.InputError("x"), ValueError)
    _raises(lambda: fn(), ir.InputError, "takes 1 input")
    _raises(lambda: fn(x.astype(np.float64)), ir.InputError, "f64")
    _raises(lambda: fn(None), ir.InputError, "%x")


def test_reference_model_and_training_step_refuse_keywords(graph):
    g, x = graph
    fn = compiler.compile(g, x, backend="reference")
    _raises(lambda: fn(x=x), ir.InputError, "by position", "%x", "'x'")
    model = nn.Linear(3, 2)
    xs, ys = np.ones((4, 3), np.float32), np.zeros((4, 2), np.float32)
    step = compiler.compile_training(model, nn.MSELoss(), compiler.optim.SGD(), xs, ys,
                                     backend="reference")
    _raises(lambda: step(xs, y=ys), ir.InputError, "by position", "keywords y")


def test_examples_and_models(model, graph):
    m, x = model
    _raises(lambda: compiler.compile(m), ir.LaminaError, "example input")
    _raises(lambda: compiler.compile(m, "abc"), ValueError, "example input", "dtype")
    _raises(lambda: compiler.compile("missing.npz", x), ValueError, "missing.npz")
    _raises(lambda: compiler.compile("missing.onnx", x), ValueError, "missing.onnx")
    _raises(lambda: compiler.to_graph(None), TypeError, "to_graph", "model")


def test_float64_example_input_gets_a_hint(model):
    m, x = model
    e = _raises(lambda: compiler.compile(m, x.astype(np.float64)), ir.ShapeError,
                "operands must share one dtype", "float64", "astype(np.float32)")
    assert "layer '0' (Linear)" in str(e)  # the original message, still naming the layer


def test_trace_and_training(model):
    m, x = model
    y = np.ones((2, 3), np.float32)
    _raises(lambda: compiler.trace(None, x), TypeError, "trace", "model")
    _raises(lambda: compiler.trace(m, x, bogus=1), TypeError, "trace()", "bogus")
    _raises(lambda: compiler.trace(m), ir.LaminaError, "example input")
    sgd = optim.SGD(0.1)
    _raises(lambda: compiler.compile_training(None, nn.MSELoss(), sgd, x, y), TypeError,
            "compile_training", "model")
    _raises(lambda: compiler.compile_training(m, nn.MSELoss(), "sgd", x, y), ir.LaminaError,
            "optimizer")
    _raises(lambda: compiler.compile_training(m, nn.MSELoss(), sgd, x, y, bogus=1), TypeError,
            "bogus")
    _raises(lambda: compiler.compile_training(m, nn.MSELoss(), sgd, x, y, opt_level=9),
            ValueError, "opt_level")
    _raises(lambda: compiler.compile_training(m, nn.MSELoss(), sgd, x, x), ValueError, "shape")


def test_onnx_functions(graph, tmp_path):
    pytest.importorskip("onnx")
    g, _ = graph
    path = tmp_path / "ew.onnx"
    compiler.save_onnx(g, path)
    from compiler import OnnxExportError, OnnxImportError

    _raises(lambda: compiler.load_onnx(5), OnnxImportError, "got int")
    _raises(lambda: compiler.load_onnx(b"garbage"), OnnxImportError, "corrupt")
    _raises(lambda: compiler.load_onnx(tmp_path / "missing.onnx"), OnnxImportError, "missing")
    _raises(lambda: compiler.load_onnx(path, input_shapes=5), TypeError, "input_shapes")
    _raises(lambda: compiler.load_onnx(path, input_shapes=[5]), ValueError, "input_shapes")
    _raises(lambda: compiler.load_onnx(path, input_shapes=[(1, 2, 3)]), OnnxImportError,
            "rank")
    _raises(lambda: compiler.save_onnx(None, path), OnnxExportError, "example_inputs")
    _raises(lambda: compiler.save_onnx(g, path, opset=5), OnnxExportError, "opset")
    e = _raises(lambda: compiler.save_onnx(g, tmp_path / "no" / "m.onnx"), PathError,
                "save_onnx", str(tmp_path / "no" / "m.onnx"))
    assert isinstance(e, OSError) and e.errno is not None
    _raises(lambda: compiler.save_onnx(g, tmp_path), OSError, "save_onnx", str(tmp_path))


def test_bisect_and_profile(graph):
    g, x = graph
    _raises(lambda: compiler.bisect(None, x), TypeError, "bisect", "model")
    _raises(lambda: compiler.bisect(g, x, passes="eliminate_dropout"), TypeError, "passes")
    _raises(lambda: compiler.bisect(g, x, backend_rtol=-1), ValueError, "backend_rtol")
    _raises(lambda: compiler.bisect(g, x, backend_atol=float("nan")), ValueError,
            "backend_atol")
    _raises(lambda: compiler.bisect(g, x, bogus=1), TypeError, "bogus")
    _raises(lambda: compiler.profile(None, x), TypeError, "profile", "model")
    _raises(lambda: compiler.profile(g, x, repeat=-1), ValueError, "repeat")
    _raises(lambda: compiler.profile(g, x, warmup=-1), ValueError, "warmup")
    _raises(lambda: compiler.profile(g, x, cores=0), ValueError, "cores")
    _raises(lambda: compiler.profile(g, x, progress="yes"), TypeError, "progress")


def test_errors_are_value_errors_where_python_expects_them():
    for cls in (ir.ShapeError, ir.InvalidAttributeError, ir.UnknownOpError, ir.VerifyError,
                ir.ParseError, ir.InputError, OptionError):
        assert issubclass(cls, ir.LaminaError) and issubclass(cls, ValueError), cls
    assert issubclass(OptionTypeError, TypeError) and issubclass(PathError, OSError)
    assert issubclass(MissingDependencyError, ImportError)
    with pytest.raises(ValueError):
        ir.parse("graph @g( {")
    with pytest.raises(ValueError):
        ir.Graph().call("no_such_op")


# ---- training mode (issue 19) -------------------------------------------------------------
def _training_model():
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.3),
                         nn.Linear(8, 2))


def test_training_mode_model_warns_naming_its_layers():
    m, x = _training_model().train(), np.ones((3, 4), np.float32)
    with pytest.warns(compiler.TrainingModeWarning) as record:
        fn = compiler.compile(m, x, backend="reference")
    (w,) = [w for w in record if w.category is compiler.TrainingModeWarning]
    text = str(w.message)
    assert "'1' (BatchNorm1d)" in text and "'3' (Dropout)" in text and "'0'" not in text
    assert ".eval()" in text and "training=True" in text
    assert issubclass(w.category, UserWarning) and w.filename == __file__  # the user's line
    assert "dropout" in {n.op for n in fn.graph.nodes}  # its semantics are not changed


def test_training_true_or_eval_is_silent():
    m, x = _training_model(), np.ones((3, 4), np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        fn = compiler.compile(m.train(), x, backend="reference", training=True)
        ops = [n.op for n in fn.graph.nodes]
        assert "dropout" in ops and "batch_norm" in ops  # training-mode behaviour kept
        compiler.compile(m.eval(), x, backend="reference")
        compiler.compile(nn.Sequential(nn.Linear(4, 2), nn.Dropout(0.0)).train(), x,
                         backend="reference")  # p=0 behaves the same in both modes


# ---- packaging ----------------------------------------------------------------------------
def test_version_py_typed_and_onnx_extra(capsys):
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert compiler.__version__ == meta["project"]["version"]
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == \
        f"lamina {compiler.__version__}"
    for package in ("ir", "passes", "backends", "compiler"):
        assert (ROOT / package / "py.typed").is_file(), package
    assert meta["tool"]["setuptools"]["package-data"]["*"] == ["py.typed"]
    assert meta["project"]["optional-dependencies"]["onnx"] == ["onnx>=1.16"]


def test_without_onnx_every_onnx_entry_point_says_how_to_install_it(tmp_path):
    (tmp_path / "m.onnx").write_bytes(b"")
    out = run_isolated(f"""
        import sys
        sys.modules["onnx"] = None  # as if it were not installed
        import numpy as np
        import compiler
        from compiler import nn
        from compiler.cli import main
        from ir.errors import MissingDependencyError
        path, x = {str(tmp_path / 'm.onnx')!r}, np.ones((1, 3), np.float32)
        calls = [lambda: compiler.load_onnx(path), lambda: compiler.compile(path, x),
                 lambda: compiler.save_onnx(nn.ReLU(), None, x),
                 lambda: compiler.bisect(path, x)]
        for call in calls:
            try:
                call()
            except MissingDependencyError as e:
                assert isinstance(e, ImportError) and 'pip install "lamina[onnx]"' in str(e)
                print("typed")
        print("exit", main(["dump", path]))
    """)
    assert out.count("typed") == 4 and "exit 1" in out


# ---- the command line ---------------------------------------------------------------------
def run_cli(capsys, *args) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `lamina ARGS`, in this process."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as e:  # argparse: usage errors (2), --help and --version (0)
        code = e.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(capsys, *args, fragments=(), status=None) -> str:
    code, _, err = run_cli(capsys, *args)
    assert code != 0 and (status is None or code == status), (code, err)
    assert "Traceback" not in err and "internal error" not in err, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lamina: error: "), err
    for f in fragments:
        assert f in lines[0], lines[0]
    return lines[0]


USAGE_ERRORS = [  # argparse's own checks: one line, exit status 2
    (["bench", TINY, "--repeat", "-5"], "--repeat"),
    (["bench", TINY, "--warmup", "-1"], "--warmup"),
    (["bench", TINY, "--seconds", "0"], "--seconds"),
    (["profile", TINY, "--repeat", "0"], "--repeat"),
    (["profile", TINY, "--top", "x"], "--top"),
    (["run", TINY, "--threads", "0"], "--threads"),
    (["compile", TINY], "-o"),
    (["compile", TINY, "-o", "out", "--name", "../x"], "--name"),
    (["dump", TINY, "-U", "-1", "--diff"], "--context"),
    (["dump", TINY, "-O", "9"], "-O"),
    (["graph"], "MODEL"),
    (["passes", "a", "b"], "unrecognized"),
    (["bisect", TINY, "--rtol", "-1"], "--rtol"),
    (["bisect", TINY, "--atol", "nan"], "--atol"),
    (["repro"], "FILE"),
    (["frobnicate"], "frobnicate"),
]


@pytest.mark.parametrize("args, fragment", USAGE_ERRORS, ids=[" ".join(a[:2]) + f" #{i}"
                                                               for i, (a, _) in
                                                               enumerate(USAGE_ERRORS)])
def test_usage_errors_are_one_line(capsys, args, fragment):
    one_line(capsys, *args, fragments=[fragment], status=2)


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory with a file where folders are expected, and a folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "adir").mkdir()
    return tmp_path


RUN_ERRORS = [  # each verb's own checks, after parsing: one line, exit status 1
    (["dump", "missing.onnx"], ["no such file"]),
    (["dump", TINY, "-O", "1", "--dump-dir", "afile"], ["--dump-dir afile", "not a directory"]),
    (["graph", TINY, "-o", "afile/g.dot"], ["-o afile/g.dot", "cannot write"]),
    (["passes", "no_such_pass"], ["unknown pass 'no_such_pass'"]),
    (["compile", TINY, "-o", "afile", "--backend", "reference"], ["-o afile", "not a director"]),
    (["compile", TINY, "-o", "afile/sub", "--backend", "reference"], ["-o afile/sub"]),
    (["run", TINY, "--backend", "reference", "-o", "afile/y.npy"], ["-o afile/y.npy"]),
    (["run", TINY, "--input", "adir"], ["--input adir"]),
    (["run", TINY, "--input", "afile"], ["--input afile"]),
    (["bench", TINY, "--backend", "reference", "--threads", "2"], ["llvm backend only"]),
    (["profile", "nonsense"], ["expected FILE.onnx"]),
    (["bisect", f"{ROOT / 'tests/compiler/cli_models.py'}:nothing"], ["has no 'nothing'"]),
    (["repro", "missing.npz"], ["not a Lamina reproducer"]),
    (["--plugin", "missing.py", "passes"], ["--plugin", "missing.py"]),
]


@pytest.mark.parametrize("args, fragments", RUN_ERRORS, ids=[" ".join(a[:2]) + f" #{i}"
                                                              for i, (a, _) in
                                                              enumerate(RUN_ERRORS)])
def test_verb_errors_are_one_line(capsys, workdir, args, fragments):
    one_line(capsys, *args, fragments=fragments, status=1)


def test_every_verb_is_covered():
    from tests.compiler.test_cli import VERBS

    covered = {a[0] if a[0] != "--plugin" else a[2] for a, _ in USAGE_ERRORS + RUN_ERRORS}
    assert set(VERBS) <= covered, set(VERBS) - covered


def test_debug_shows_the_traceback(capsys, workdir, monkeypatch):
    with pytest.raises(ir.LaminaError, match="no such file"):
        main(["--debug", "dump", "missing.onnx"])
    from compiler.cli import view

    def broken(args):
        raise RuntimeError("a bug")

    monkeypatch.setattr(view, "cmd_passes", broken)
    code, _, err = run_cli(capsys, "passes")
    assert code == 1 and err.count("\n") == 1 and "Traceback" not in err
    assert "internal error (a bug in Lamina): RuntimeError: a bug" in err and "--debug" in err
    with pytest.raises(RuntimeError, match="a bug"):
        main(["--debug", "passes"])


def test_run_output_is_saved_where_it_says(capsys, workdir):
    """`run -o somedir` said "saved to somedir" and wrote somedir.npy."""
    for given, written in [("adir", "adir/outputs.npy"), ("y", "y.npy"), ("z.npy", "z.npy"),
                           ("w.npz", "w.npz")]:
        code, out, err = run_cli(capsys, "run", TINY, "--backend", "reference", "-o", given)
        assert code == 0, err
        assert f"saved to {written}\n" in out
        assert (workdir / written).is_file()
    assert sorted(p.name for p in (workdir / "adir").iterdir()) == ["outputs.npy"]
    assert np.load(workdir / "w.npz")["arr_0"].shape == np.load(workdir / "z.npy").shape
    (workdir / "two.py").write_text(
        "import ir\n"
        "def build():\n    g = ir.Graph()\n    x = g.add_input('x', ir.TensorType((3,)))\n"
        "    g.outputs = [g.call('relu', x), g.call('tanh', x)]\n    return g\n")
    two = f"{workdir / 'two.py'}:build"
    code, out, _ = run_cli(capsys, "run", two, "--backend", "reference", "-o", "adir")
    assert code == 0 and "saved to adir/outputs.npz" in out
    assert len(np.load(workdir / "adir/outputs.npz").files) == 2
    one_line(capsys, "run", two, "--backend", "reference", "-o", "t.npy",
             fragments=["-o t.npy", "2 outputs", ".npz"])


def test_unwritable_repro_keeps_the_error(capsys, workdir, monkeypatch):
    """A failing compile whose --repro cannot be written still reports the failure."""

    def crash(graph):
        raise RuntimeError("crash_pass always fails")

    monkeypatch.setitem(passes.manager._PASSES, "crash_pass",
                        passes.Pass("crash_pass", crash, passes.EXACT))
    one_line(capsys, "run", TINY, "--passes", "crash_pass", "--repro", "afile/r.npz",
             fragments=["crash_pass always fails", "no reproducer", "--repro afile/r.npz"])


# ---- MODEL arguments: only functions of that file or module, and only models -------------
def test_module_name_refuses_functions_from_elsewhere(capsys, workdir):
    (workdir / "mymodels.py").write_text(
        "import os\nfrom os import getcwd\nimport numpy as np\nfrom compiler import nn\n"
        "def number():\n    return 42\n"
        "def broken():\n    raise KeyError('oops')\n"
        "class Net(nn.Module):\n    def forward(self, x):\n        return x\n"
        "def good():\n    return Net(), np.ones(3, np.float32)\n")
    spec = str(workdir / "mymodels.py")
    assert run_cli(capsys, "dump", f"{spec}:good")[0] == 0
    assert run_cli(capsys, "dump", f"{spec}:Net")[0] == 1  # a class is fine; it needs inputs
    one_line(capsys, "dump", f"{spec}:getcwd", fragments=["comes from posix"])
    one_line(capsys, "dump", f"{spec}:number", fragments=["gave int", "not a compiler.nn"])
    one_line(capsys, "dump", f"{spec}:broken", fragments=["KeyError", "oops"])
    one_line(capsys, "dump", f"{spec}:os", fragments=["gave module"])
    one_line(capsys, "dump", "sys:exit", fragments=["builtin_function_or_method"])
    one_line(capsys, "dump", "json:dumps", fragments=["standard library"])
    (workdir / "raising.py").write_text("raise ValueError('at import')\n")
    one_line(capsys, "dump", f"{workdir / 'raising.py'}:x", fragments=["at import"])
    one_line(capsys, "--plugin", str(workdir / "raising.py"), "passes",
             fragments=["--plugin", "at import"])


def test_os_abort_is_never_called(tmp_path):
    """`lamina dump os:abort` killed the process: refused before anything is called."""
    out = run_isolated("""
        from compiler.cli import main
        for spec in ("os:abort", "os:_exit", "pdb:set_trace"):
            print(spec, main(["dump", spec]))
    """, timeout=60, cwd=tmp_path)
    assert out.split() == ["os:abort", "1", "os:_exit", "1", "pdb:set_trace", "1"]


def test_help_says_model_arguments_run_code(capsys):
    assert "run that Python code" in run_cli(capsys, "--help")[1]
    text = " ".join(run_cli(capsys, "dump", "--help")[1].split())
    assert "runs that Python code, so name only code you trust" in text


# ---- reproducers: hostile files are refused, options restricted -------------------------
def _hostile(path: Path, **meta_changes) -> Path:
    """A valid reproducer, then its metadata changed as an attacker would."""
    g, x = build_elementwise()
    repro.save(path, g, ["eliminate_dropout"], [x], kind="compile", backend="reference")
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    meta = json.loads(str(arrays["__repro__"]))
    meta.update(meta_changes)
    arrays["__repro__"] = np.array(json.dumps(meta))
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    return path


@pytest.mark.parametrize("changes, fragment", [
    ({"pipeline": "eliminate_dropout"}, "pipeline must be a list"),
    ({"pipeline": [1, 2]}, "pipeline must be a list"),
    ({"kind": ["compile"]}, "unknown reproducer kind"),
    ({"backend": "../../evil"}, "unknown backend"),
    ({"finding": []}, "finding must be a mapping"),
    ({"options": {"cache_dir": "/tmp/anywhere"}}, "option 'cache_dir' is not replayed"),
    ({"options": {"target_features": "+avx512f"}}, "target_features"),
    ({"options": {"target_features": "-sse2,+ndd"}}, "only narrow"),
    ({"options": {"num_threads": 10**6}}, "num_threads"),
    ({"options": {"num_threads": True}}, "num_threads"),
    ({"options": {"fast_math": "yes"}}, "fast_math"),
    ({"options": []}, "options must be a mapping"),
])
def test_hostile_reproducers_are_refused(tmp_path, capsys, changes, fragment):
    path = _hostile(tmp_path / "r.npz", **changes)
    with pytest.raises(repro.ReproError, match=fragment.replace("+", r"\+")):
        repro.load(path)
    one_line(capsys, "repro", path, fragments=[fragment], status=1)


def test_safe_reproducer_options_replay(tmp_path):
    path = _hostile(tmp_path / "r.npz", options={"target_features": "-avx512f,-avx2",
                                                 "num_threads": 2, "fast_math": False})
    assert repro.load(path).options["target_features"] == "-avx512f,-avx2"
    assert repro.load(_hostile(tmp_path / "s.npz", options={"target_features": "sse"}))


def test_saved_reproducer_keeps_only_safe_options_at_its_path(tmp_path):
    g, x = build_elementwise()
    repro.save(tmp_path / "bug", g, [], [x], kind="compile", backend="llvm",
               options={"num_threads": 2, "cache_dir": str(tmp_path)})
    assert not (tmp_path / "bug.npz").exists()  # np.savez would have added the suffix
    assert repro.load(tmp_path / "bug").options == {"num_threads": 2}



def test_every_public_function_refuses_bad_arguments_with_a_typed_error():
    """No argument list, a number, or two Nones: whatever the function, a LaminaError."""
    import inspect

    functions = [n for n in compiler.__all__ if inspect.isfunction(getattr(compiler, n))]
    assert {"compile", "trace", "load_onnx", "load", "from_torch", "format_profile"} <= \
        set(functions)
    for name in functions:
        for args in [(), (5,), (None, None)]:
            with pytest.raises(ir.LaminaError):
                getattr(compiler, name)(*args)
