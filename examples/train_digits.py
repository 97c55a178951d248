"""Train a small CNN on scikit-learn's handwritten digits, then compile it for inference.

    pip install scikit-learn        # for the dataset (8x8 images, shipped with it: no download)
    python examples/train_digits.py [--epochs 12] [--backend reference|llvm]

One compiled training step runs forward, backward and the Adam update in a single graph
execution; after training, the parameters and batch-norm statistics go back into the
model, which compiles for inference at opt_level=3: dropout disappears and batch norm
folds into the convolutions.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time

import numpy as np

import compiler
from compiler import nn, optim


class DigitsCNN(nn.Module):
    def __init__(self, classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
            nn.MaxPool2d(2),  # 4x4
            nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
            nn.MaxPool2d(2),  # 2x2
        )
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.25)
        self.fc = nn.Linear(64 * 2 * 2, classes)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.features(x))))


def load_data(seed: int = 0):
    """(x_train, y_train, x_test, y_test): images [N, 1, 8, 8] scaled to [0, 1], a
    stratified 80/20 split."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        sys.exit("train_digits.py needs scikit-learn for its dataset: pip install scikit-learn")
    digits = load_digits()
    x = (digits.images / 16.0).astype(np.float32)[:, None]
    y = digits.target.astype(np.int64)
    rng = np.random.default_rng(seed)
    test = np.zeros(len(y), bool)
    for c in range(10):  # 20% of every class
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[: len(idx) // 5]] = True
    return x[~test], y[~test], x[test], y[test]


def accuracy(model, x, y, backend: str = "reference") -> float:
    fn = compiler.compile(model.eval(), x, opt_level=3, backend=backend)
    model.train()
    return float((fn(x).argmax(1) == y).mean())


def small_matrix_blas():
    """One BLAS thread: this model's matrices are small, and BLAS worker threads cost more
    than they save (several times more on a busy machine). threadpoolctl comes with
    scikit-learn."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--backend", default="reference", choices=["reference", "llvm"])
    args = ap.parse_args(argv)
    start = time.perf_counter()
    x_train, y_train, x_test, y_test = load_data()
    print(f"digits: {len(x_train)} training and {len(x_test)} test images of 8x8")

    nn.manual_seed(0)
    model = DigitsCNN()
    opt = optim.Adam(lr=args.lr)
    b = args.batch
    step = compiler.compile_training(model, nn.CrossEntropyLoss(), opt, x_train[:b],
                                     y_train[:b], backend=args.backend)
    print(f"compiled the training step: {len(step.graph.nodes)} nodes, "
          f"{sum(p.size for p in step.params.values())} parameters "
          f"({time.perf_counter() - start:.1f} s)")

    rng = np.random.default_rng(0)
    n_batches = len(x_train) // b  # every batch has the compiled size; the rest waits
    for epoch in range(1, args.epochs + 1):
        opt.lr = args.lr * 0.5 * (1 + np.cos(np.pi * (epoch - 1) / args.epochs))  # cosine
        order = rng.permutation(len(x_train))
        losses = [step(x_train[i], y_train[i])
                  for i in (order[k * b:(k + 1) * b] for k in range(n_batches))]
        line = (f"epoch {epoch:2d}  lr {opt.lr:.5f}  loss {np.mean(losses):.4f}  "
                f"({time.perf_counter() - start:.1f} s)")
        if epoch % 4 == 0 or epoch == args.epochs:
            step.copy_to(model)
            line += f"  test accuracy {accuracy(model, x_test, y_test):.4f}"
        print(line, flush=True)

    step.copy_to(model)
    fn = compiler.compile(model.eval(), x_test, opt_level=3, backend=args.backend)
    acc = float((fn(x_test).argmax(1) == y_test).mean())
    print("\n== the trained model compiled for inference (opt_level=3) ==")
    print(fn.graph)
    print(f"\ntest accuracy {acc:.4f} on {len(y_test)} images; "
          f"total time {time.perf_counter() - start:.1f} s")
    return acc


if __name__ == "__main__":
    with small_matrix_blas():
        main()
