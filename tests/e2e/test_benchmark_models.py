"""The benchmark's models end to end: each compiles at O3 for the LLVM backend and matches
the unoptimised reference interpreter; their PyTorch twins (same code, same weights) agree."""

import numpy as np
import pytest

import compiler
from benchmarks.models import MODELS, build, torch_twin


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_compiles_natively_and_matches_the_reference(name):
    model, x = build(name, 2)
    fn = compiler.compile(model, x, opt_level=3, backend="llvm", num_threads=2)
    ref = compiler.compile(model, x, opt_level=0, backend="reference")(x)
    y = fn(x)
    assert not {"batch_norm", "dropout"} & {n.op for n in fn.graph.nodes}
    np.testing.assert_allclose(y / np.abs(ref).max(), ref / np.abs(ref).max(), atol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_torch_twin_agrees(name):
    torch = pytest.importorskip("torch")
    model, x = build(name, 2)
    with torch.inference_mode():
        expected = torch_twin(name, model)(torch.as_tensor(x)).numpy()
    actual = compiler.compile(model, x, opt_level=0, backend="reference")(x)
    np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
