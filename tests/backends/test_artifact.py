"""Saved compiled models (backends/artifact.py): fn.save writes one .lamina zip, and
compiler.load runs it in a fresh process without LLVM; bad files get ArtifactError."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

import compiler
import ir
from backends import artifact
from compiler import nn

pytestmark = pytest.mark.skipif(artifact.c_compiler() is None,
                                reason="saving builds a shared library: no C compiler on PATH")

ROOT = Path(__file__).resolve().parents[2]


def mlp():
    m = nn.Sequential(nn.Linear(12, 32), nn.GELU(), nn.Linear(32, 5), nn.Softmax(-1))
    return m, np.random.default_rng(1).normal(size=(3, 12)).astype(np.float32)


def cnn():
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                      nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))
    m.eval()
    return m, np.random.default_rng(2).normal(size=(2, 3, 32, 32)).astype(np.float32)


# Run in a fresh interpreter: load, call, and report whether any llvmlite module was
# imported on the way (the loader must not need LLVM).
CHILD = """
import sys, numpy as np, compiler
fn = compiler.load(sys.argv[1])
y = fn(np.load(sys.argv[2]))
np.save(sys.argv[3], y)
llvm = sorted(m for m in sys.modules if m.split(".")[0] == "llvmlite")
print("LLVM-MODULES:", ",".join(llvm) or "none")
"""


@pytest.mark.parametrize("make,threads", [(mlp, 1), (cnn, 2)], ids=["mlp", "cnn"])
def test_round_trip_in_fresh_process_without_llvm(tmp_path, make, threads):
    model, x = make()
    fn = compiler.compile(model, x, num_threads=threads)
    assert fn.calls_thread_pool == (threads > 1)  # the CNN runs the library's own pool
    expected = compiler.compile(model, x, backend="reference")(x)  # the numpy oracle
    path = fn.save(tmp_path / "model.lamina")
    np.save(tmp_path / "x.npy", x)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", CHILD, str(path), str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], capture_output=True, text=True,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert "LLVM-MODULES: none" in done.stdout
    y = np.load(tmp_path / "y.npy")
    assert y.shape == expected.shape and y.dtype == expected.dtype
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_metadata_and_members(tmp_path):
    model, x = cnn()
    fn = compiler.compile(model, x, num_threads=2)
    path = fn.save(tmp_path / "m.lamina")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
        names = set(zf.namelist())
        raw = path.read_bytes()
        for info in zf.infolist():  # every member but the metadata starts 64-byte aligned
            if info.filename != "metadata.json":
                at = info.header_offset  # local header: name length at 26, extra's at 28
                start = at + 30 + sum(int.from_bytes(raw[at + k:at + k + 2], "little")
                                      for k in (26, 28))
                assert start % 64 == 0, info.filename
        assert not any(n.endswith((".pkl", ".pickle")) for n in names)
        with zf.open("model.ir") as f:
            assert f.read().decode().strip() == ir.print_graph(fn.graph).strip()
    assert meta["format_version"] == artifact.FORMAT_VERSION
    assert meta["lamina_version"] == compiler.__version__
    assert meta["target"]["features"] == fn.target.features
    assert meta["fp_mode"] == "strict" and meta["num_threads"] == 2 and meta["uses_pool"]
    assert meta["llvm_version"].count(".") == 2
    assert meta["arena_bytes"] == fn.arena_bytes
    assert meta["inputs"] == [{"name": v.name, "dtype": "f32", "shape": list(x.shape)}
                              for v in fn.graph.inputs]
    assert set(meta["sha256"]) == names - {"metadata.json"}
    assert {"model.so", "model.ir", "weights/0.npy"} <= names
    assert len(meta["weights"]) == len(fn.graph.params)
    assert meta["n_constants"] == len(fn.constant_arrays)


def test_loaded_model_checks_inputs(tmp_path):
    model, x = mlp()
    loaded = compiler.load(compiler.compile(model, x).save(tmp_path / "m.lamina"))
    with pytest.raises(ir.InputError, match="expects"):
        loaded(x[:, :5])
    with pytest.raises(ir.InputError):
        loaded(x.astype(np.float64))
    y = loaded(np.asfortranarray(x))  # a non-contiguous input is copied, not misread
    np.testing.assert_allclose(y, loaded(x.copy()))


# ---- refused files ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    model, x = mlp()
    return compiler.compile(model, x).save(tmp_path_factory.mktemp("a") / "m.lamina")


def rewrite(src: Path, dst: Path, change) -> Path:
    """Copy the zip at `src` to `dst`, passing its {name: bytes} through `change`."""
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members = change(members)
    with zipfile.ZipFile(dst, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return dst


def with_meta(**fields):
    def change(members):
        meta = json.loads(members["metadata.json"])
        for key, value in fields.items():
            meta[key] = value(meta[key]) if callable(value) else value
        members["metadata.json"] = json.dumps(meta).encode()
        return members
    return change


def test_unchanged_rewrite_loads(saved, tmp_path):
    # the control for the tests below: rewriting alone (unaligned members) breaks nothing
    copy = rewrite(saved, tmp_path / "copy.lamina", lambda m: m)
    x = mlp()[1]
    np.testing.assert_array_equal(compiler.load(copy)(x), compiler.load(saved)(x))


def test_corrupted_weight_is_refused(saved, tmp_path):
    def flip(members):
        data = bytearray(members["weights/0.npy"])
        data[-1] ^= 0xFF
        members["weights/0.npy"] = bytes(data)
        return members
    bad = rewrite(saved, tmp_path / "bad.lamina", flip)
    with pytest.raises(artifact.ArtifactError, match=r"weights/0\.npy.*SHA-256"):
        compiler.load(bad)


def test_corrupted_code_is_refused_even_unverified(saved, tmp_path):
    def flip(members):
        data = bytearray(members["model.so"])
        data[len(data) // 2] ^= 0xFF
        members["model.so"] = bytes(data)
        return members
    bad = rewrite(saved, tmp_path / "bad.lamina", flip)
    with pytest.raises(artifact.ArtifactError, match=r"model\.so.*SHA-256"):
        compiler.load(bad, verify=False)


def test_missing_member_is_refused(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "bad.lamina",
                  lambda m: {k: v for k, v in m.items() if k != "model.so"})
    with pytest.raises(artifact.ArtifactError, match=r"model\.so is missing"):
        compiler.load(bad)


def test_truncated_file_is_refused(saved, tmp_path):
    bad = tmp_path / "cut.lamina"
    bad.write_bytes(saved.read_bytes()[:-200])  # the central directory is at the end
    with pytest.raises(artifact.ArtifactError, match="not a Lamina model file"):
        compiler.load(bad)
    text = tmp_path / "text.lamina"
    text.write_text("hello")
    with pytest.raises(artifact.ArtifactError, match="not a Lamina model file"):
        compiler.load(text)


def test_other_format_version_is_refused(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "v2.lamina", with_meta(format_version=2))
    with pytest.raises(artifact.ArtifactError, match="format version 2"):
        compiler.load(bad)


def test_missing_cpu_feature_is_refused(saved, tmp_path):
    flags = artifact.host_flags()
    if flags is None or os.uname().machine != "x86_64":
        pytest.skip("CPU flags are read from /proc/cpuinfo on x86-64 only")
    lacking = [f for f in ("avx512fp16", "amx-tile", "avx512vp2intersect", "xop", "fma4",
                           "tbm", "avx512f", "avx2")
               if artifact.cpuinfo_name(f) not in flags]
    if not lacking:
        pytest.skip("this CPU has every feature the test could claim")
    bad = rewrite(saved, tmp_path / "isa.lamina", with_meta(
        target=lambda t: {**t, "features": t["features"] + f",+{lacking[0]}"}))
    with pytest.raises(artifact.ArtifactError, match=f"lacks: {lacking[0]}"):
        compiler.load(bad)


def test_missing_features_maps_llvm_names_to_cpuinfo():
    flags = {"sse", "sse2", "sse4_1", "avx", "avx2", "fma", "bmi1", "abm"}
    assert artifact.missing_features("+sse4.1,+avx2,+fma,+bmi,+lzcnt,-avx512f", flags) == []
    assert artifact.missing_features("+avx512f,+avx512vnni,+rdseed,+64bit", flags) == \
        ["avx512f", "avx512vnni"]  # rdseed and 64bit are not kernel instructions


def test_other_architecture_is_refused(saved, tmp_path):
    bad = rewrite(saved, tmp_path / "arm.lamina", with_meta(machine="riscv128"))
    with pytest.raises(artifact.ArtifactError, match="riscv128"):
        compiler.load(bad)


def test_missing_path_is_a_path_error(tmp_path):
    with pytest.raises(ir.errors.PathError):
        compiler.load(tmp_path / "nothing.lamina")


# ---- the command line ------------------------------------------------------------------------
def cli(capsys, *args) -> tuple[int, str, str]:
    from compiler.cli import main

    code = main([str(a) for a in args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_run_and_bench_take_a_saved_model(tmp_path, capsys):
    model, x = mlp()
    saved = compiler.compile(model, x).save(tmp_path / "m.lamina")
    np.save(tmp_path / "x.npy", x)
    expected = compiler.compile(model, x, backend="reference")(x)
    code, out, _ = cli(capsys, "run", saved, "--input", tmp_path / "x.npy",
                       "-o", tmp_path / "y.npy")
    assert code in (0, None), out
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), expected, rtol=1e-5, atol=1e-6)
    code, out, _ = cli(capsys, "bench", saved, "--repeat", 3, "--warmup", 0,
                       "--seconds", 0.5)
    assert code in (0, None) and "llvm" in out and "reference" in out


def test_cli_refuses_a_corrupted_saved_model(saved, tmp_path, capsys):
    bad = rewrite(saved, tmp_path / "v9.lamina", with_meta(format_version=9))
    code, _, err = cli(capsys, "run", bad)
    assert code == 1 and "format version 9" in err and "Traceback" not in err


def test_cli_runs_a_saved_model_without_llvm(saved, tmp_path):
    script = ("import sys; from compiler.cli import main; code = main(sys.argv[1:]); "
              "print('LLVM-MODULES:', [m for m in sys.modules if m.startswith('llvmlite')])"
              "; sys.exit(code)")
    for verb, shows in ((["run", saved], "output 0: f32[3,5]"),
                        (["bench", saved, "--repeat", "3", "--seconds", "0.2"], "reference")):
        done = subprocess.run([sys.executable, "-c", script, *map(str, verb)],
                              capture_output=True, text=True, timeout=120, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert done.returncode == 0, done.stderr
        assert "LLVM-MODULES: []" in done.stdout and shows in done.stdout, done.stdout


def test_cli_refuses_backend_options_for_a_saved_model(saved, capsys):
    code, _, err = cli(capsys, "run", saved, "--threads", 2)
    assert code == 1 and "runs as saved" in err


def test_array_of_another_shape_is_refused_even_unverified(saved, tmp_path):
    # without hashing, the stated shapes still keep the code inside every array
    def shrink(members):
        members["constants/0.npy"] = _npy(np.zeros(1, np.float32))
        return members
    bad = rewrite(saved, tmp_path / "small.lamina", shrink)
    with pytest.raises(artifact.ArtifactError, match="compile-time arrays"):
        compiler.load(bad, verify=False)
    def cut_weight(members):
        members["weights/0.npy"] = _npy(np.zeros((1, 12), np.float32))
        return members
    bad = rewrite(saved, tmp_path / "w.lamina", cut_weight)
    with pytest.raises(artifact.ArtifactError, match="declared"):
        compiler.load(bad, verify=False)


def _npy(a: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, a, allow_pickle=False)
    return buf.getvalue()


def test_runtime_error_keeps_its_message(tmp_path):
    # the error table travels in the metadata: a bad index is a typed error, not a crash
    idx = np.array([[1, 2]], np.int64)
    loaded = compiler.load(compiler.compile(nn.Embedding(10, 4), idx).save(tmp_path / "e.lamina"))
    with pytest.raises(ir.LaminaError, match="gather index out of range"):
        loaded(np.array([[1, 99]], np.int64))
    assert loaded(idx).shape == (1, 2, 4)


def test_save_without_c_compiler_is_a_typed_error(tmp_path, monkeypatch):
    model, x = mlp()
    fn = compiler.compile(model, x)
    monkeypatch.setattr(artifact, "c_compiler", lambda: None)
    with pytest.raises(artifact.ArtifactError, match="no C compiler"):
        fn.save(tmp_path / "m.lamina")
    assert not list(tmp_path.iterdir())  # no half-written file left behind


def test_models_loaded_one_after_another_run_their_own_code(tmp_path):
    # each load is a library of its own, even when an earlier one was dropped: a reused
    # library name would run the earlier model's code on this one's buffers
    import gc

    idx = np.array([[1, 2]], np.int64)
    emb = nn.Embedding(10, 4)
    first = compiler.compile(emb, idx).save(tmp_path / "e.lamina")
    model, x = mlp()
    second = compiler.compile(model, x).save(tmp_path / "m.lamina")
    expected = compiler.compile(model, x, backend="reference")(x)
    for _ in range(3):
        a = compiler.load(first)
        assert a(idx).shape == (1, 2, 4)
        del a
        gc.collect()
        b = compiler.load(second)
        np.testing.assert_allclose(b(x), expected, rtol=1e-5, atol=1e-6)
        del b
        gc.collect()
