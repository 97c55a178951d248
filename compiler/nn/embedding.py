"""EmbeddingBag: torch.nn.EmbeddingBag's constructor, defaults and state_dict (`weight`), over
`functional.embedding_bag` (the reduction of each bag's rows, written with gather, masks and
a batched matmul)."""

from __future__ import annotations

import numpy as np

from ir import ShapeError

from .. import functional as F
from . import init
from .module import Module


class EmbeddingBag(Module):
    """torch.nn.EmbeddingBag: forward(input, offsets=None, per_sample_weights=None) -> [B, D],
    the 'sum', 'mean' or 'max' of the embeddings in each bag (the rows of a 2-D input, or the
    runs of a 1-D input that `offsets` start). The padding_idx row starts at zero and is left
    out of every bag, so it never trains. max_norm and scale_grad_by_freq are refused (the
    first renormalises the weight in place); `sparse` only changes torch's gradient format."""

    def __init__(self, num_embeddings: int, embedding_dim: int, max_norm: float | None = None,
                 norm_type: float = 2.0, scale_grad_by_freq: bool = False, mode: str = "mean",
                 sparse: bool = False, _weight=None, include_last_offset: bool = False,
                 padding_idx: int | None = None):
        super().__init__()
        init.check_sizes("EmbeddingBag", num_embeddings=num_embeddings,
                         embedding_dim=embedding_dim)
        try:
            F.check_embedding_bag(max_norm, scale_grad_by_freq, mode)
        except ShapeError as e:
            raise ShapeError(f"EmbeddingBag: {e}") from None
        if padding_idx is not None and not -num_embeddings <= padding_idx < num_embeddings:
            raise ShapeError(f"EmbeddingBag: padding_idx {padding_idx} must be within "
                             f"num_embeddings {num_embeddings}")
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.mode, self.sparse, self.include_last_offset = mode, sparse, include_last_offset
        self.max_norm, self.norm_type, self.scale_grad_by_freq = None, norm_type, False
        self.padding_idx = None if padding_idx is None else padding_idx % num_embeddings
        if _weight is None:
            self.weight = init.normal((num_embeddings, embedding_dim))
            if self.padding_idx is not None:  # torch: the padding row starts zero
                self.weight[self.padding_idx] = 0
        else:
            weight = np.array(_weight, np.float32)
            if weight.shape != (num_embeddings, embedding_dim):
                raise ShapeError(f"EmbeddingBag: _weight has shape {list(weight.shape)}, "
                                 f"expected {[num_embeddings, embedding_dim]}")
            self.weight = weight

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, mode=self.mode,
                               per_sample_weights=per_sample_weights,
                               include_last_offset=self.include_last_offset,
                               padding_idx=self.padding_idx)

    def extra_repr(self) -> str:
        pad = "" if self.padding_idx is None else f", padding_idx={self.padding_idx}"
        return f"{self.num_embeddings}, {self.embedding_dim}, mode={self.mode!r}{pad}"
