"""examples/serve.py, shortened: every client gets the MLP's output for its own input
(checked against numpy written here), and requests really share calls."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "serve.py"


@pytest.fixture(scope="module")
def serve():
    spec = importlib.util.spec_from_file_location("serve_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def numpy_mlp(model, x: np.ndarray) -> np.ndarray:
    w = {k: v.astype(np.float64) for k, v in model.state_dict().items()}
    h = np.maximum(x @ w["0.weight"].T + w["0.bias"], 0)
    h = np.maximum(h @ w["2.weight"].T + w["2.bias"], 0)
    return h @ w["4.weight"].T + w["4.bias"]


def test_every_client_gets_its_own_answer(serve, capsys):
    out = serve.main(["--clients", "6", "--requests", "10", "--batch", "4"])
    for answers in (out["unbatched"], out["results"]):
        for xs, ys in zip(out["inputs"], answers, strict=True):
            assert len(ys) == len(xs)
            np.testing.assert_allclose(np.stack(ys), numpy_mlp(out["model"], xs),
                                       rtol=1e-4, atol=1e-4)
    printed = capsys.readouterr().out
    assert "one request per call" in printed and "up to 4 requests per call" in printed


def test_waiting_requests_share_a_call(serve):
    """The server stacks waiting requests: some calls of the batch build, none larger than
    the batch, every request answered once."""
    model = serve.build_model()
    shapes = {"one": [], "batched": []}  # (an assert in the server thread would hang it)

    def counted(name):
        def call(xs):
            shapes[name].append(xs.shape)
            return numpy_mlp(model, xs)
        return call

    rng = np.random.default_rng(1)
    inputs = [rng.standard_normal((20, serve.FEATURES)).astype(np.float32) for _ in range(8)]
    _, results = serve.run(counted("one"), counted("batched"), 4, inputs)
    assert [len(r) for r in results] == [20] * 8
    for xs, ys in zip(inputs, results):
        np.testing.assert_allclose(np.stack(ys), numpy_mlp(model, xs), rtol=1e-12)
    assert set(shapes["one"]) <= {(1, serve.FEATURES)}
    assert set(shapes["batched"]) == {(4, serve.FEATURES)}  # padded to the batch
    assert len(shapes["one"]) + 4 * len(shapes["batched"]) >= 160
