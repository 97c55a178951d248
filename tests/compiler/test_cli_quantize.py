"""`lamina quantize`: calibration from a file or random batches, the two output formats, the
report, its errors, and the calibration progress bar of compiler.quantize."""

from __future__ import annotations

import io

import numpy as np
import pytest

import compiler
import ir
from compiler.cli import main
from tests.compiler.cli_models import build
from tests.compiler.test_cli import TINY, lamina, ok, one_line_error


def quantize_cli(capsys, *args) -> str:
    assert main(["quantize", *map(str, args)]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def test_random_calibration_writes_a_graph_that_other_verbs_take(tmp_path):
    out = ok(lamina("quantize", TINY, "--random", "3", "-o", "q.npz", cwd=tmp_path))
    assert "int8 quantization (minmax): 2 layer(s) quantized" in out
    assert "int8   %conv (conv2d [4, 3, 3, 3])" in out and "int8   %fc (linear [5, 4])" in out
    assert "SQNR of output 0" in out and "calibrated on 3 batch(es); wrote q.npz" in out
    q = ir.load(str(tmp_path / "q.npz"))
    assert sum(n.op == "quantize" for n in q.nodes) == 2
    assert q.weights["conv.weight.folded.q"].dtype == np.int8
    assert "output 0: f32[2,5]" in ok(lamina("run", "q.npz", cwd=tmp_path))


def test_onnx_output_runs_in_onnxruntime_within_one_step(tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    quantize_cli(capsys, TINY, "--random", "2", "-o", tmp_path / "q.onnx", "--per-tensor")
    quantize_cli(capsys, TINY, "--random", "2", "-o", tmp_path / "q.npz", "--per-tensor")
    _, x = build()
    want = ort.InferenceSession(str(tmp_path / "q.onnx"),
                                providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    q = ir.load(str(tmp_path / "q.npz"))
    (wdq,) = [n for n in q.nodes if n.op == "dequantize" and n.inputs[0].name.startswith("fc.w")]
    assert len(wdq.attrs["scale"]) == 1  # --per-tensor
    got = compiler.compile(q, x)(x)
    step = max(n.attrs["scale"][0] for n in q.nodes if n.op == "quantize")
    np.testing.assert_allclose(got, want, atol=2 * step)


def test_calibration_file_of_a_stack_is_cut_into_batches(tmp_path, capsys):
    rng = np.random.default_rng(3)
    stack = rng.standard_normal((7, 3, 8, 8))  # float64: converted; 7 samples, batches of 2
    np.savez(tmp_path / "cal.npz", stack)
    out = quantize_cli(capsys, TINY, "--calibration", tmp_path / "cal.npz", "-o",
                       tmp_path / "q.npz", "--method", "percentile")
    assert "calibrated on 3 batch(es)" in out and "(percentile)" in out
    np.savez(tmp_path / "named.npz", x=stack[:4].astype(np.float32))
    out = quantize_cli(capsys, TINY, "--calibration", tmp_path / "named.npz", "-o",
                       tmp_path / "q2.npz")
    assert "calibrated on 2 batch(es)" in out
    # the calibrated range is the data's: scaled data gives a proportionally coarser scale
    np.savez(tmp_path / "big.npz", x=10 * stack[:4].astype(np.float32))
    quantize_cli(capsys, TINY, "--calibration", tmp_path / "big.npz", "-o", tmp_path / "q3.npz")
    s2, s3 = (next(n.attrs["scale"][0] for n in ir.load(str(tmp_path / f)).nodes
                   if n.op == "quantize") for f in ("q2.npz", "q3.npz"))
    lo, hi = float(stack[:4].min()), float(stack[:4].max())
    assert np.isclose(s2, (max(hi, 0) - min(lo, 0)) / 255, rtol=1e-6)
    assert np.isclose(s3, 10 * s2, rtol=1e-5)


def test_usage_and_data_errors(tmp_path):
    one_line_error(lamina("quantize", TINY, "--random", "2", "-o", "q.txt", cwd=tmp_path),
                   "-o q.txt", ".npz", ".onnx")
    np.save(tmp_path / "bad.npy", np.zeros((3, 4), np.float32))
    one_line_error(lamina("quantize", TINY, "--calibration", "bad.npy", "-o", "q.npz",
                          cwd=tmp_path), "--calibration bad.npy", "does not fit input")
    one_line_error(lamina("quantize", TINY, "--calibration", "missing.npz", "-o", "q.npz",
                          cwd=tmp_path), "--calibration missing.npz")
    r = lamina("quantize", TINY, "-o", "q.npz", cwd=tmp_path)
    assert r.returncode == 2 and "--calibration" in r.stderr and "--random" in r.stderr
    assert not (tmp_path / "q.npz").exists()


def test_help_names_the_verb(capsys):
    with pytest.raises(SystemExit) as e:
        main(["quantize", "--help"])
    assert e.value.code == 0 and "usage: lamina quantize" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "lamina quantize MODEL --calibration" in capsys.readouterr().out


def test_calibration_progress_bar(monkeypatch):
    g, x = build()
    batches = [x, x * 2, x * 3]
    for progress, shown in ((True, True), (False, False), (None, False)):
        err = io.StringIO()  # not a terminal: None stays quiet
        monkeypatch.setattr("sys.stderr", err)
        compiler.quantize(g, batches, progress=progress)
        assert ("calibrating" in err.getvalue()) == shown
        if shown:
            assert "/3" in err.getvalue() and err.getvalue().endswith("\r")
    with pytest.raises(compiler.OptionTypeError, match="progress"):
        compiler.quantize(g, batches, progress="yes")
