"""A small transformer block, end to end: token and position embeddings, one pre-norm
encoder layer (multi-head self-attention + feed-forward, residual connections), a
classification head; trace it, read the IR, compile it, run it, check it.

    python examples/transformer_block.py
"""

import numpy as np
from show import compile_and_check

import compiler
import ir
from compiler import nn


class TinyTransformer(nn.Module):
    def __init__(self, vocab=100, d_model=32, heads=4, seq=16, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, d_model)
        self.pos = nn.Embedding(seq, d_model)
        self.block = nn.TransformerEncoderLayer(d_model, heads, 4 * d_model, dropout=0.1,
                                                activation="gelu", batch_first=True,
                                                norm_first=True)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, classes)
        self.positions = np.arange(seq, dtype=np.int64)

    def forward(self, tokens):
        x = self.embed(tokens) + self.pos(self.positions)
        x = self.norm(self.block(x))
        return self.head(x.mean(1))  # mean-pool over the sequence


def build():
    """(model, example tokens): what `lamina dump examples/transformer_block.py:build` reads."""
    nn.manual_seed(0)
    tokens = np.random.default_rng(0).integers(0, 100, (2, 16)).astype(np.int64)
    return TinyTransformer().eval(), tokens


def main():
    model, tokens = build()
    graph = compiler.trace(model, tokens)
    print("== traced IR ==")
    print(graph)
    ir.verify(graph)
    print(f"\n{len(graph.nodes)} nodes, {len(graph.params)} weights")

    compile_and_check(model, graph, tokens)

    model.train()  # training mode keeps dropout: it traces and runs too
    print(f"train-mode output mean: {compiler.compile(model, tokens)(tokens).mean():.4f}")


if __name__ == "__main__":
    main()
