"""examples/train_digits.py, shortened to two epochs (needs scikit-learn for the data)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "train_digits.py"


def test_train_digits_learns_in_two_epochs(capsys):
    pytest.importorskip("sklearn", reason="the digits example reads scikit-learn's dataset")
    spec = importlib.util.spec_from_file_location("train_digits", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with module.small_matrix_blas():
        accuracy = module.main(["--epochs", "2"])
    assert accuracy > 0.9
    out = capsys.readouterr().out
    assert "epoch  2" in out and "fused_conv2d" in out and "batch_norm" not in out
