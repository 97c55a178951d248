"""The C API of `lamina compile --shared` (compiler/tools/c_api.*): examples/c_api/main.c
built with the system C compiler against libmodel.so and run as its own process (no Python
in it), its printed outputs checked against the numpy reference interpreter on the
unoptimised graph (or numpy itself); the weights file, runtime errors of the compiled code,
null arguments and concurrent runs checked through the same C programs."""

import platform
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

import compiler
import ir
from backends import artifact, reference
from compiler import nn
from compiler.tools import aot, c_api
from tests.compiler.test_cli import lamina, ok, one_line_error

ROOT = Path(__file__).resolve().parents[2]
MAIN_C = ROOT / "examples/c_api/main.c"
HERE = Path(__file__).resolve()
CC = artifact.c_compiler()
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler (cc, gcc or clang) on PATH: "
                              "libmodel.so and the C example cannot be built here")
C_ENV = {"PATH": "/usr/bin:/bin"}  # the C programs run with no Python, PYTHONPATH or venv


# ---- the models (MODEL specs for the CLI: tests/compiler/test_c_api.py:NAME) ----------------
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1))
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(nn.Flatten()(self.features(x)))


def cnn():
    """An image classifier on one 3x32x32 image, with batch-norm statistics to fold."""
    nn.manual_seed(0)
    model = SmallCNN().eval()
    rng = np.random.default_rng(0)
    bn = model.features[1]
    bn.running_mean = rng.normal(0, 0.1, 8).astype(np.float32)
    bn.running_var = rng.uniform(0.5, 1.5, 8).astype(np.float32)
    return model, rng.standard_normal((1, 3, 32, 32)).astype(np.float32)


def picker():
    """Two inputs of two dtypes and a gather, whose compiled code checks its indices: a
    runtime error the C API reports as LAMINA_ERROR_MODEL."""
    g = ir.Graph("picker")
    x = g.add_input("x", ir.TensorType((4, 6)))
    idx = g.add_input("idx", ir.TensorType((3,), "i64"))
    g.outputs = [g.call("gather", x, idx, name="pick", axis=1)]
    return g, np.arange(24, dtype=np.float32).reshape(4, 6), np.array([5, 0, 2])


# ---- building ---------------------------------------------------------------------------------
def compile_shared(spec: str, out: Path, *options) -> Path:
    text = ok(lamina("compile", f"{HERE}:{spec}", "--shared", *options, "-o", out, cwd=out.parent))
    assert "libmodel.so" in text
    return out


def build_c(source: Path, lib_dir: Path, exe: Path) -> Path:
    subprocess.run([CC, "-O2", "-Wall", "-o", str(exe), str(source), f"-I{lib_dir}",
                    f"-L{lib_dir}", "-lmodel", f"-Wl,-rpath,{lib_dir}", "-lpthread"],
                   check=True, capture_output=True)
    return exe


def run_c(*args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], cwd=cwd, env=C_ENV, capture_output=True,
                          text=True, timeout=60)


def printed_outputs(stdout: str) -> dict[str, np.ndarray]:
    """main.c's `output I NAME f32[D,...]` lines and the values after each, as arrays."""
    outs, name, shape, values = {}, None, None, []
    for line in [*stdout.splitlines(), "output end"]:
        if line.startswith(("output ", "threads:", "model:")):
            if name is not None:
                outs[name] = np.array(values, np.float64).reshape(shape)
            name, shape, values = None, None, []
            if line.startswith("output ") and line != "output end":
                _, _, name, typ = line.split()
                shape = [int(d) for d in typ[typ.index("[") + 1:-1].split(",") if d]
        elif name is not None:
            values.append(float(line))
    return outs


@pytest.fixture(scope="module")
def cnn_build(tmp_path_factory):
    """The CNN compiled for 2 threads (its thread pool linked in), main.c built against it."""
    d = compile_shared("cnn", tmp_path_factory.mktemp("cnn") / "build", "--threads", "2")
    model, x = cnn()
    x.tofile(d / "x.bin")
    return d, build_c(MAIN_C, d, d / "main"), compiler.trace(model, x), x


@pytest.fixture(scope="module")
def picker_build(tmp_path_factory):
    """The gather model on one thread (no pool), main.c built against it."""
    d = compile_shared("picker", tmp_path_factory.mktemp("picker") / "build", "--threads", "1")
    return d, build_c(MAIN_C, d, d / "main")


# ---- the example --------------------------------------------------------------------------------
@needs_cc
def test_c_api_example_prints_what_the_reference_computes(cnn_build):
    d, main, graph, x = cnn_build
    result = run_c(main, "x.bin", cwd=d)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("model: graph @") and "2 thread(s)" in result.stdout
    outs = printed_outputs(result.stdout)
    expected = reference.run(graph, x)[0]
    assert list(outs) == [graph.outputs[0].name]
    np.testing.assert_allclose(outs[graph.outputs[0].name], expected, rtol=1e-4, atol=1e-5)
    ldd = shutil.which("ldd")
    if ldd:  # the process holds libc, libm, libpthread and the model: nothing of Python
        libs = subprocess.run([ldd, str(main)], capture_output=True, text=True).stdout
        assert "libmodel.so" in libs and "python" not in libs.lower()


@needs_cc
def test_c_api_concurrent_runs_of_one_model_agree(cnn_build):
    d, main, _, _ = cnn_build
    result = run_c(main, "--threads", "4", "--repeat", "25", "x.bin", cwd=d)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "threads: 4 x 25 runs, 0 differed from the first run" in result.stdout


@needs_cc
def test_c_api_reads_a_weights_file_and_refuses_a_wrong_one(cnn_build):
    d, main, _, _ = cnn_build
    built_in = run_c(main, "x.bin", cwd=d)
    from_file = run_c(main, "--weights", "model.weights.bin", "x.bin", cwd=d)
    assert from_file.returncode == 0 and from_file.stdout == built_in.stdout
    blob = (d / "model.weights.bin").read_bytes()
    (d / "short.bin").write_bytes(blob[:-64])
    (d / "flipped.bin").write_bytes(blob[:100] + bytes([blob[100] ^ 1]) + blob[101:])
    for path, message in [("missing.bin", "cannot open weights file missing.bin"),
                          ("short.bin", f"has {len(blob) - 64} bytes; this model's weights "
                                        f"are {len(blob)} bytes"),
                          ("flipped.bin", "not the file it was compiled with")]:
        result = run_c(main, "--weights", path, "x.bin", cwd=d)
        assert result.returncode == 1 and result.stdout == "", path
        assert result.stderr.startswith("main: lamina_create: ") and message in result.stderr


@needs_cc
def test_c_api_input_file_of_the_wrong_size_is_refused(cnn_build):
    d, main, _, x = cnn_build
    (d / "half.bin").write_bytes((d / "x.bin").read_bytes()[: x.nbytes // 2])
    result = run_c(main, "half.bin", cwd=d)
    assert result.returncode == 2 and f"needs exactly {x.nbytes} bytes" in result.stderr


@needs_cc
def test_c_api_two_inputs_and_a_runtime_error_of_the_compiled_code(picker_build):
    d, main = picker_build
    _, x, idx = picker()
    x.tofile(d / "x.bin")
    idx.tofile(d / "idx.bin")
    result = run_c(main, "x.bin", "idx.bin", cwd=d)
    assert result.returncode == 0, result.stderr
    np.testing.assert_array_equal(printed_outputs(result.stdout)["pick"], x[:, [5, 0, 2]])
    np.array([5, 6, 0]).tofile(d / "bad.bin")  # 6 is past the axis' 6 columns
    result = run_c(main, "x.bin", "bad.bin", cwd=d)
    assert result.returncode == 1 and result.stdout.count("\n") == 1  # the model line only
    assert "main: lamina_run: the model failed with status 1: " in result.stderr
    assert "gather index out of range [-6, 6)" in result.stderr


SIGNATURE_C = r"""
#include <stdio.h>
#include <string.h>
#include "model.h"
/* The signature's accessors, and what NULL arguments and indexes out of range get. */
int main(void) {
    lamina_status st = LAMINA_ERROR_MODEL;
    lamina_model *m = lamina_create(NULL, &st);
    if (!m || st != LAMINA_OK) return 10;
    for (int i = 0; i < lamina_num_inputs(m); i++) {
        printf("input %s %s", lamina_input_name(m, i), lamina_dtype_name(lamina_input_dtype(m, i)));
        for (int k = 0; k < lamina_input_rank(m, i); k++)
            printf(" %lld%s", (long long)lamina_input_shape(m, i)[k],
                   lamina_input_dim_name(m, i, k) ? "?" : "");
        printf(" %zu\n", lamina_input_bytes(m, i));
    }
    printf("outputs %d %s %zu\n", lamina_num_outputs(m), lamina_output_name(m, 0),
           lamina_output_bytes(m, 0));
    if (lamina_input_name(m, 2) || lamina_output_shape(m, -1) || lamina_input_rank(m, 9) != -1
        || lamina_output_dtype(m, 1) != LAMINA_DTYPE_INVALID || lamina_num_inputs(NULL) != -1)
        return 11;
    float x[24] = {0}, y[12];
    const void *in[2] = {x, NULL};
    void *out[1] = {y};
    printf("%d %s\n", lamina_run(m, in, out), lamina_last_error());
    printf("%d %s\n", lamina_run(NULL, in, out), lamina_last_error());
    printf("%d %s\n", lamina_run(m, in, NULL), lamina_last_error());
    printf("%s\n", lamina_status_string(LAMINA_ERROR_WEIGHTS_CHECKSUM));
    lamina_destroy(m);
    lamina_destroy(NULL);
    return 0;
}
"""


@needs_cc
def test_c_api_signature_null_arguments_and_header(picker_build):
    d, _ = picker_build
    header = (d / "model.h").read_text()
    for decl in ("lamina_model *lamina_create(const char *weights_path, lamina_status *status);",
                 "void lamina_destroy(lamina_model *model);", "LAMINA_ERROR_WEIGHTS_SIZE = 4",
                 "int32_t lamina_main(void **io, void *const *weights, void *arena);"):
        assert decl in header
    (d / "signature.c").write_text(SIGNATURE_C)
    result = run_c(build_c(d / "signature.c", d, d / "signature"), cwd=d)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "input x f32 4 6 96", "input idx i64 3 24", "outputs 1 pick 48",
        "1 lamina_run: input 1 (idx) is NULL", "1 lamina_run: model is NULL",
        "1 lamina_run: outputs is NULL", "weights file with another checksum"]


@needs_cc
def test_c_api_library_exports_the_api_only(picker_build):
    d, _ = picker_build
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm on PATH to list the library's symbols")
    listed = subprocess.run([nm, "-D", "--defined-only", str(d / "libmodel.so")],
                            capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in listed.splitlines() if line.strip()}
    assert "lamina_create" in names and "lamina_run" in names
    assert not {"lamina_main", "lamina_pool_grow", "lamina_t_blob"} & names


@needs_cc
@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") or
                    artifact.host_flags() is None or "xop" in artifact.host_flags(),
                    reason="needs x86 Linux with /proc/cpuinfo, on a CPU without XOP")
def test_c_api_refuses_a_cpu_without_the_compiled_features(tmp_path, monkeypatch):
    graph, x, idx = picker()
    model = compiler.compile(graph, x, idx, num_threads=1)
    # as if compiled for a CPU with AMD's XOP, which no current CPU has: the check must
    # refuse before any code runs (the code itself uses no XOP; only the table says so)
    monkeypatch.setattr(c_api, "cpu_flags", lambda m: ["avx", "xop"])
    aot.write(tmp_path, model.graph, model, "", shared=True)
    result = run_c(build_c(MAIN_C, tmp_path, tmp_path / "main"), "x.bin", "idx.bin",
                   cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "main: lamina_create: compiled for CPU " in result.stderr
    assert "with features this CPU lacks: xop; compile the model again" in result.stderr


# ---- the command line -------------------------------------------------------------------------
def test_c_api_shared_needs_the_llvm_backend_and_a_c_compiler(tmp_path):
    one_line_error(lamina("compile", f"{HERE}:picker", "--shared", "--backend", "reference",
                          "-o", "out", cwd=tmp_path), "--shared", "--backend llvm")
    env = {"PATH": str(tmp_path)}  # nothing there: no cc, gcc or clang
    one_line_error(lamina("compile", f"{HERE}:picker", "--shared", "-o", "out", cwd=tmp_path,
                          env=env), "--shared needs a C compiler")
    assert not (tmp_path / "out").exists()
