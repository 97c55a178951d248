"""The optimisation passes at work: a conv-bn-relu-dropout model before and after O2 / O3.

    python examples/optimize_passes.py

Prints the traced IR, then for O2 and O3 the per-pass statistics table, the optimised IR
annotated with the memory plan (each intermediate's arena range) and the plan's summary,
and checks the optimised graph against the unoptimised one on the reference interpreter.
"""

import sys

import numpy as np

import compiler
import passes
from backends import reference
from compiler import nn


class Net(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.drop = nn.Dropout(0.1)
        self.pool = nn.MaxPool2d(2)
        self.bn3 = nn.BatchNorm2d(8)  # after pooling: no conv to fold into
        self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(8, classes)

    def forward(self, x):
        h = self.drop(self.relu(self.bn1(self.conv1(x))))
        h = self.relu(self.bn2(self.conv2(h)) + h)  # a residual block
        h = self.bn3(self.pool(h))
        h = h * h.sigmoid()  # swish: an elementwise tail for O3 to fuse
        return self.fc(self.drop(self.gap(h).flatten(1)))


def build():
    """(model, example input), with trained-looking batch-norm statistics."""
    nn.manual_seed(0)
    model = Net().eval()
    rng = np.random.default_rng(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m.weight = rng.uniform(0.5, 1.5, c).astype(np.float32)
            m.bias = rng.normal(0, 0.2, c).astype(np.float32)
            m.running_mean = rng.normal(0, 0.2, c).astype(np.float32)
            m.running_var = rng.uniform(0.5, 1.5, c).astype(np.float32)
    return model, rng.standard_normal((1, 3, 16, 16)).astype(np.float32)


def main() -> None:
    model, x = build()
    graph = compiler.trace(model, x)
    print("# ==== traced IR ====")
    print(graph)
    expected = reference.run(graph, x)[0]
    for level in (2, 3):
        pm = passes.PassManager(passes.pipeline(level), verify=True)
        out = pm.run(graph)
        plan = passes.plan_memory(out)
        err = np.abs(reference.run(out, x)[0] - expected).max()
        print(f"\n# ==== O{level}: pass statistics ====")
        print(pm.stats)
        print(f"\n# ==== O{level}: optimised IR with the memory plan ====")
        print(plan.annotate(out))
        print(f"# max |difference| from the unoptimised graph: {err:.2e}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
