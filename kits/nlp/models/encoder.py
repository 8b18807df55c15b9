"""A Transformer encoder in the BERT / ERNIE layout (post-norm, learned absolute positions).

State-dict keys (what converted checkpoints use)::

    embeddings.{word,position,token_type}.weight   embeddings.norm.{weight,bias}
    layers.N.attn.{query,key,value,out}.{weight,bias}   layers.N.attn_norm.{weight,bias}
    layers.N.ffn.{fc1,fc2}.{weight,bias}               layers.N.ffn_norm.{weight,bias}
    pooler.{weight,bias}

Linear weights are stored ``[in, out]`` (paddle's convention).
"""

from __future__ import annotations

import math

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.fast_layers import Dropout, LayerNorm, Linear

from ..registry import ENCODERS

# Large enough to zero a padded key after softmax, small enough to stay finite in fp16 / bf16.
MASK_BIAS = -1e4


class Embeddings(nn.Layer):
    """Word + position + token-type embeddings, then LayerNorm and dropout."""

    def __init__(self, vocab_size, hidden_size, max_position, type_vocab_size, dropout, eps, pad_id):
        super().__init__()
        self.word = nn.Embedding(vocab_size, hidden_size, padding_idx=pad_id)
        self.position = nn.Embedding(max_position, hidden_size)
        self.token_type = nn.Embedding(type_vocab_size, hidden_size)
        self.norm = LayerNorm(hidden_size, epsilon=eps)
        self.dropout = Dropout(dropout)

    def forward(self, input_ids, token_type_ids):
        positions = paddle.arange(paddle.shape(input_ids)[1], dtype="int64").unsqueeze(0)
        x = self.word(input_ids) + self.position(positions) + self.token_type(token_type_ids)
        return self.dropout(self.norm(x))


class SelfAttention(nn.Layer):
    """Multi-head scaled dot-product self-attention with an additive key mask."""

    def __init__(self, hidden_size, num_heads, dropout):
        super().__init__()
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size {hidden_size} is not divisible by num_heads {num_heads}")
        self.num_heads, self.head_dim = num_heads, hidden_size // num_heads
        self.query = Linear(hidden_size, hidden_size)
        self.key = Linear(hidden_size, hidden_size)
        self.value = Linear(hidden_size, hidden_size)
        self.out = Linear(hidden_size, hidden_size)
        self.dropout = Dropout(dropout)

    def _split(self, x):
        # [B, T, H] -> [B, heads, T, head_dim]; 0 keeps B and T dynamic for export
        return x.reshape([0, 0, self.num_heads, self.head_dim]).transpose([0, 2, 1, 3])

    def forward(self, x, mask_bias):
        q, k, v = self._split(self.query(x)), self._split(self.key(x)), self._split(self.value(x))
        scores = paddle.matmul(q, k, transpose_y=True) * (1.0 / math.sqrt(self.head_dim)) + mask_bias
        probs = self.dropout(F.softmax(scores, axis=-1))
        ctx = paddle.matmul(probs, v).transpose([0, 2, 1, 3])
        return self.out(ctx.reshape([0, 0, self.num_heads * self.head_dim]))


class FeedForward(nn.Layer):
    def __init__(self, hidden_size, intermediate_size, activation):
        super().__init__()
        self.fc1 = Linear(hidden_size, intermediate_size)
        self.fc2 = Linear(intermediate_size, hidden_size)
        self.activation = _activation(activation)

    def forward(self, x):
        return self.fc2(self.activation(self.fc1(x)))


class EncoderLayer(nn.Layer):
    """Post-norm block: x = LN(x + Attn(x)); x = LN(x + FFN(x))."""

    def __init__(self, hidden_size, num_heads, intermediate_size, dropout, attention_dropout, eps, activation):
        super().__init__()
        self.attn = SelfAttention(hidden_size, num_heads, attention_dropout)
        self.attn_norm = LayerNorm(hidden_size, epsilon=eps)
        self.ffn = FeedForward(hidden_size, intermediate_size, activation)
        self.ffn_norm = LayerNorm(hidden_size, epsilon=eps)
        self.dropout = Dropout(dropout)

    def forward(self, x, mask_bias):
        x = self.attn_norm(x + self.dropout(self.attn(x, mask_bias)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


def _activation(name):
    table = {"gelu": nn.GELU, "gelu_tanh": lambda: nn.GELU(approximate=True), "relu": nn.ReLU}
    if name not in table:
        raise ValueError(f"unknown activation '{name}'; choose one of {sorted(table)}")
    return table[name]()


@ENCODERS.register
class TransformerEncoder(nn.Layer):
    """BERT-layout encoder: ``(input_ids, token_type_ids, attention_mask) -> {'hidden', 'pooled'}``.

    ``attention_mask`` is 1 for real tokens and 0 for padding; padded keys get ``MASK_BIAS``.
    ``pretrained`` names registered weights (e.g. ``minilm_l6_en``) or a file in this key layout.
    """

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 768, num_layers: int = 12,
                 num_heads: int = 12, intermediate_size: int = 3072, max_position: int = 512,
                 type_vocab_size: int = 2, dropout: float = 0.1, attention_dropout: float | None = None,
                 layer_norm_eps: float = 1e-12, activation: str = "gelu", pad_id: int = 0,
                 with_pooler: bool = True, init_std: float = 0.02, pretrained: str | None = None):
        super().__init__()
        self.hidden_size, self.vocab_size, self.pad_id = hidden_size, vocab_size, pad_id
        self.max_position, self.num_heads = max_position, num_heads
        attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.embeddings = Embeddings(vocab_size, hidden_size, max_position, type_vocab_size, dropout,
                                     layer_norm_eps, pad_id)
        self.layers = nn.LayerList([
            EncoderLayer(hidden_size, num_heads, intermediate_size, dropout, attention_dropout, layer_norm_eps,
                         activation) for _ in range(num_layers)])
        self.pooler = Linear(hidden_size, hidden_size) if with_pooler else None
        self._init_weights(init_std)
        if pretrained:
            self.load_pretrained(pretrained)

    def _init_weights(self, std):
        normal = nn.initializer.TruncatedNormal(std=std)
        for layer in self.sublayers():
            if isinstance(layer, (nn.Linear, nn.Embedding)):
                normal(layer.weight)
            if isinstance(layer, nn.Linear):
                nn.initializer.Constant(0.0)(layer.bias)

    def load_pretrained(self, name_or_path: str):
        from kits.core.pretrained import load_into

        from .. import pretrained as _named  # registers the kit's weight names

        del _named
        return load_into(self, name_or_path)

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        if token_type_ids is None:
            token_type_ids = paddle.zeros_like(input_ids)
        if attention_mask is None:
            attention_mask = (input_ids != self.pad_id).astype("int64")
        x = self.embeddings(input_ids, token_type_ids)
        # [B, T] -> [B, 1, 1, T]: every query ignores padded keys
        mask_bias = (1.0 - attention_mask.astype(x.dtype)).unsqueeze([1, 2]) * MASK_BIAS
        if self.training and x.place.is_cpu_place():  # paddle's CPU broadcasting add is slow: broadcast once
            mask_bias = mask_bias.expand([-1, self.num_heads, x.shape[1], -1])
        for layer in self.layers:
            x = layer(x, mask_bias)
        out = {"hidden": x}
        if self.pooler is not None:
            out["pooled"] = paddle.tanh(self.pooler(x[:, 0]))
        return out


def mean_pool(hidden, attention_mask):
    """Average the hidden states of real tokens (sentence embedding)."""
    mask = attention_mask.astype(hidden.dtype).unsqueeze(-1)
    return (hidden * mask).sum(axis=1) / paddle.clip(mask.sum(axis=1), min=1e-9)
