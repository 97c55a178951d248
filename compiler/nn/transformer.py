"""torch.nn's encoder-decoder Transformer: TransformerDecoderLayer, the TransformerEncoder and
TransformerDecoder stacks, and Transformer itself, with torch's constructor arguments,
defaults and state_dict keys (`encoder.layers.0.self_attn.in_proj_weight`, ...).

Everything is MultiheadAttention, Linear, LayerNorm and Dropout from the modules beside this
one; masks take torch's forms (bool, True = not attended, or additive float) and are handed to
MultiheadAttention unchanged. The `*_is_causal` flags are torch's hints that a mask is the
causal one: the mask given is what is applied (torch also needs it; see
`generate_square_subsequent_mask`).
"""

from __future__ import annotations

import copy

import numpy as np

from ir import ShapeError
from ir.tensor_type import DTYPES

from ..frontends import tracing
from ..frontends.tensor_methods import as_dtype
from . import init
from .attention import MultiheadAttention, TransformerEncoderLayer, activation_fn
from .layers import Dropout, Linear, next_dropout_seed
from .module import Module, ModuleList
from .norm import LayerNorm


class TransformerDecoderLayer(Module):
    """torch.nn.TransformerDecoderLayer: self-attention over the target, attention over the
    encoder's output (`memory`) and a feed-forward block, each with a residual connection and
    LayerNorm (after each block, or before it with norm_first)."""

    def __init__(self, d_model: int, nhead: int, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        self.self_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                            batch_first=batch_first)
        self.multihead_attn = MultiheadAttention(d_model, nhead, dropout=dropout, bias=bias,
                                                 batch_first=batch_first)
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias)
        self.dropout = Dropout(dropout)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias)
        self.norm_first = norm_first
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.norm3 = LayerNorm(d_model, eps=layer_norm_eps, bias=bias)
        self.dropout1 = Dropout(dropout)
        self.dropout2 = Dropout(dropout)
        self.dropout3 = Dropout(dropout)
        self.activation = activation_fn(type(self).__name__, activation)

    def _sa_block(self, x, attn_mask, key_padding_mask, is_causal):
        x = self.self_attn(x, x, x, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                           is_causal=is_causal, need_weights=False)[0]
        return self.dropout1(x)

    def _mha_block(self, x, memory, attn_mask, key_padding_mask, is_causal):
        x = self.multihead_attn(x, memory, memory, attn_mask=attn_mask,
                                key_padding_mask=key_padding_mask, is_causal=is_causal,
                                need_weights=False)[0]
        return self.dropout2(x)

    def _ff_block(self, x):
        return self.dropout3(self.linear2(self.dropout(self.activation(self.linear1(x)))))

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal: bool = False,
                memory_is_causal: bool = False):
        x = tgt
        if self.norm_first:
            x = x + self._sa_block(self.norm1(x), tgt_mask, tgt_key_padding_mask,
                                   tgt_is_causal)
            x = x + self._mha_block(self.norm2(x), memory, memory_mask,
                                    memory_key_padding_mask, memory_is_causal)
            return x + self._ff_block(self.norm3(x))
        x = self.norm1(x + self._sa_block(x, tgt_mask, tgt_key_padding_mask, tgt_is_causal))
        x = self.norm2(x + self._mha_block(x, memory, memory_mask, memory_key_padding_mask,
                                           memory_is_causal))
        return self.norm3(x + self._ff_block(x))


def _clones(layer: Module, n: int) -> ModuleList:
    """`n` deep copies of `layer` (torch's _get_clones); each copy's dropout sites get fresh
    seeds, so the layers do not share one mask stream."""
    init.check_sizes(type(layer).__name__ + " stack", num_layers=n)
    out = ModuleList()
    for _ in range(n):
        clone = copy.deepcopy(layer)
        for m in clone.modules():
            if "seed" in m.__dict__:
                m.seed = next_dropout_seed()
        out.append(clone)
    return out


class TransformerEncoder(Module):
    """torch.nn.TransformerEncoder: `num_layers` copies of `encoder_layer`, then `norm`.

    enable_nested_tensor and mask_check are torch's fast-path switches: accepted, and the
    result is the same without them (padded positions are computed, not zeroed)."""

    def __init__(self, encoder_layer: Module, num_layers: int, norm: Module | None = None,
                 enable_nested_tensor: bool = True, mask_check: bool = True):
        super().__init__()
        self.layers = _clones(encoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, src, mask=None, src_key_padding_mask=None, is_causal=None):
        out = src
        for layer in self.layers:
            out = layer(out, src_mask=mask, src_key_padding_mask=src_key_padding_mask,
                        is_causal=bool(is_causal))  # None: torch detects it; a hint
        return out if self.norm is None else self.norm(out)


class TransformerDecoder(Module):
    """torch.nn.TransformerDecoder: `num_layers` copies of `decoder_layer`, then `norm`."""

    def __init__(self, decoder_layer: Module, num_layers: int, norm: Module | None = None):
        super().__init__()
        self.layers = _clones(decoder_layer, num_layers)
        self.num_layers = num_layers
        self.norm = norm

    def forward(self, tgt, memory, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        out = tgt
        for layer in self.layers:
            out = layer(out, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                        tgt_key_padding_mask=tgt_key_padding_mask,
                        memory_key_padding_mask=memory_key_padding_mask,
                        tgt_is_causal=bool(tgt_is_causal),
                        memory_is_causal=memory_is_causal)
        return out if self.norm is None else self.norm(out)


class Transformer(Module):
    """torch.nn.Transformer: an encoder stack over `src` and a decoder stack over `tgt`
    attending to the encoder's output, each ending in a LayerNorm; forward(src, tgt, ...) ->
    the decoder's output, [T, N, E] (or [N, T, E] with batch_first, or unbatched [T, E]).

    Matrices start Xavier-uniform, as torch's _reset_parameters leaves them."""

    def __init__(self, d_model: int = 512, nhead: int = 8, num_encoder_layers: int = 6,
                 num_decoder_layers: int = 6, dim_feedforward: int = 2048,
                 dropout: float = 0.1, activation="relu", custom_encoder: Module | None = None,
                 custom_decoder: Module | None = None, layer_norm_eps: float = 1e-5,
                 batch_first: bool = False, norm_first: bool = False, bias: bool = True):
        super().__init__()
        args = (d_model, nhead, dim_feedforward, dropout, activation, layer_norm_eps,
                batch_first, norm_first, bias)
        self.encoder = custom_encoder if custom_encoder is not None else TransformerEncoder(
            TransformerEncoderLayer(*args), num_encoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        self.decoder = custom_decoder if custom_decoder is not None else TransformerDecoder(
            TransformerDecoderLayer(*args), num_decoder_layers,
            LayerNorm(d_model, eps=layer_norm_eps, bias=bias))
        for p in self.parameters():
            if p.ndim > 1:
                p[...] = init.xavier_uniform(p.shape)
        self.d_model, self.nhead, self.batch_first = d_model, nhead, batch_first

    def forward(self, src, tgt, src_mask=None, tgt_mask=None, memory_mask=None,
                src_key_padding_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, src_is_causal=None, tgt_is_causal=None,
                memory_is_causal: bool = False):
        batch = 0 if self.batch_first else 1
        if src.ndim == 3 and (tgt.ndim != 3 or src.shape[batch] != tgt.shape[batch]):
            raise ShapeError(f"{tracing.where()}the batch number of src {list(src.shape)} and "
                             f"tgt {list(tgt.shape)} must be equal")
        if src.shape[-1] != self.d_model or tgt.shape[-1] != self.d_model:
            raise ShapeError(f"{tracing.where()}the feature number of src {list(src.shape)} "
                             f"and tgt {list(tgt.shape)} must be equal to d_model "
                             f"{self.d_model}")
        memory = self.encoder(src, mask=src_mask, src_key_padding_mask=src_key_padding_mask,
                              is_causal=src_is_causal)
        return self.decoder(tgt, memory, tgt_mask=tgt_mask, memory_mask=memory_mask,
                            tgt_key_padding_mask=tgt_key_padding_mask,
                            memory_key_padding_mask=memory_key_padding_mask,
                            tgt_is_causal=tgt_is_causal, memory_is_causal=memory_is_causal)

    @staticmethod
    def generate_square_subsequent_mask(sz: int, device=None, dtype=None) -> np.ndarray:
        """The causal mask [sz, sz]: -inf above the diagonal (a later position), 0 elsewhere
        (float32, or `dtype`)."""
        init.check_sizes("generate_square_subsequent_mask", sz=sz)
        name = "f32" if dtype is None else as_dtype(dtype)
        if name not in ("f32", "f64"):
            raise ShapeError(f"generate_square_subsequent_mask: dtype {dtype!r} is not a "
                             "float type")
        return np.triu(np.full((sz, sz), -np.inf, DTYPES[name]), 1)
