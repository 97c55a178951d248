"""A small CNN, end to end: define it, trace it, read its IR, compile it, run it, check it.

    python examples/small_cnn.py
"""

import numpy as np
from show import compile_and_check

import compiler
import ir
from compiler import nn


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
        )
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(32, classes)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.features(x))))


def build():
    """(model, example input): what `lamina dump examples/small_cnn.py:build` reads."""
    nn.manual_seed(0)
    model = SmallCNN().eval()
    rng = np.random.default_rng(0)
    for m in model.modules():  # non-trivial statistics, as a trained model would have
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean = rng.normal(0, 0.1, m.num_features).astype(np.float32)
            m.running_var = rng.uniform(0.5, 1.5, m.num_features).astype(np.float32)
    return model, rng.standard_normal((2, 3, 32, 32)).astype(np.float32)


def main():
    model, x = build()
    graph = compiler.trace(model, x)
    print("== traced IR ==")
    print(graph)
    ir.verify(graph)
    assert str(ir.parse(str(graph), graph.weights)) == str(graph)  # the text round-trips

    compile_and_check(model, graph, x)


if __name__ == "__main__":
    main()
