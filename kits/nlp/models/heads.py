"""Heads that turn encoder outputs into logits; the task models add the losses."""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import HEADS
from .encoder import mean_pool

POOLINGS = ("pooler", "cls", "mean")


@HEADS.register
class ClassificationHead(nn.Layer):
    """One vector per text (pooler / [CLS] / mean of tokens) -> dropout -> linear."""

    def __init__(self, hidden_size: int, num_classes: int, pooling: str = "pooler", dropout: float = 0.1):
        super().__init__()
        if pooling not in POOLINGS:
            raise ValueError(f"unknown pooling '{pooling}'; choose one of {POOLINGS}")
        self.pooling = pooling
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, encoded, attention_mask):
        if self.pooling == "pooler":
            if "pooled" not in encoded:
                raise ValueError("pooling='pooler' needs an encoder built with with_pooler=True")
            vector = encoded["pooled"]
        elif self.pooling == "cls":
            vector = encoded["hidden"][:, 0]
        else:
            vector = mean_pool(encoded["hidden"], attention_mask)
        return self.fc(self.dropout(vector))


@HEADS.register
class TokenHead(nn.Layer):
    """Per-token logits (tag scores for NER)."""

    def __init__(self, hidden_size: int, num_classes: int, dropout: float = 0.1):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(hidden_size, num_classes)

    def forward(self, encoded, attention_mask):
        return self.fc(self.dropout(encoded["hidden"]))


@HEADS.register
class MaskedLMHead(nn.Layer):
    """Dense + GELU + LayerNorm, then a decoder tied to the word embeddings (plus its own bias)."""

    def __init__(self, hidden_size: int, vocab_size: int, layer_norm_eps: float = 1e-12):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.norm = nn.LayerNorm(hidden_size, epsilon=layer_norm_eps)
        self.bias = self.create_parameter([vocab_size], is_bias=True)

    def forward(self, encoded, word_embeddings):
        x = self.norm(F.gelu(self.dense(encoded["hidden"]), approximate=False))
        return paddle.matmul(x, word_embeddings, transpose_y=True) + self.bias
