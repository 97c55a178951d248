"""nn.LSTM / nn.GRU through the torch front end: kept whole (not unrolled by Core ATen's
decomposition) and imported as one registry lstm/gru per layer, checked against eager
torch through from_torch/compile and through torch.compile(backend="lamina")."""

import warnings

import numpy as np
import pytest

import compiler

torch = pytest.importorskip("torch")

CONFIGS = [(True, True, 2), (False, False, 1), (True, False, 3), (False, True, 1)]


class Net(torch.nn.Module):
    def __init__(self, kind, batch_first, bidirectional, layers):
        super().__init__()
        cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        self.rnn = cls(6, 10, num_layers=layers, batch_first=batch_first,
                       bidirectional=bidirectional, bias=layers != 3)
        self.kind = kind

    def forward(self, x, h0):
        if self.kind == "lstm":
            y, (h, c) = self.rnn(x, (h0, torch.tanh(h0)))
            return y, h, c
        return self.rnn(x, h0)


def _case(kind, batch_first, bidirectional, layers):
    torch.manual_seed(0)
    net = Net(kind, batch_first, bidirectional, layers).eval()
    x = torch.randn(3, 7, 6) if batch_first else torch.randn(7, 3, 6)
    h0 = torch.randn(layers * (2 if bidirectional else 1), 3, 10)
    with torch.no_grad():
        want = [t.numpy() for t in net(x, h0)]
    return net, (x, h0), want


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: f"bf{int(c[0])}-bi{int(c[1])}-L{c[2]}")
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_layers_import_whole_and_match_eager(kind, config):
    net, inputs, want = _case(kind, *config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        graph = compiler.from_torch(net, *inputs)
        fn = compiler.compile(net, *inputs)
    assert [n.op for n in graph.nodes].count(kind) == config[2]  # one per layer, not unrolled
    got = fn(*[t.numpy() for t in inputs])
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_recurrent_layers_through_torch_compile(kind):
    torch._dynamo.config.allow_rnn = True  # else dynamo hands nn.LSTM/GRU to no backend
    net, inputs, want = _case(kind, True, True, 2)
    torch._dynamo.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fast = torch.compile(net, backend="lamina")
        with torch.no_grad():
            got = [t.numpy() for t in fast(*inputs)]
    for g, w in zip(got, want, strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)
