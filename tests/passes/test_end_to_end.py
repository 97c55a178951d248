"""ResNet-style model through compile(opt_level=3): bn and dropout gone, convs fused."""

from __future__ import annotations

import numpy as np
import pytest

import compiler
import passes
from backends import reference
from compiler import nn

from .helpers import ops


def _bn(c: int, rng) -> nn.BatchNorm2d:
    """A batch norm with trained-looking statistics, so folding really changes weights."""
    bn = nn.BatchNorm2d(c)
    bn.weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
    bn.bias = rng.normal(0, 0.3, c).astype(np.float32)
    bn.running_mean = rng.normal(0, 0.3, c).astype(np.float32)
    bn.running_var = rng.uniform(0.3, 2.0, c).astype(np.float32)
    return bn


class Block(nn.Module):
    """torch's BasicBlock: relu(bn2(conv2(relu(bn1(conv1(x))))) + x)."""

    def __init__(self, c: int, rng):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, rng)
        self.conv2, self.bn2 = nn.Conv2d(c, c, 3, padding=1, bias=False), _bn(c, rng)
        self.relu = nn.ReLU()

    def forward(self, x):
        h = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(h)) + x)


class ResNet(nn.Module):
    def __init__(self, rng, classes: int = 10):
        super().__init__()
        self.stem, self.bn = nn.Conv2d(3, 8, 3, padding=1, bias=False), _bn(8, rng)
        self.relu = nn.ReLU()
        self.layer1 = nn.Sequential(Block(8, rng), Block(8, rng))
        self.down, self.bn_down = nn.Conv2d(8, 16, 3, stride=2, padding=1), _bn(16, rng)
        self.layer2 = Block(16, rng)
        self.dw, self.bn_dw = nn.Conv2d(16, 16, 3, padding=1, groups=16), _bn(16, rng)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(0.2)
        self.fc = nn.Linear(16, classes)

    def forward(self, x):
        x = self.relu(self.bn(self.stem(x)))
        x = self.layer1(x)
        x = self.relu(self.bn_down(self.down(x)))
        x = self.layer2(x)
        x = self.relu(self.bn_dw(self.dw(x)))
        return self.fc(self.drop(self.pool(x).flatten(1)))


@pytest.fixture(scope="module")
def model_and_input():
    rng = np.random.default_rng(7)
    nn.manual_seed(7)
    model = ResNet(rng).eval()
    return model, rng.standard_normal((2, 3, 16, 16)).astype(np.float32)


def test_resnet_at_o3_has_only_fused_convs(model_and_input):
    model, x = model_and_input
    fn = compiler.compile(model, x, opt_level=3)
    counts = ops(fn.graph)
    assert "batch_norm" not in counts and "dropout" not in counts and "conv2d" not in counts
    assert counts["fused_conv2d"] == 9  # stem, 3 blocks x 2, down, depthwise
    for node in fn.graph.nodes:
        if node.op == "fused_conv2d":
            assert node.attrs["act"] == "relu" and len(node.inputs) in (3, 4)
    residuals = sum(len(n.inputs) == 4 for n in fn.graph.nodes if n.op == "fused_conv2d")
    assert residuals == 3

    reference_graph = compiler.trace(model, x)
    assert "batch_norm" in ops(reference_graph) and "dropout" in ops(reference_graph)
    expected = reference.run(reference_graph, x)[0]
    np.testing.assert_allclose(fn(x), expected, rtol=1e-4, atol=1e-4)


def test_each_level_matches_the_unoptimised_reference(model_and_input):
    model, x = model_and_input
    graph = compiler.trace(model, x)
    expected = reference.run(graph, x)[0]
    nodes = []
    for level in range(4):
        out = passes.optimize(graph, opt_level=level, verify=True)
        nodes.append(len(out.nodes))
        np.testing.assert_allclose(reference.run(out, x)[0], expected, rtol=1e-4, atol=1e-4)
    assert nodes[0] > nodes[1] > nodes[2] >= nodes[3]
    plan = passes.plan_memory(out)
    assert plan.peak_bytes <= plan.arena_bytes < plan.naive_bytes
