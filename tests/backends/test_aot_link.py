"""The object `lamina compile -o DIR` writes links on its own: a model compiled for two
threads carries the thread pool, the header's build line is the whole build, and the
program's outputs match the reference interpreter."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from backends import llvm, reference
from compiler.tools import aot
from ir import Graph, TensorType

from .helpers import randn

CC = shutil.which("cc")
needs_cc = pytest.mark.skipif(CC is None, reason="no C compiler on PATH")

# main IN.bin OUT.bin: reads the input, calls lamina_main twice (the second time on the
# started pool), writes the outputs one after another; prints how many threads it ran.
C_MAIN = r"""
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include "model.h"

static char *aligned(long n) { return aligned_alloc(64, (n + 64) / 64 * 64); }

static long bytes_of(const char *path, char **data) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END); long n = ftell(f); rewind(f);
    *data = aligned(n);
    long got = (long)fread(*data, 1, n, f);
    fclose(f);
    return got == n ? n : -1;
}

static int threads_now(void) {
    int n = 0; DIR *d = opendir("/proc/self/task"); struct dirent *e;
    while (d && (e = readdir(d))) n += e->d_name[0] != '.';
    if (d) closedir(d);
    return n;
}

int main(int argc, char **argv) {
    static const long out_bytes[] = OUT_BYTES;
    char *blob, *x;
    if (bytes_of("model.weights.bin", &blob) < 0 || bytes_of(argv[1], &x) < 0) return 2;
    void *w[MODEL_NUM_WEIGHTS + 1];
    for (int i = 0; i < MODEL_NUM_WEIGHTS; i++) w[i] = blob + model_weight_offsets[i];
    void *io[1 + MODEL_NUM_OUTPUTS];
    io[0] = x;
    for (int k = 0; k < MODEL_NUM_OUTPUTS; k++) io[1 + k] = aligned(out_bytes[k]);
    void *arena = aligned(MODEL_ARENA_BYTES);
    int rc = lamina_main(io, w, arena);  /* before the pool starts: on this thread */
    lamina_pool_grow(MODEL_NUM_THREADS - 1);
    printf("threads %d\n", threads_now());
    rc |= lamina_main(io, w, arena);
    FILE *o = fopen(argv[2], "wb");
    for (int k = 0; k < MODEL_NUM_OUTPUTS; k++) fwrite(io[1 + k], 1, out_bytes[k], o);
    fclose(o);
    lamina_pool_stop();
    return rc;
}
"""


def two_output_model() -> Graph:
    """Big enough that its matrix products and convolution run through the pool."""
    g = Graph()
    x = g.add_input("x", TensorType((2, 8, 16, 16)))
    h = g.call("fused_conv2d", x, g.add_weight("cw", randn(16, 8, 3, 3)),
               g.add_weight("cb", randn(16)), pad=[1, 1, 1, 1], act="relu", name="c")
    f = g.call("flatten", h, name="f")
    y = g.call("linear", f, g.add_weight("lw", randn(64, f.shape[1], scale=0.02)), name="fc")
    g.outputs = [g.call("tanh", y, name="t"), g.call("reduce_sum", h, axes=[1], name="s")]
    return g


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    g = two_output_model()
    model = llvm.compile_graph(g, num_threads=2)
    d = tmp_path_factory.mktemp("build")
    _, notes = aot.write(d, g, model, "stats")
    return g, model, d, notes


def test_object_defines_the_pool_it_calls(artifacts):
    _, model, d, notes = artifacts
    assert model.calls_thread_pool
    assert not any("lamina_parallel_for" in n for n in notes)
    header = (d / "model.h").read_text()
    assert "Build: cc main.c model.o -lpthread -lm" in header
    assert "void lamina_pool_grow(int64_t workers);" in header
    assert "#define MODEL_NUM_THREADS 2" in header


def test_one_thread_object_needs_no_pool(tmp_path):
    g = two_output_model()
    model = llvm.compile_graph(g, num_threads=1)
    aot.write(tmp_path, g, model, "stats")
    header = (tmp_path / "model.h").read_text()
    assert not model.calls_thread_pool
    assert "Build: cc main.c model.o -lm " in header and "lamina_pool_grow" not in header


@needs_cc
def test_c_program_links_runs_and_matches_reference(artifacts):
    g, _, d, _ = artifacts
    x = randn(2, 8, 16, 16)
    want = reference.run(g, x)
    sizes = ", ".join(str(w.nbytes) for w in want)
    (d / "main.c").write_text(C_MAIN.replace("OUT_BYTES", "{" + sizes + "}"))
    build = re.search(r"Build: (.*?)\s{2}", (d / "model.h").read_text()).group(1).split()
    assert build[:3] == ["cc", "main.c", "model.o"]
    done = subprocess.run([CC, "-O1", "-o", "main", *build[1:]], cwd=d, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr  # no undefined lamina_parallel_for
    x.tofile(d / "x.bin")
    run = subprocess.run(["./main", "x.bin", "y.bin"], cwd=d, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert int(run.stdout.split()[1]) >= 2  # the pool's worker is running
    got = np.fromfile(d / "y.bin", np.float32)
    parts = np.split(got, np.cumsum([w.size for w in want])[:-1])
    for i, (a, w) in enumerate(zip(parts, want)):
        np.testing.assert_allclose(a.reshape(w.shape), w, rtol=1e-5, atol=1e-5,
                                   err_msg=f"output {i}")


@needs_cc
def test_shared_library_loads_with_nothing_else(artifacts):
    import ctypes

    _, _, d, _ = artifacts
    lib = ctypes.CDLL(str(d / "model.so"))  # every symbol resolved at load
    assert lib.lamina_main and lib.lamina_pool_grow and lib.lamina_pool_stop
