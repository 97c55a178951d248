"""Whole-model gradients against finite differences, in float64: a CNN with batch norm and
dropout in training mode, recurrent layers, a transformer encoder layer, an embedding."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
from backends.reference import run
from compiler import nn
from compiler.training.step import LossOf
from passes.autodiff import grad
from tests.training.numeric import check_graph_grads, to_float64


class SmallCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(2, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(3, 4, 3, padding=1, groups=1, bias=False)
        self.avg = nn.AvgPool2d(2, stride=1, padding=1, count_include_pad=False)
        self.drop = nn.Dropout(0.3)
        self.fc = nn.Linear(4 * 5 * 5, 3)

    def forward(self, x):
        x = self.pool(nn.ReLU()(self.bn(self.conv1(x))))
        x = self.avg(nn.GELU()(self.conv2(x)))
        return self.fc(self.drop(x.flatten(1)))


class Recurrent(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.rnn = cell(3, 5)
        self.fc = nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.rnn(x)
        return self.fc(out[-1])


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.1,
                                                activation="gelu", batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x):
        return self.head(self.layer(x).mean(1))


class Bag(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(7, 4)
        self.norm = nn.LayerNorm(4)
        self.fc = nn.Linear(4, 3)

    def forward(self, idx):
        return self.fc(self.norm(self.emb(idx)).mean(1)).log_softmax(-1)


def _kl(logp, target):  # cross-entropy against probabilities, on log-probabilities
    return nn.CrossEntropyLoss()(logp, target)


def _rng():
    return np.random.default_rng(1)


MODELS = {  # name -> (model factory, inputs, target, loss)
    "cnn_bn_dropout": (SmallCNN, _rng().standard_normal((4, 2, 8, 8)),
                       np.array([0, 2, 1, 2]), nn.CrossEntropyLoss()),
    "lstm": (lambda: Recurrent(nn.LSTM), _rng().standard_normal((4, 2, 3)),
             np.array([3, 1]), nn.CrossEntropyLoss()),
    "gru": (lambda: Recurrent(nn.GRU), _rng().standard_normal((3, 2, 3)),
            np.array([0, 2]), nn.CrossEntropyLoss()),
    "transformer_encoder": (Encoder, _rng().standard_normal((2, 5, 8)),
                            _rng().standard_normal((2, 3)), nn.MSELoss()),
    "embedding_layernorm": (Bag, np.array([[1, 3, 3], [6, 0, 1]]),
                            _rng().dirichlet(np.ones(3), 2), _kl),
}


@pytest.mark.parametrize("name", MODELS)
def test_model_gradients_match_finite_differences(name):
    factory, x, y, loss_fn = MODELS[name]
    nn.manual_seed(3)
    model = factory().train()
    to_float64(model)
    g = compiler.trace(LossOf(model, loss_fn, 1), x, y)
    params = [k for k, _ in model.named_parameters() if k in g.params]
    assert len(params) == len(list(model.parameters())), "every parameter reaches the loss"
    gg = grad(g, wrt=params)
    out = run(gg, x, y)
    assert all(np.abs(d).max() > 0 for d in out[1:]), "a parameter got no gradient"
    rng = np.random.default_rng(0)
    check_graph_grads(g, [x, y], params, out[1:], rng, max_elements=6, n_random=3)


def test_input_gradient_of_a_cnn_in_training_mode():
    factory, x, y, loss_fn = MODELS["cnn_bn_dropout"]
    nn.manual_seed(3)
    model = factory().train()
    to_float64(model)
    g = compiler.trace(LossOf(model, loss_fn, 1), x, y)
    gg = grad(g, wrt=[], inputs=True)
    check_graph_grads(g, [x, y], ["x"], run(gg, x, y)[1:], np.random.default_rng(0),
                      n_random=4)
