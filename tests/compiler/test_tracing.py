"""Tracing: what forward() code becomes in the IR, and the errors it reports."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import compiler
import ir
from compiler import functional as F
from compiler import nn
from tests.conftest import assert_close


def run(fn, *inputs):
    """Trace any callable on `inputs` and run its graph in the reference interpreter."""
    return compiler.compile(compiler.trace(fn, *inputs), opt_level=0)(*inputs)


class Block(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.fc = nn.Linear(n, n)
        self.norm = nn.LayerNorm(n)

    def forward(self, x):
        return self.norm(x + F.relu(self.fc(x)))  # a residual connection


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(6, 8)
        self.blocks = nn.ModuleList([Block(8), Block(8)])
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        h = self.stem(x)
        skip = h
        for b in self.blocks:
            h = b(h)
        return self.head(F.cat([h, skip], dim=-1))


# ---- shape errors at trace time -----------------------------------------------------------
def test_linear_shape_mismatch_names_layer_and_shapes():
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(6, 2))

        def forward(self, x):
            return self.encoder(x)

    with pytest.raises(ir.ShapeError) as e:
        compiler.trace(Bad(), np.zeros((3, 4), np.float32))
    msg = str(e.value)
    assert "'encoder.2'" in msg and "Linear" in msg
    assert "f32[3,5]" in msg and "f32[2,6]" in msg  # the input's shape and the weight's


@pytest.mark.parametrize(("layer", "x", "words"), [
    (nn.Conv2d(3, 4, 3), np.zeros((1, 2, 5, 5), np.float32), ["input has 2 channels"]),
    (nn.BatchNorm2d(3), np.zeros((2, 3, 4), np.float32), ["rank 4", "[2, 3, 4]"]),
    (nn.LayerNorm(5), np.zeros((2, 4), np.float32), ["[5]", "[2, 4]"]),
    (nn.LSTM(4, 3), np.zeros((5, 2, 3), np.float32), ["I=4", "[5, 2, 3]"]),
    (nn.MultiheadAttention(8, 2), np.zeros((3, 2, 6), np.float32), ["E=8", "[3, 2, 6]"]),
])
def test_layer_errors_are_lamina_errors_naming_the_layer(layer, x, words):
    model = nn.Sequential(nn.Identity(), layer)
    args = (x, x, x) if isinstance(layer, nn.MultiheadAttention) else (x,)

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = model

        def forward(self, *xs):
            return self.body[1](*xs)

    with pytest.raises(ir.LaminaError) as e:
        compiler.trace(Wrap(), *args)
    msg = str(e.value)
    assert f"'body.1' ({type(layer).__name__})" in msg, msg
    for w in words:
        assert w in msg, msg


def test_recurrent_initial_state_shape_is_checked():
    with pytest.raises(ir.ShapeError, match=r"'gru' \(GRU\): h0 must be \[2, 3, 4\]"):
        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.gru = nn.GRU(2, 4, num_layers=2)

            def forward(self, x, h):
                return self.gru(x, h)[0]

        compiler.trace(M(), np.zeros((5, 3, 2), np.float32), np.zeros((1, 3, 4), np.float32))


def test_data_dependent_control_flow_is_refused():
    def f(x):
        return x if x.sum() else -x

    with pytest.raises(compiler.TraceError, match="truth value"):
        compiler.trace(f, np.zeros(3, np.float32))


def test_outputs_must_be_tensors():
    with pytest.raises(compiler.TraceError, match=r"output\[1\]\[0\] is float"):
        compiler.trace(lambda x: (x + 1, (2.0,)), np.zeros(3, np.float32))
    with pytest.raises(compiler.TraceError, match="no traced tensor"):
        compiler.trace(lambda x: None, np.zeros(3, np.float32))


def test_none_outputs_are_left_out_of_the_graph_and_kept_in_eager_calls():
    mha = nn.MultiheadAttention(4, 2)

    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.attn = mha

        def forward(self, x):
            return self.attn(x, x, x, need_weights=False)

    x = np.ones((3, 1, 4), np.float32)
    g = compiler.trace(M(), x)
    assert [v.shape for v in g.outputs] == [(3, 1, 4)]
    out, weights = M()(x)
    assert out.shape == (3, 1, 4) and weights is None


# ---- what the IR looks like ---------------------------------------------------------------
def test_node_names_follow_module_paths():
    g = compiler.trace(Net().eval(), np.zeros((2, 6), np.float32))
    names = [n.name for n in g.nodes]
    assert names[0] == "stem"
    for p in ("blocks.0.fc", "blocks.0.norm", "blocks.1.fc", "blocks.1.norm", "head"):
        assert p in names
    # functional code inside a layer is named by that layer
    assert {n.op for n in g.nodes if n.name.startswith("blocks.0")} == {
        "linear", "relu", "add", "layer_norm"}
    # and code at the top of forward() by its operator
    assert [n.op for n in g.nodes if n.name.startswith("concat")] == ["concat"]


def test_weights_are_named_by_state_dict_keys():
    model = Net()
    g = compiler.trace(model, np.zeros((2, 6), np.float32))
    assert list(g.params) == ["stem.weight", "stem.bias", "blocks.0.fc.weight",
                              "blocks.0.fc.bias", "blocks.0.norm.weight", "blocks.0.norm.bias",
                              "blocks.1.fc.weight", "blocks.1.fc.bias", "blocks.1.norm.weight",
                              "blocks.1.norm.bias", "head.weight", "head.bias"]
    assert set(g.params) == set(model.state_dict())
    # a weight used twice is one graph weight
    shared = nn.Linear(3, 3)
    g = compiler.trace(lambda x: shared(shared(x)), np.zeros((1, 3), np.float32))
    assert len(g.params) == 2
    # arrays that are not parameters become anonymous weights
    table = np.arange(6, dtype=np.float32)
    g = compiler.trace(lambda x: x * table, np.ones(6, np.float32))
    assert list(g.params) == ["const"]


def test_unused_weights_and_dead_nodes_are_dropped():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4)
            self.unused = nn.Linear(2, 2)

        def forward(self, x):
            _, (h, _) = self.lstm(x)
            x * 2.0  # computed, never used
            return h

    g = compiler.trace(M(), np.zeros((5, 1, 3), np.float32))
    assert "unused.weight" not in g.params
    assert not any(n.op == "concat" for n in g.nodes)  # the unused output sequence
    assert all(n.users or n.outputs[0] in g.outputs for n in g.nodes)
    assert not any(n.op == "constant" and n.attrs["value"] == 2.0 for n in g.nodes)


def test_scalars_become_constant_nodes():
    def f(x):
        return 2.0 - x * 3 + np.float32(0.5) / x

    x = np.array([1.0, 2.0, 4.0], np.float32)
    g = compiler.trace(f, x)
    consts = [n for n in g.nodes if n.op == "constant"]
    assert sorted(n.attrs["value"] for n in consts) == [0.5, 2.0, 3.0]
    assert all(n.outputs[0].type == ir.TensorType((), "f32") for n in consts)
    assert not g.params
    assert_close(compiler.compile(g, opt_level=0)(x), f(x))
    # integer tensors get integer constants
    g = compiler.trace(lambda i: i + 1, np.arange(3))
    (c,) = [n for n in g.nodes if n.op == "constant"]
    assert c.outputs[0].type.dtype == "i64"


def test_scalars_promote_as_torch_promotes():
    """A bool scalar counts as 1 (torch's rule); a float scalar makes an integer tensor's
    result float32, an int scalar keeps it integer; true division is float."""
    x = np.array([0.5, -2.0], np.float32)
    i = np.array([3, -4], np.int64)
    got = run(lambda x, i: (x + True, i * 0.5, i + 2, i / 2, (i > 0) + 1), x, i)
    want = (x + 1, (i * 0.5).astype(np.float32), i + 2, (i / 2).astype(np.float32),
            (i > 0).astype(np.int64) + 1)
    for g, w in zip(got, want, strict=True):
        assert g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def test_nested_outputs_are_flattened_in_order():
    lstm = nn.LSTM(3, 4)
    x = np.zeros((2, 1, 3), np.float32)
    g = compiler.trace(lstm, x)
    assert [v.shape for v in g.outputs] == [(2, 1, 4), (1, 1, 4), (1, 1, 4)]
    out, (h, c) = lstm(x)  # eager calls keep forward()'s nesting
    assert out.shape == (2, 1, 4) and h.shape == c.shape == (1, 1, 4)


def _nested(x):
    return x * 2, [x.sum(), (x + 1, None)], x.min(0), (x.max(1).values,)


def _nested_numpy(x):
    from compiler.frontends.tensor_methods import ValuesIndices

    return x * 2, [x.sum(), (x + 1, None)], ValuesIndices(x.min(0), x.argmin(0)), (x.max(1),)


def _assert_same_nesting(got, want, what="output"):
    if isinstance(want, (tuple, list)) or want is None:
        assert type(got) is type(want), f"{what}: {type(got).__name__}, not " \
                                        f"{type(want).__name__}"
    if isinstance(want, (tuple, list)):
        assert len(got) == len(want), what
        for i, (g, w) in enumerate(zip(got, want)):
            _assert_same_nesting(g, w, f"{what}[{i}]")
    elif want is not None:
        np.testing.assert_array_equal(got, want, err_msg=what)


@pytest.mark.parametrize("backend", ["reference", "llvm"])
def test_the_output_structure_is_recorded_and_restored(backend):
    """trace() keeps the nesting on the graph; restructure() gives it back to a compiled
    callable: tuples, lists, None and torch's (values, indices) named tuples."""
    from compiler.frontends.tracing import output_structure, restructure

    x = np.arange(12, dtype=np.float32).reshape(3, 4) % 5
    g = compiler.to_graph(_nested, x)
    structure = output_structure(g)
    assert len(g.outputs) == 6
    fn = restructure(compiler.compile(g, x, backend=backend), structure)
    got = fn(x)
    want = _nested_numpy(x)
    assert got[2].values.shape == (4,) and got[2].indices.dtype == np.int64
    _assert_same_nesting(got, want)
    assert fn.graph.outputs and "compiled" in repr(fn)  # the wrapped callable's attributes


def test_flat_results_need_no_wrapper():
    from compiler.frontends.tracing import output_structure, restructure

    x = np.ones(3, np.float32)
    for f in (lambda x: x + 1, lambda x: (x + 1, x * 2)):
        g = compiler.to_graph(f, x)
        fn = compiler.compile(g, x, backend="reference")
        assert restructure(fn, output_structure(g)) is fn
    g = compiler.to_graph(lambda x: (x + 1,), x)  # a 1-tuple stays a tuple
    assert restructure(compiler.compile(g, x), output_structure(g))(x)[0].shape == (3,)


def test_compile_keeps_nested_outputs():
    x = np.arange(12, dtype=np.float32).reshape(3, 4)
    got = compiler.compile(_nested, x)(x)
    _assert_same_nesting(got, _nested_numpy(x))


def test_example_input_names_become_graph_input_names():
    g = compiler.trace(nn.MultiheadAttention(4, 1), *[np.zeros((2, 1, 4), np.float32)] * 3)
    assert [v.name for v in g.inputs] == ["query", "key", "value"]


# ---- functional code ----------------------------------------------------------------------
def test_residual_concat_reshape_model_matches_numpy(rng):
    model = Net().eval()
    x = rng.standard_normal((2, 6)).astype(np.float32)
    sd = model.state_dict()

    def ln(v, p):
        v = (v - v.mean(-1, keepdims=True)) / np.sqrt(v.var(-1, keepdims=True) + 1e-5)
        return v * sd[p + ".weight"] + sd[p + ".bias"]

    h = x @ sd["stem.weight"].T + sd["stem.bias"]
    skip = h
    for i in range(2):
        p = f"blocks.{i}"
        h = ln(h + np.maximum(h @ sd[p + ".fc.weight"].T + sd[p + ".fc.bias"], 0), p + ".norm")
    expected = np.concatenate([h, skip], -1) @ sd["head.weight"].T + sd["head.bias"]
    assert_close(run(model, x), expected, rtol=1e-5, atol=1e-5)


def test_tensor_methods_match_numpy(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    cases = {
        "reshape": (lambda t: t.reshape(4, -1), lambda a: a.reshape(4, -1)),
        "view_tuple": (lambda t: t.view((6, 4)), lambda a: a.reshape(6, 4)),
        "flatten": (lambda t: t.flatten(1), lambda a: a.reshape(2, 12)),
        "permute": (lambda t: t.permute(2, 0, 1), lambda a: a.transpose(2, 0, 1)),
        "transpose": (lambda t: t.transpose(-1, 0), lambda a: a.swapaxes(-1, 0)),
        "T": (lambda t: t.T, lambda a: a.T),
        "unsqueeze": (lambda t: t.unsqueeze(-1), lambda a: a[..., None]),
        "squeeze": (lambda t: t[:1].squeeze(0), lambda a: a[0]),
        "squeeze_all": (lambda t: t[:1, :, 2:3].squeeze(), lambda a: a[0, :, 2]),
        "chunk": (lambda t: F.cat(t.chunk(2, -1)[::-1], -1),
                  lambda a: np.concatenate([a[..., 2:], a[..., :2]], -1)),
        "split": (lambda t: t.split([1, 2], 1)[1], lambda a: a[:, 1:]),
        "stack": (lambda t: F.stack([t, t * 2], 1), lambda a: np.stack([a, a * 2], 1)),
        "sum": (lambda t: t.sum(1), lambda a: a.sum(1)),
        "mean_keep": (lambda t: t.mean((0, 2), keepdim=True), lambda a: a.mean((0, 2), None,
                                                                                None, True)),
        "amax": (lambda t: t.amax(-1), lambda a: a.max(-1)),
        "softmax": (lambda t: t.softmax(1), lambda a: np.exp(a) / np.exp(a).sum(1, keepdims=True)),
        "matmul": (lambda t: t @ t.transpose(1, 2), lambda a: a @ a.swapaxes(1, 2)),
        "rmatmul": (lambda t: np.ones((3, 3), np.float32) @ t[0],
                    lambda a: np.ones((3, 3), np.float32) @ a[0]),
        "pow_neg_abs": (lambda t: -(t ** 2) + abs(t), lambda a: -(a ** 2) + abs(a)),
        "rdiv": (lambda t: 1.0 / (t.abs() + 1), lambda a: 1.0 / (np.abs(a) + 1)),
        "pad": (lambda t: F.pad(t, (1, 2)), lambda a: np.pad(a, ((0, 0), (0, 0), (1, 2)))),
        "pow_method": (lambda t: t.pow(3.0), lambda a: a ** 3),
        "clamp": (lambda t: t.clamp(min=-0.5).clamp(max=0.25), lambda a: a.clip(-0.5, 0.25)),
        "contiguous": (lambda t: t.transpose(0, 1).contiguous(), lambda a: a.swapaxes(0, 1)),
        "size": (lambda t: t.view(t.size(0), -1), lambda a: a.reshape(2, -1)),
    }
    for name, (traced, expected) in cases.items():
        assert_close(run(traced, x), expected(x), rtol=1e-5, atol=1e-6, what=name)


# ---- indexing -----------------------------------------------------------------------------
X = np.arange(2 * 3 * 5 * 4, dtype=np.float32).reshape(2, 3, 5, 4)


@pytest.mark.parametrize("index", [
    0, -1, (1, 2), (slice(None), 1), (Ellipsis, -1), (Ellipsis, 1, slice(None, None, -1)),
    slice(None, None, -1), (slice(None), slice(None), slice(4, 0, -2)),
    (slice(None), slice(None), slice(None, None, -3)), (0, None, slice(1, 3)),
    (None, Ellipsis, None), (slice(-2, None), 0, slice(None), slice(1, -1)),
    (slice(None), slice(5, 1)), (1, -1, -1, -1), (Ellipsis,), (slice(None, None, 2), None),
    (slice(-100, 100, 1), slice(10, -10, -1)),
    # one integer array (or list): a gather; numpy and torch agree when it is the only
    # index beside slices, or sits right after the ints
    [0, 1, 1], (slice(None), [2, -1]), (np.array([[1, 0]]), Ellipsis), (0, np.array(2)),
    (1, -1, np.array([[3, 0], [1, 1]])),
], ids=repr)
def test_indexing_matches_numpy(index):
    assert_close(run(lambda t: t[index], X), X[index], rtol=0, atol=0)


@settings(max_examples=60, deadline=None)
@given(index=hnp.basic_indices(X.shape, min_dims=0, allow_newaxis=True, allow_ellipsis=True))
def test_indexing_matches_numpy_for_any_basic_index(index):
    got = run(lambda t: t[index] + 0.0, X)
    np.testing.assert_array_equal(got, X[index])


@settings(max_examples=30, deadline=None)
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3, max_side=4), data=st.data())
def test_indexing_any_shape(shape, data):
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    index = data.draw(hnp.basic_indices(shape, allow_newaxis=True))
    np.testing.assert_array_equal(run(lambda t: t[index] * 1.0, x), x[index])


@pytest.mark.parametrize(("index", "match"), [
    (5, "out of range"), ((0, 0, 0, 0, 0), "too many indices"), ((Ellipsis, Ellipsis), "one"),
    (True, "unsupported index"), (np.array([0.5]), "integers"),
    ((np.array([0]), np.array([99])), "out of range"),
])
def test_bad_indices_raise(index, match):
    with pytest.raises(compiler.TraceError, match=match):
        compiler.trace(lambda t: t[index], X[0])


class _Untraceable(nn.Module):
    def __init__(self, how):
        super().__init__()
        self.how = how

    def forward(self, x):
        if self.how == "if":
            return x if x.sum() > 0 else -x
        if self.how == "numpy":
            return np.exp(x)
        if self.how == "float":
            return x * float(x[0, 0])
        return x * x[0, 0].item()


@pytest.mark.parametrize("how, says", [("if", "no truth value"), ("numpy", "numpy was handed"),
                                       ("float", "float()"), ("item", ".item()")])
def test_untraceable_code_is_named_by_file_and_line(how, says):
    x = np.ones((2, 3), np.float32)
    with pytest.raises(compiler.TraceError) as info:
        compiler.trace(_Untraceable(how), x)
    message = str(info.value)
    assert says in message and "test_tracing.py:" in message, message


def test_arrays_on_the_left_of_an_operator_still_trace():
    x = np.ones((2, 3), np.float32)
    g = compiler.trace(lambda t: np.full((2, 3), 2, np.float32) * t + 1, x)
    ops = [n.op for n in g.nodes]
    assert "mul" in ops and ops[-1] == "add"
    want = np.full((2, 3), 2, np.float32) * x + 1
    np.testing.assert_array_equal(compiler.compile(g, x, backend="reference")(x), want)
