"""Issue 19's further layers and losses against torch.nn, with torch's weights loaded through
load_state_dict: the forward pass on ordinary inputs, inputs with a large common offset,
extreme values and a batch of one, then five training steps where the layer has parameters
(and, for the losses, five steps of a linear model trained under each loss)."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import pytest

import compiler
from compiler import nn, optim
from ir import LaminaError, ShapeError
from tests.conftest import assert_close
from tests.training.parity import paired, train_alongside

torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel"),
    pytest.mark.filterwarnings("ignore:reduction. 'mean' divides the total loss"),
]


@dataclass
class L:
    """`name(*args, **kwargs)` on both sides, called on float32 inputs of `shapes`."""

    name: str
    args: tuple
    shapes: list
    kwargs: dict = field(default_factory=dict)
    id: str = ""
    tol: float = 1e-5
    mode: str = "eval"


LAYERS = [
    L("GroupNorm", (2, 6), [(3, 6, 4, 5)]),
    L("GroupNorm", (3, 6), [(2, 6, 7)], {"eps": 1e-3, "affine": False}, id="1d_no_affine"),
    L("GroupNorm", (1, 4), [(2, 4)], id="one_group_2d"),
    L("InstanceNorm1d", (4,), [(3, 4, 9)]),
    L("InstanceNorm1d", (4,), [(4, 9)], {"affine": True}, id="unbatched_affine"),
    L("InstanceNorm2d", (3,), [(2, 3, 5, 6)], {"affine": True}, id="affine"),
    L("InstanceNorm2d", (3,), [(2, 3, 5, 6)], {"track_running_stats": True}, id="tracked_eval"),
    L("InstanceNorm2d", (3,), [(2, 3, 5, 6)], {"track_running_stats": True}, mode="train",
      id="tracked_train"),
    L("Conv1d", (3, 4, 3), [(2, 3, 11)]),
    L("Conv1d", (4, 6, 3), [(2, 4, 13)], {"stride": 2, "padding": 2, "dilation": 2,
                                          "groups": 2}, id="groups_stride_dilation"),
    L("Conv1d", (2, 3, 4), [(2, 2, 9)], {"padding": "same", "bias": False}, id="same_even"),
    L("Conv1d", (2, 3, 3), [(3, 2, 8)], {"padding": 2, "padding_mode": "reflect"},
      id="reflect"),
    L("Conv1d", (2, 3, 3, 1, 1), [(2, 7)], {"padding_mode": "replicate"},
      id="unbatched_replicate"),
    L("PReLU", (), [(3, 4)]),
    L("PReLU", (4, 0.1), [(2, 4, 5)], id="per_channel"),
    L("RMSNorm", (6,), [(2, 3, 6)]),
    L("RMSNorm", ((3, 6),), [(2, 3, 6)], {"eps": 1e-6, "elementwise_affine": False},
      id="2d_no_affine"),
    L("LocalResponseNorm", (3,), [(2, 5, 4, 4)]),
    L("LocalResponseNorm", (4, 1e-2, 0.5, 2.0), [(2, 6, 7)], id="even_size_3d"),
    L("PixelShuffle", (2,), [(2, 8, 3, 4)]),
    L("PixelUnshuffle", (3,), [(2, 2, 6, 9)]),
    L("Upsample", (), [(2, 3, 4, 5)], {"scale_factor": 2}, id="nearest_x2"),
    L("Upsample", (), [(2, 3, 4, 5)], {"size": (7, 9)}, id="nearest_size"),
    L("Upsample", (), [(2, 3, 4, 5)], {"scale_factor": 1.5}, id="nearest_fractional"),
    L("Upsample", (), [(2, 3, 4, 5)], {"scale_factor": 2, "mode": "bilinear"},
      id="bilinear", tol=1e-4),
    L("Upsample", (), [(2, 3, 4, 5)], {"size": (7, 3), "mode": "bilinear",
                                       "align_corners": True}, id="bilinear_corners",
      tol=1e-4),
    L("Upsample", (), [(2, 3, 6)], {"scale_factor": 3, "mode": "linear"}, id="linear"),
    L("Upsample", (), [(2, 3, 5, 6)], {"scale_factor": 2, "mode": "bicubic"}, id="bicubic",
      tol=1e-4),
    L("Upsample", (), [(2, 3, 5, 6)], {"size": (9, 4), "mode": "bicubic",
                                       "align_corners": True}, id="bicubic_corners", tol=1e-4),
    L("MaxPool1d", (3,), [(2, 3, 10)]),
    L("MaxPool1d", (3, 2, 1, 2, False, True), [(2, 3, 11)], id="pad_dilation_ceil"),
    L("AvgPool1d", (3, 2, 1), [(2, 3, 10)], {"count_include_pad": False}, id="exclude_pad"),
    L("AvgPool1d", (2,), [(3, 9)], {"ceil_mode": True}, id="unbatched_ceil"),
    L("CosineSimilarity", (), [(3, 5), (3, 5)]),
    L("CosineSimilarity", (-1, 1e-6), [(2, 3, 4), (1, 3, 4)], id="broadcast_last"),
    L("Bilinear", (3, 4, 5), [(6, 3), (6, 4)]),
    L("Bilinear", (3, 4, 2), [(2, 5, 3), (2, 5, 4)], {"bias": False}, id="3d_no_bias"),
]

NORMS = ("GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "RMSNorm", "LocalResponseNorm")


def _inputs(kind: str, shapes, rng, name: str):
    if kind == "batch_of_one":
        shapes = [(1, *s[1:]) for s in shapes]
    xs = []
    for s in shapes:
        x = rng.standard_normal(s)
        if kind == "offset":  # a large common offset with a small spread
            x = 1000 + 0.01 * x if name in NORMS else 100 + 0.1 * x
        elif kind == "mild_offset":  # where torch's own float32 statistics stay accurate
            x = 50 + 0.5 * x
        elif kind == "extreme":  # tails and tiny values (non-finite ones for elementwise)
            v = [-1e4, -100, -3, -1e-6, 0, 1e-6, 3, 100, 1e4]
            if name == "PReLU":
                v += [np.inf, -np.inf, np.nan]
            x = np.resize(np.array(v), s) * np.sign(x + 0.5)
        xs.append(x.astype(np.float32))
    return xs


def _expected(tm, xs, kind: str) -> np.ndarray:
    """torch's output; on offset inputs, torch's computation in float64 on the same float32
    values (its float32 statistics of 1000 +- 0.01 are themselves off by ~1e-2)."""
    with torch.no_grad():
        if kind != "offset":
            return tm(*(torch.from_numpy(x) for x in xs)).numpy()
        wide = copy.deepcopy(tm).double()
        return wide(*(torch.from_numpy(x).double() for x in xs)).float().numpy()


def _tolerance(c: L, kind: str, expected: np.ndarray) -> tuple[float, float]:
    """Relative and absolute tolerance: float32 rounding of the values involved."""
    scale = float(np.max(np.abs(expected[np.isfinite(expected)]), initial=1.0))
    if kind == "offset" and c.name in NORMS:
        return 1e-4, 1e-4
    return c.tol, c.tol * scale if kind == "extreme" else c.tol


def _pair(name, args, kwargs, mode="eval"):
    torch.manual_seed(0)
    tm = getattr(torch.nn, name)(*args, **kwargs).train(mode == "train")
    model = getattr(nn, name)(*args, **kwargs).train(mode == "train")
    assert list(model.state_dict()) == list(tm.state_dict())
    with torch.no_grad():  # parameters and statistics away from their defaults
        for k, v in tm.state_dict().items():
            if k.endswith("running_var"):
                v.uniform_(0.5, 2)
            elif v.is_floating_point():
                v.add_(torch.randn_like(v) * 0.3)
    model.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, model


def _name(c: L) -> str:
    return f"{c.name}-{c.id or 'default'}"


KINDS = ["normal", "offset", "extreme", "batch_of_one"]


@pytest.mark.parametrize(("c", "kind"), [
    pytest.param(c, k, id=f"{_name(c)}-{k}") for c in LAYERS for k in KINDS
    if not (k == "batch_of_one" and "unbatched" in c.id)])  # no batch axis to set to 1
def test_layer_matches_torch(c: L, kind, rng):
    tm, model = _pair(c.name, c.args, c.kwargs, c.mode)
    xs = _inputs(kind, c.shapes, rng, c.name)
    expected = _expected(tm, xs, kind)
    got = compiler.compile(model, *xs, backend="reference", opt_level=0,
                           training=c.mode == "train")(*xs)
    rtol, atol = _tolerance(c, kind, expected)
    assert_close(got, expected, rtol=rtol, atol=atol, what=f"{c.name} {kind}")


LLVM = ["GroupNorm-default", "InstanceNorm2d-affine", "Conv1d-groups_stride_dilation",
        "PReLU-per_channel", "RMSNorm-default", "LocalResponseNorm-default",
        "PixelShuffle-default", "Upsample-bilinear", "Upsample-bicubic",
        "MaxPool1d-pad_dilation_ceil", "CosineSimilarity-default", "Bilinear-default"]


@pytest.mark.parametrize("case", LLVM)
def test_layer_on_llvm(case, rng):
    c = next(c for c in LAYERS if _name(c) == case)
    tm, model = _pair(c.name, c.args, c.kwargs)
    for kind in ("normal", "offset"):
        xs = _inputs(kind, c.shapes, rng, c.name)
        expected = _expected(tm, xs, kind)
        got = compiler.compile(model, *xs, backend="llvm")(*xs)
        rtol, atol = _tolerance(c, kind, expected)
        assert_close(got, expected, rtol=rtol, atol=max(atol, 1e-5), what=f"{case} {kind}")


# ---- training: five steps against torch's eager loop ---------------------------------------
def _train(tm, model, xs, y, loss=("MSELoss", {}), tol=1e-4, lr=0.1):
    name, kwargs = loss
    step = compiler.compile_training(model, getattr(nn, name)(**_loss_kwargs(kwargs, nn)),
                                     optim.SGD(lr, momentum=0.9),
                                     xs[0] if len(xs) == 1 else tuple(xs), y)
    train_alongside(step, tm, torch.optim.SGD(tm.parameters(), lr, momentum=0.9),
                    getattr(torch.nn, name)(**_loss_kwargs(kwargs, torch.nn)), xs, y, tol=tol)


# every layer: those without parameters pass the gradient to a PReLU in front of them
TRAINED = [c for c in LAYERS if not c.kwargs.get("track_running_stats")]


@pytest.mark.parametrize("c", TRAINED, ids=_name)
def test_layer_trains_like_torch(c: L, rng):
    """PReLU -> the layer -> a linear head: the layer's parameters and the gradient it passes
    back, on offset inputs for the normalisations (50 +- 0.5: large enough that a rounded
    mean would show in the gradients, small enough that torch's float32 layer is
    accurate)."""
    kind = "mild_offset" if c.name in NORMS else "normal"
    xs = _inputs(kind, c.shapes, rng, c.name)
    with torch.no_grad():
        out = getattr(torch.nn, c.name)(*c.args, **c.kwargs)(*map(torch.from_numpy, xs))
    batch, features = out.shape[0], out[0].numel()

    def build(lib):
        class Model(lib.Module):
            def __init__(self):
                super().__init__()
                self.front = lib.PReLU()
                self.layer = getattr(lib, c.name)(*c.args, **c.kwargs)
                self.head = lib.Linear(features, 2)

            def forward(self, *xs):
                y = self.layer(*(self.front(x) for x in xs))
                return self.head(y.reshape(batch, features))

        return Model()

    tm, model = paired(build, jitter=0.3)
    y = rng.standard_normal((batch, 2)).astype(np.float32)
    _train(tm, model, xs, y, lr=0.02)


# ---- losses --------------------------------------------------------------------------------
def _log_softmax(x):
    x = x.astype(np.float64)
    s = x - x.max(1, keepdims=True)
    return (s - np.log(np.exp(s).sum(1, keepdims=True))).astype(np.float32)


def _scores(kind, shape, rng):
    """Logits (or regression outputs) of `shape`, as the input kind asks."""
    x = rng.standard_normal(shape) * 2
    if kind == "offset":
        x = x * 0.05 + 100
    elif kind == "extreme":
        x = np.resize(np.array([-1e4, -100, -20, -1e-6, 0, 1e-6, 20, 100, 1e4]), shape) * \
            np.sign(x + 0.3)
    return x.astype(np.float32)


def _classes(shape, c, rng, ignore=None):
    t = rng.integers(0, c, shape).astype(np.int64)
    if ignore is not None:
        t.flat[::3] = ignore  # every third target is ignored
    return t


def _probs(shape, rng, zeros=False):
    p = rng.random(shape)
    if zeros:
        p[..., ::2] = 0  # exact zeros: KL's 0 log 0 = 0
    return (p / p.sum(1, keepdims=True)).astype(np.float32)


def _case(family, kind, rng, n=4, c=5, spatial=(), ignore=-100):
    """(prediction, target) for a loss family on one input kind."""
    n = 1 if kind == "batch_of_one" else n
    shape = (n, c, *spatial)
    x = _scores(kind, shape, rng)
    if family == "ce":
        return x, _classes((n, *spatial), c, rng, ignore=ignore)
    if family == "ce_probs":
        return x, _probs(shape, rng)
    if family == "nll":
        return _log_softmax(x), _classes((n, *spatial), c, rng, ignore=ignore)
    if family == "bce":
        with np.errstate(over="ignore"):  # exact 0 and 1 in the extreme case
            p = 1 / (1 + np.exp(-x.astype(np.float64)))
        return p.astype(np.float32), rng.random(shape).astype(np.float32).round(1)
    if family == "bce_logits":
        return x, (rng.random(shape) > 0.5).astype(np.float32)
    if family == "kl":
        return _log_softmax(x), _probs(shape, rng, zeros=True)
    if family == "kl_log":
        return _log_softmax(x), _log_softmax(rng.standard_normal(shape).astype(np.float32))
    y = _scores(kind, shape, rng)  # regression: both sides of one kind
    return x, y if kind != "extreme" else y[::-1].copy()


W5 = (0.5, 2.0, 1.0, 0.0, 3.0)  # class weights, one of them zero

LOSSES = [
    ("NLLLoss", {}, "nll", {}),
    ("NLLLoss", {"weight": W5, "ignore_index": 1}, "nll", {"spatial": (3,), "ignore": 1}),
    ("NLLLoss", {"weight": W5, "reduction": "sum"}, "nll", {}),
    ("NLLLoss", {"reduction": "none"}, "nll", {"spatial": (2, 3)}),
    ("CrossEntropyLoss", {}, "ce", {}),  # targets -100: ignored by default, as in torch
    ("CrossEntropyLoss", {"reduction": "sum"}, "ce", {"spatial": (3,)}),
    ("CrossEntropyLoss", {"weight": W5}, "ce", {}),
    ("CrossEntropyLoss", {"ignore_index": 2}, "ce", {"spatial": (3,), "ignore": 2}),
    ("CrossEntropyLoss", {"label_smoothing": 0.1}, "ce", {}),
    ("CrossEntropyLoss", {"weight": W5, "ignore_index": 2, "label_smoothing": 0.2}, "ce",
     {"ignore": 2}),
    ("CrossEntropyLoss", {"weight": W5, "ignore_index": 2, "label_smoothing": 0.2,
                          "reduction": "none"}, "ce", {"spatial": (2,), "ignore": 2}),
    ("CrossEntropyLoss", {"weight": W5, "label_smoothing": 0.3}, "ce_probs", {}),
    ("CrossEntropyLoss", {"label_smoothing": 0.3, "reduction": "sum"}, "ce_probs", {}),
    ("BCELoss", {}, "bce", {}),
    ("BCELoss", {"weight": W5, "reduction": "sum"}, "bce", {}),
    ("BCEWithLogitsLoss", {}, "bce_logits", {}),
    ("BCEWithLogitsLoss", {"pos_weight": W5, "weight": W5[::-1]}, "bce_logits", {}),
    ("BCEWithLogitsLoss", {"pos_weight": (3.0,), "reduction": "none"}, "bce_logits", {}),
    ("L1Loss", {}, "reg", {}),
    ("L1Loss", {"reduction": "none"}, "reg", {}),
    ("SmoothL1Loss", {}, "reg", {}),
    ("SmoothL1Loss", {"beta": 0.5, "reduction": "sum"}, "reg", {}),
    ("SmoothL1Loss", {"beta": 0.0}, "reg", {}),
    ("HuberLoss", {}, "reg", {}),
    ("HuberLoss", {"delta": 2.5, "reduction": "none"}, "reg", {}),
    ("KLDivLoss", {}, "kl", {}),
    ("KLDivLoss", {"reduction": "batchmean"}, "kl", {}),
    ("KLDivLoss", {"reduction": "sum", "log_target": True}, "kl_log", {}),
]


def _loss_kwargs(kwargs, lib):
    """Weights as torch tensors for torch, numpy arrays for Lamina (both accept either)."""
    tensor = torch.tensor if lib is torch.nn else np.array
    return {k: tensor(v, dtype=torch.float32) if lib is torch.nn and isinstance(v, tuple)
            else tensor(v, np.float32) if isinstance(v, tuple) else v
            for k, v in kwargs.items()}


def _loss_id(case) -> str:
    name, kwargs, family, extra = case
    return "-".join([name, family, *kwargs, *(f"{k}{v}" for k, v in extra.items())])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("case", LOSSES, ids=_loss_id)
def test_loss_matches_torch(case, kind, rng):
    name, kwargs, family, extra = case
    tl = getattr(torch.nn, name)(**_loss_kwargs(kwargs, torch.nn))
    loss = getattr(nn, name)(**_loss_kwargs(kwargs, nn))
    assert list(loss.state_dict()) == list(tl.state_dict())
    x, y = _case(family, kind, rng, **extra)
    with torch.no_grad():
        expected = tl(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    got = compiler.compile(loss, x, y, backend="reference", opt_level=0)(x, y)
    scale = max(float(np.max(np.abs(expected), initial=1.0)), 1.0)
    assert_close(got, expected, rtol=1e-5, atol=1e-5 * scale, what=f"{name} {kind}")


@pytest.mark.parametrize("case", [LOSSES[i] for i in (1, 4, 9, 11, 16, 21, 24, 26)],
                         ids=_loss_id)
def test_loss_on_llvm(case, rng):
    name, kwargs, family, extra = case
    tl = getattr(torch.nn, name)(**_loss_kwargs(kwargs, torch.nn))
    x, y = _case(family, "normal", rng, **extra)
    with torch.no_grad():
        expected = tl(torch.from_numpy(x), torch.from_numpy(y)).numpy()
    got = compiler.compile(getattr(nn, name)(**_loss_kwargs(kwargs, nn)), x, y,
                           backend="llvm")(x, y)
    assert_close(got, expected, rtol=1e-5, atol=1e-5, what=name)


@pytest.mark.parametrize("case", [c for c in LOSSES if c[1].get("reduction") != "none"
                                  and not c[3].get("spatial")], ids=_loss_id)
def test_loss_trains_like_torch(case, rng):
    """Five SGD steps of a linear model under the loss: its gradient against torch's."""
    name, kwargs, family, extra = case
    x = rng.standard_normal((6, 3)).astype(np.float32)
    _, y = _case(family, "normal", rng, n=6, ignore=extra.get("ignore", -100))

    def build(lib):
        head = {"nll": lib.LogSoftmax(1), "kl": lib.LogSoftmax(1), "kl_log": lib.LogSoftmax(1),
                "bce": lib.Sigmoid()}.get(family, lib.Identity())
        return lib.Sequential(lib.Linear(3, 5), head)

    tm, model = paired(build, jitter=0.3)
    _train(tm, model, [x], y, loss=(name, kwargs), lr=0.1)


# ---- bad arguments: the project's errors, naming the layer ---------------------------------
@pytest.mark.parametrize(("build", "match"), [
    (lambda: nn.GroupNorm(4, 6), "GroupNorm: num_groups 4 must divide"),
    (lambda: nn.GroupNorm(0, 6), "GroupNorm: num_groups must be a positive"),
    (lambda: nn.Conv1d(3, 4, 3, groups=2), "Conv1d: groups=2 must divide"),
    (lambda: nn.Conv1d(3, 4, (3, 3)), "Conv1d: kernel_size must be an int or a 1-tuple"),
    (lambda: nn.Conv1d(3, 4, 3, padding_mode="mirror"), "Conv1d: padding_mode"),
    (lambda: nn.MaxPool1d(2, return_indices=True), "MaxPool1d: return_indices"),
    (lambda: nn.PixelShuffle(0), "PixelShuffle: upscale_factor"),
    (lambda: nn.Upsample(scale_factor=2, mode="area"), "mode 'area' is not supported"),
    (lambda: nn.Upsample(size=4, scale_factor=2), "exactly one of size and scale_factor"),
    (lambda: nn.Upsample(scale_factor=2, align_corners=True), "align_corners"),
    (lambda: nn.CrossEntropyLoss(label_smoothing=1.5), "CrossEntropyLoss: label_smoothing"),
    (lambda: nn.SmoothL1Loss(beta=-1.0), "SmoothL1Loss: beta"),
    (lambda: nn.HuberLoss(delta=0.0), "HuberLoss: delta"),
    (lambda: nn.KLDivLoss(reduction="avg"), "KLDivLoss: reduction"),
    (lambda: nn.LocalResponseNorm(0), "LocalResponseNorm: size"),
])
def test_bad_arguments_are_lamina_errors(build, match):
    with pytest.raises(LaminaError, match=match):
        build()


@pytest.mark.parametrize(("layer", "shapes", "match"), [
    (lambda: nn.GroupNorm(2, 4), [(2, 6, 3)], "expects \\[N, 4, \\*\\]"),
    (lambda: nn.InstanceNorm2d(3), [(2, 3)], "InstanceNorm2d.*rank 3 or 4"),
    (lambda: nn.InstanceNorm1d(3), [(2, 4, 5)], "3 channels"),
    (lambda: nn.RMSNorm(4), [(2, 5)], "normalized_shape \\[4\\]"),
    (lambda: nn.PReLU(3), [(2, 4, 5)], "3 slopes"),
    (lambda: nn.PixelShuffle(2), [(1, 6, 2, 2)], "PixelShuffle\\(2\\) needs"),
    (lambda: nn.PixelUnshuffle(2), [(1, 2, 3, 4)], "multiples of 2"),
    (lambda: nn.Conv1d(2, 3, 3), [(1, 2, 3, 8)], "expects \\[N, C, L\\]"),
    (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), [(1, 2, 5)], "'bilinear' on input"),
    (lambda: nn.Bilinear(3, 4, 2), [(5, 3), (4, 4)], "same leading axes"),
])
def test_bad_inputs_are_shape_errors_naming_the_layer(layer, shapes, match, rng):
    xs = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    with pytest.raises(ShapeError, match=match):
        compiler.trace(layer(), *xs)


def test_new_layers_export_to_onnx_and_match_torch(rng, tmp_path):
    """The layers are built from registered operators, so they export as they are: the ONNX
    model, run by onnxruntime, gives torch's numbers."""
    onnx = pytest.importorskip("onnx")
    from tests.compiler.onnx_util import ort_run

    def build(lib):
        return lib.Sequential(
            lib.Conv1d(2, 4, 3, padding=1), lib.InstanceNorm1d(4, affine=True), lib.PReLU(4),
            lib.Unflatten(2, (2, 4)), lib.GroupNorm(2, 4), lib.Upsample(scale_factor=2),
            lib.PixelUnshuffle(2), lib.LocalResponseNorm(3), lib.RMSNorm(4),
            lib.Upsample(size=(3, 5), mode="bilinear"), lib.Flatten(), lib.Linear(240, 3))

    tm, model = paired(build, jitter=0.3)
    model.eval()
    x = rng.standard_normal((2, 2, 8)).astype(np.float32)
    with torch.no_grad():
        expected = tm.eval()(torch.from_numpy(x)).numpy()
    path = tmp_path / "layers.onnx"
    compiler.save_onnx(model, path, example_inputs=(x,))
    graph = compiler.trace(model, x)
    got = ort_run(onnx.load(path), {graph.inputs[0].name: x})
    assert_close(got[0], expected, rtol=1e-4, atol=1e-5, what="onnxruntime")


@pytest.mark.parametrize("kwargs", [
    {"scale_factor": (1.5, 2), "mode": "bilinear", "recompute_scale_factor": True},
    {"scale_factor": (1.7, 0.6), "mode": "nearest"},
    {"size": 4, "mode": "bilinear", "align_corners": True},
    {"scale_factor": 2.5, "mode": "bicubic"},
], ids=["recompute", "nearest_down", "size_int_corners", "bicubic_fractional"])
def test_functional_interpolate_matches_torch(kwargs, rng):
    from compiler import functional as F

    class Resize(nn.Module):
        def forward(self, x):
            return F.interpolate(x, **kwargs)

    x = rng.standard_normal((2, 3, 5, 7)).astype(np.float32)
    expected = torch.nn.functional.interpolate(torch.from_numpy(x), **kwargs).numpy()
    for backend in ("reference", "llvm"):
        got = compiler.compile(Resize(), x, backend=backend)(x)
        assert_close(got, expected, rtol=1e-5, atol=1e-5, what=backend)
