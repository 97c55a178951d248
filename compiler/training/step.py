"""compile_training(): forward, backward and optimizer update as one graph, run once a step.

    step = compiler.compile_training(model, nn.CrossEntropyLoss(), optim.SGD(0.1, 0.9), x, y)
    for x, y in batches:
        loss = step(x, y)           # one graph execution; parameters updated in place
    step.copy_to(model)             # trained parameters and batch-norm statistics
    fn = compiler.compile(model.eval(), x, opt_level=3)   # dropout gone, batch norm folded

How the training graph is built from the traced loss graph (see `build_training_graph`):
1. training-mode dropout becomes `dropout_seeded(x, %step)`: a fresh mask every call, the
   same mask forward and backward, reproducible from the step count;
2. each training-mode batch_norm gets the running-statistic update torch makes
   ((1 - momentum) * running + momentum * batch statistic, the variance unbiased);
3. parameters and running statistics turn from weights into graph inputs;
4. reverse-mode autodiff (passes.autodiff) adds the gradients of the loss;
5. the optimizer appends its update, reading `%lr` and its state as further inputs;
6. outputs: the loss, then the new value of every state input, in input order.
The result is ordinary IR: it prints, verifies and is optimised by the usual pipelines.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

import backends
import ir
import passes as _passes
from ir import InputError, LaminaError
from ir.tensor_type import FLOATS
from passes.autodiff import grad

from ..frontends.tracing import trace
from .optim import Builder, Optimizer


class TrainingError(LaminaError):
    """A model, loss or optimizer that cannot be compiled into a training step."""


@dataclass
class TrainingGraph:
    """The training graph and the meaning of its inputs and outputs.

    graph inputs: the data (`n_data` of them), then `%step` (i64, when there is training
    dropout), `%lr`, then one input per entry of `state`; outputs: the loss, then the new
    value of each state entry in the same order."""

    graph: ir.Graph
    n_data: int
    has_step: bool
    state: OrderedDict[str, np.ndarray]  # state input name -> initial value
    params: list[str]  # trained parameters (state_dict keys)
    buffers: list[str]  # updated batch-norm statistics (state_dict keys)


class LossOf:
    """The model followed by the loss, traced as one function; parameter names and layer
    paths come from the model (`conv1.weight`, `layer1.0.conv1`)."""

    def __init__(self, model, loss_fn, n_inputs: int):
        self.model, self.loss_fn, self.n_inputs = model, loss_fn, n_inputs

    def state_dict(self):
        return self.model.state_dict() if hasattr(self.model, "state_dict") else {}

    def named_modules(self):
        return self.model.named_modules() if hasattr(self.model, "named_modules") else iter(())

    def forward(self, x, target):
        return self.loss_fn(self.model(x), target)

    def __call__(self, *args):
        n = self.n_inputs
        return self.loss_fn(self.model(*args[:n]), *args[n:])


def _as_tuple(x) -> tuple[np.ndarray, ...]:
    return tuple(np.asarray(a) for a in x) if isinstance(x, (tuple, list)) else (np.asarray(x),)


def build_training_graph(model, loss_fn, optimizer: Optimizer, example_inputs,
                         example_targets) -> TrainingGraph:
    """The unoptimised training graph of `model` (in its current train/eval modes)."""
    inputs, targets = _as_tuple(example_inputs), _as_tuple(example_targets)
    wrapped = LossOf(model, loss_fn, len(inputs))
    if len(inputs) != 1 or len(targets) != 1:
        wrapped.forward = wrapped.__call__  # generic argument names x0, x1, ...
    g = trace(wrapped, *inputs, *targets, name="train_step")
    if len(g.outputs) != 1 or g.outputs[0].shape != () or g.outputs[0].dtype not in FLOATS:
        raise TrainingError(f"the loss must be one float scalar, got "
                            f"{', '.join(str(v.type) for v in g.outputs)}")
    state_dict = wrapped.state_dict()
    param_keys = {k for k, _ in model.named_parameters()} if hasattr(
        model, "named_parameters") else set(state_dict)
    params = [k for k, v in g.params.items() if k in param_keys and v.dtype in FLOATS]
    if not params:
        raise TrainingError("the loss depends on no trainable parameter of the model")
    step = _seed_dropout(g)
    buffers = _update_running_stats(g, set(state_dict) - param_keys)
    initial = OrderedDict((k, np.array(g.weights[k])) for k in [*params, *buffers])
    _weights_to_inputs(g, [*params, *buffers])
    n_out = len(g.outputs)
    g = grad(g, wrt=params, keep_outputs=True)
    loss, new_buffers, grads = g.outputs[0], g.outputs[1:n_out], g.outputs[n_out:]
    values = {v.name: v for v in g.inputs}  # grad() copied the graph: look values up again
    step = values[step.name] if step is not None else None
    lr = g.add_input(g.fresh_name("lr"), ir.TensorType((), values[params[0]].dtype))
    new_params, opt_state = optimizer.build(
        g, [(k, values[k], dv) for k, dv in zip(params, grads)], lr)
    for v, _, init in opt_state:
        initial[v.name] = init
    data = g.inputs[:len(inputs) + len(targets)]
    state_inputs = [values[k] for k in [*params, *buffers]] + [v for v, _, _ in opt_state]
    g.inputs = [*data, *([step] if step is not None else []), lr, *state_inputs]
    g.outputs = [loss, *new_params, *new_buffers, *(new for _, new, _ in opt_state)]
    ir.verify(g)
    return TrainingGraph(g, len(data), step is not None, initial, params, buffers)


def _seed_dropout(g: ir.Graph) -> ir.Value | None:
    """Training dropout -> dropout_seeded(x, %step); returns %step (None without dropout)."""
    nodes = [n for n in g.nodes if n.op == "dropout" and n.attrs["training"]
             and n.attrs["ratio"] > 0]
    if not nodes:
        return None
    step = g.add_input(g.fresh_name("step"), ir.TensorType((), "i64"))
    for node in nodes:
        with g.inserting_before(node):
            new = g.call("dropout_seeded", node.inputs[0], step, ratio=node.attrs["ratio"],
                         seed=node.attrs["seed"], name=node.name)
        g.replace_all_uses_with(node.output, new)
        g.erase_node(node)
    return step


def _update_running_stats(g: ir.Graph, buffer_keys: set[str]) -> list[str]:
    """Append torch's running-statistic updates for training batch_norm nodes whose
    statistics are model buffers; they become extra outputs. Returns the buffer names."""
    latest: dict[str, ir.Value] = {}
    for node in [n for n in g.nodes if n.op == "batch_norm" and n.attrs["training"]]:
        mean, var = node.inputs[3], node.inputs[4]
        if {mean.kind, var.kind} == {"weight"} and {mean.name, var.name} <= buffer_keys:
            _running_stats(Builder(g, f"{node.name}.stats"), node, latest)
    g.outputs = [*g.outputs, *latest.values()]
    return list(latest)


def _running_stats(b: Builder, node: ir.Node, latest: dict[str, ir.Value]) -> None:
    """new = (1 - momentum) * old + momentum * batch statistic (the variance unbiased);
    `latest` chains the updates of statistics that several nodes share."""
    x, mean, var = node.inputs[0], node.inputs[3], node.inputs[4]
    axes = (0, *range(2, len(x.shape)))
    n = int(np.prod([x.shape[a] for a in axes]))
    m = node.attrs["momentum"]
    batch_mean = b.call("reduce_mean", x, axes=axes)
    per_channel = (1, x.shape[1], *(1,) * (len(x.shape) - 2))
    centred = b.call("sub", x, b.call("reshape", batch_mean, shape=per_channel))
    batch_var = b.call("reduce_mean", b.call("mul", centred, centred), axes=axes)
    unbiased = b.call("mul", batch_var, b.const(n / max(n - 1, 1), x))
    for stat, value in ((mean, batch_mean), (var, unbiased)):
        old = latest.get(stat.name, stat)
        latest[stat.name] = b.call("add", b.call("mul", old, b.const(1 - m, x)),
                                   b.call("mul", value, b.const(m, x)), name=f"{stat.name}.new")


def _weights_to_inputs(g: ir.Graph, names: list[str]) -> None:
    """Make weights graph inputs, keeping their names and every use."""
    for name in names:
        v = g.params.pop(name)
        g.weights.pop(name, None)
        v.kind = "input"
        g.inputs.append(v)


class TrainStep:
    """One compiled training step: `loss = step(x, y)` runs forward, backward and the
    optimizer update in one graph execution and keeps the new parameters, batch-norm
    statistics and optimizer state for the next call."""

    def __init__(self, training: TrainingGraph, fn, model, optimizer: Optimizer,
                 backend: str, rebuild=None):
        self.graph = training.graph
        self.training_graph = training
        self.backend = backend
        self.optimizer = optimizer
        self.state: OrderedDict[str, np.ndarray] = OrderedDict(
            (k, np.array(v)) for k, v in training.state.items())
        self.steps = 0
        self._fn, self._model = fn, model
        # other batch sizes (a smaller last batch): the step compiled again for each, all
        # sharing `state`; `rebuild(batch)` returns (training graph, fn) for those sizes
        self._rebuild = rebuild
        self._by_batch = {self._batch_size(training): fn}
        self._tracked_at_compile = {k: int(v) for k, v in model.state_dict().items()
                                    if k.endswith("num_batches_tracked")}
        self._lr_dtype = self.graph.inputs[training.n_data + training.has_step].type.np_dtype

    def __call__(self, *batch, **keywords) -> float:
        """Train on one batch (inputs then targets, typed as the examples were); returns
        the loss, computed before the update."""
        t = self.training_graph
        if keywords or len(batch) != t.n_data:
            raise InputError(f"the training step takes {t.n_data} arrays by position (inputs, "
                             f"then targets), got {len(batch)}"
                             + (f" and keywords {', '.join(keywords)}" if keywords else ""))
        args = [*batch, *([np.array(self.steps, np.int64)] if t.has_step else []),
                np.array(self.optimizer.lr, self._lr_dtype), *self.state.values()]
        outs = self._for_batch(batch)(*args)
        outs = outs if isinstance(outs, (tuple, list)) else (outs,)
        for key, value in zip(self.state, outs[1:], strict=True):
            self.state[key] = value
        self.steps += 1
        return float(outs[0])

    def _batch_size(self, training: TrainingGraph) -> int | None:
        """The batch size of the data inputs (their common dimension 0), or None."""
        sizes = {v.type.shape[0] for v in training.graph.inputs[:training.n_data]
                 if v.type.rank}
        return sizes.pop() if len(sizes) == 1 else None

    def _for_batch(self, batch):
        """The step compiled for this batch's size: the one compiled from the examples when
        it fits (a wrong shape is then refused by its input checks), else one compiled for
        a batch that differs from the examples' in dimension 0 only."""
        examples = self.training_graph.graph.inputs[:self.training_graph.n_data]
        shapes = [np.shape(a) for a in batch]
        fits = all(s == v.type.shape for s, v in zip(shapes, examples))
        sizes = {s[0] for s in shapes if len(s)}
        if fits or self._rebuild is None or len(sizes) != 1 or not all(
                len(s) == v.type.rank and s[1:] == v.type.shape[1:]
                for s, v in zip(shapes, examples)):
            return self._fn
        size = sizes.pop()
        if size not in self._by_batch:
            training, fn = self._rebuild(batch)
            if list(training.state) != list(self.state):  # the same model: never expected
                raise TrainingError("the step for another batch size has different state")
            self._by_batch[size] = fn
        return self._by_batch[size]

    @property
    def params(self) -> dict[str, np.ndarray]:
        """The trained parameters by state_dict key."""
        return {k: self.state[k] for k in self.training_graph.params}

    def state_dict(self) -> OrderedDict[str, np.ndarray]:
        """The model's state_dict with the trained parameters and batch-norm statistics
        (num_batches_tracked counts the steps taken, as torch counts them)."""
        out = OrderedDict((k, np.array(v)) for k, v in self._model.state_dict().items())
        t = self.training_graph
        for key in [*t.params, *t.buffers]:
            out[key] = np.asarray(self.state[key], dtype=out[key].dtype)
        for key in {k.rsplit(".", 1)[0] if "." in k else "" for k in t.buffers}:
            tracked = f"{key}.num_batches_tracked" if key else "num_batches_tracked"
            if tracked in out:
                out[tracked] = np.asarray(self._tracked_at_compile.get(tracked, 0) + self.steps,
                                          out[tracked].dtype)
        return out

    def copy_to(self, model=None) -> None:
        """Write the trained state into `model` (default: the model compiled)."""
        (model if model is not None else self._model).load_state_dict(self.state_dict())

    def __repr__(self) -> str:
        return (f"<TrainStep @{self.graph.name} on {self.backend}: "
                f"{len(self.training_graph.params)} parameters, {self.optimizer!r}>")


def compile_training(model, loss_fn, optimizer: Optimizer, example_inputs, example_targets,
                     *, backend: str = backends.DEFAULT, opt_level: int = 2, passes=None,
                     **options) -> TrainStep:
    """Compile one training step of `model` (a compiler.nn model, traced in its current
    train/eval modes) under `loss_fn(prediction, *targets)` and `optimizer`.

    `example_inputs` / `example_targets` (an array or a tuple of arrays) fix the shapes and
    dtypes every later batch must have. `opt_level`/`passes` choose the optimisation
    pipeline applied to the training graph; other options go to the backend."""
    if not isinstance(optimizer, Optimizer):
        raise TrainingError(f"optimizer must be a compiler.optim optimizer, got "
                            f"{type(optimizer).__name__}")
    n_inputs = len(_as_tuple(example_inputs))

    def build(inputs, targets):
        training = build_training_graph(model, loss_fn, optimizer, inputs, targets)
        training.graph = _passes.optimize(training.graph, opt_level=opt_level, passes=passes)
        return training, backends.get(backend)(training.graph, **options)

    training, fn = build(example_inputs, example_targets)
    return TrainStep(training, fn, model, optimizer, backend,
                     rebuild=lambda batch: build(batch[:n_inputs], batch[n_inputs:]))
