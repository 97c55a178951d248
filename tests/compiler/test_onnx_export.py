"""ONNX export: every registered operator's cases, traced models and optimised (fused) graphs
written with save_onnx and run in onnxruntime, against the reference interpreter."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import compiler  # noqa: E402
import ir  # noqa: E402
import passes  # noqa: E402
from backends.reference import run  # noqa: E402
from compiler import OnnxExportError, load_onnx, nn, save_onnx  # noqa: E402
from compiler import functional as F  # noqa: E402
from compiler.frontends.onnx.emitter import EXPORTERS  # noqa: E402
from ir.ops import registry  # noqa: E402
from tests.ir.cases import CASES  # noqa: E402

from .onnx_util import compare, ort_run  # noqa: E402


def ort_of(graph: ir.Graph, args, **kw) -> list[np.ndarray]:
    m = save_onnx(graph, **kw)
    return ort_run(m, {v.name: a for v, a in zip(graph.inputs, args)})


def _opset(c) -> int:
    if c.op == "round_to_format":  # ONNX's Cast has float8 from opset 19, int4 from 21
        return 21
    return 19 if c.op in ("avg_pool2d", "avg_pool3d") \
        and any(d != 1 for d in c.attrs.get("dilation", ())) else 18


@pytest.mark.parametrize("c", CASES, ids=lambda c: c.id)
def test_registry_case_exports(c):
    g = c.graph()
    if c.opset > 21:  # its ONNX operator is newer than any opset the exporter writes
        with pytest.raises(OnnxExportError, match=f"from opset {c.opset}"):
            save_onnx(g, opset=21)
        return
    compare(ort_of(g, c.inputs, opset=_opset(c)), run(g, *c.inputs), max(c.rtol, 1e-5),
            max(c.atol, 1e-5), c.id)


def test_every_registered_operator_has_an_exporter():
    missing = sorted(set(registry.names()) - set(EXPORTERS))
    assert not missing, f"operators without an ONNX exporter: {missing}"
    untranslated = {op: sorted(set(registry.get(op).attrs) - set(EXPORTERS[op][1]))
                    for op in registry.names()}
    assert not any(untranslated.values()), \
        f"attributes the ONNX exporters do not translate: {untranslated}"


# ---- traced models -------------------------------------------------------------------------
class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, groups=2)
        self.conv3 = nn.Conv2d(16, 16, 1)
        self.drop, self.fc = nn.Dropout(0.3), nn.Linear(16, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        y = F.leaky_relu(self.conv2(x), 0.1)
        y = F.relu(self.conv3(y) + y)  # a residual: fused_conv2d(..., residual) at O2
        y = F.avg_pool2d(y, 2, ceil_mode=True)
        y = F.adaptive_avg_pool2d(y).flatten(1)
        return F.log_softmax(self.fc(self.drop(y)), -1)


class Encoder(nn.Module):
    """A transformer-ish block: embedding, attention with heads, layer norms, GELU MLP."""

    def __init__(self, vocab=50, d=16, heads=2):
        super().__init__()
        self.heads, self.emb = heads, nn.Embedding(vocab, d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.fc1, self.fc2 = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, ids):
        x = self.emb(ids)
        b, t, d = x.shape
        h = self.heads
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, v = (z.reshape(b, t, h, d // h).permute(0, 2, 1, 3) for z in (q, v))
        k = k.reshape(b, t, h, d // h).permute(0, 2, 3, 1)
        att = (q @ k * (1 / np.sqrt(d // h))).softmax(-1)
        x = x + self.proj((att @ v).permute(0, 2, 1, 3).reshape(b, t, d))
        x = x + self.fc2(F.gelu(self.fc1(self.ln2(x))))
        return x[:, -1, :].tanh(), x.mean(1)


MODELS = {
    "cnn": (SmallCNN, lambda rng: rng.standard_normal((2, 3, 16, 16)).astype(np.float32)),
    "encoder": (Encoder, lambda rng: rng.integers(0, 50, (2, 7))),
}


@pytest.mark.parametrize("name", MODELS)
def test_traced_model_round_trip(name, rng, tmp_path):
    build, data = MODELS[name]
    model, x = build(), data(rng)
    model.eval()
    path = tmp_path / f"{name}.onnx"
    save_onnx(model, path, example_inputs=(x,))
    graph = compiler.trace(model, x)
    expected = run(graph, x)
    compare(ort_run(onnx.load(path), {graph.inputs[0].name: x}), expected, 1e-5, 1e-5)
    compare(run(load_onnx(path), x), expected, 1e-5, 1e-5)  # and back into Lamina


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("level", [2, 3])
def test_optimised_graph_exports(name, level, rng):
    """After the O2/O3 pipelines: fused_conv2d, fused_linear and fused_elementwise nodes."""
    build, data = MODELS[name]
    model, x = build(), data(rng)
    model.eval()
    graph = passes.optimize(compiler.trace(model, x), opt_level=level)
    compare(ort_of(graph, [x]), run(graph, x), 1e-5, 1e-5)


def test_fused_operators_are_exported(rng):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
    conv, fc = nn.Conv2d(3, 4, 3, padding=1), nn.Linear(8, 5)

    def net(t):
        y = F.relu(conv(t)).reshape(2, 4, 64)[:, :, :8]
        y = F.gelu(fc(y))
        return (y * 2 + 1).tanh() * y - y.exp()

    graph = passes.optimize(compiler.trace(net, x), opt_level=3)
    fused = {n.op for n in graph.nodes}
    assert {"fused_conv2d", "fused_linear", "fused_elementwise"} <= fused
    ops = {n.op_type for n in save_onnx(graph).graph.node}
    assert {"Conv", "Gemm", "MatMul"} & ops and not any(op.startswith("fused") for op in ops)
    compare(ort_of(graph, [x]), run(graph, x), 1e-5, 1e-5)


def test_gelu_uses_the_operator_from_opset_20(rng):
    x = rng.standard_normal((3, 4)).astype(np.float32)
    g = compiler.trace(lambda t: F.gelu(t), x)
    assert [n.op_type for n in save_onnx(g, opset=20).graph.node] == ["Gelu"]
    assert "Erf" in {n.op_type for n in save_onnx(g).graph.node}
    compare(ort_of(g, [x], opset=20), run(g, x), 1e-5, 1e-6)


# ---- refusals ------------------------------------------------------------------------------
def _fake_op(monkeypatch):
    fake = registry.OpDef(name="fake_op", infer=lambda x, **_: x, compute=lambda x, **_: x,
                          attrs={"k": registry.Attr("int", 0)})
    monkeypatch.setitem(registry.OPERATORS, "fake_op", fake)


def test_operator_without_exporter_is_refused(monkeypatch):
    _fake_op(monkeypatch)
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2,)))
    g.outputs = [g.call("relu", g.call("fake_op", x, name="odd"), name="r")]
    with pytest.raises(OnnxExportError, match=r"%odd \(fake_op\): no ONNX exporter"):
        save_onnx(g)


def test_untranslated_attribute_is_refused(monkeypatch):
    _fake_op(monkeypatch)
    monkeypatch.setitem(EXPORTERS, "fake_op", (lambda ex, node: None, ()))
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2,)))
    g.outputs = [g.call("fake_op", x, name="odd", k=3)]
    with pytest.raises(OnnxExportError, match=r"attribute k=3 has no ONNX translation"):
        save_onnx(g)


def test_dilated_average_pool_needs_opset_19():
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((1, 1, 6, 6)))
    g.outputs = [g.call("avg_pool2d", x, kernel=(2, 2), dilation=(2, 2))]
    with pytest.raises(OnnxExportError, match="opset 19"):
        save_onnx(g)
    save_onnx(g, opset=19)


def test_training_dropout_and_missing_inputs_are_refused(rng):
    g = compiler.trace(lambda t: F.dropout(t, 0.5, training=True), np.ones((2, 3), np.float32))
    with pytest.raises(OnnxExportError, match="training mode"):
        save_onnx(g)
    with pytest.raises(OnnxExportError, match="example_inputs"):
        save_onnx(SmallCNN(), None)
    with pytest.raises(OnnxExportError, match="opset 9"):
        save_onnx(g, opset=9)


def test_outputs_that_are_inputs_or_weights(tmp_path):
    g = ir.Graph()
    x = g.add_input("x", ir.TensorType((2,)))
    w = g.add_weight("w", np.float32([1, 2]))
    g.outputs = [x, w, g.call("add", x, w, name="s"), x]
    args = [np.float32([3, 4])]
    compare(ort_of(g, args), run(g, *args))
