"""Character embedding + bidirectional GRU + CRF, the classic light sequence tagger for Chinese NER.

It reads characters without [CLS] / [SEP] (encode with ``add_special_tokens=False``): every real
token is tagged.
"""

from __future__ import annotations

import paddle.nn as nn

from ..registry import MODELS
from .crf import CRF

IGNORE_INDEX = -100


@MODELS.register
class BiGRUCRF(nn.Layer):
    """``forward(batch)``: train -> ``{'loss'}`` (CRF NLL); eval -> ``{'tags', 'logits'}``."""

    task_kind = "token_classification"
    special_tokens = False

    def __init__(self, vocab_size: int, num_classes: int, embed_dim: int = 128, hidden_size: int = 128,
                 num_layers: int = 1, dropout: float = 0.1, pad_id: int = 0):
        super().__init__()
        self.num_classes, self.pad_id, self.vocab_size = num_classes, pad_id, vocab_size
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=pad_id)
        self.gru = nn.GRU(embed_dim, hidden_size, num_layers=num_layers, direction="bidirect",
                          dropout=dropout if num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(2 * hidden_size, num_classes)
        self.crf = CRF(num_classes)

    def emissions(self, input_ids, attention_mask):
        lengths = attention_mask.astype("int64").sum(axis=1)
        # sequence_length makes the backward direction start at each sequence's last real token
        hidden, _ = self.gru(self.dropout(self.embedding(input_ids)), sequence_length=lengths)
        return self.fc(self.dropout(hidden))

    def export_forward(self, input_ids, attention_mask):
        return self.crf.decode(self.emissions(input_ids, attention_mask), attention_mask.astype("bool"))

    @staticmethod
    def input_spec():
        from paddle.static import InputSpec

        return [InputSpec([None, None], "int64", "input_ids"), InputSpec([None, None], "int64", "attention_mask")]

    def forward(self, batch):
        ids = batch["input_ids"]
        mask = batch.get("attention_mask")
        mask = (ids != self.pad_id).astype("int64") if mask is None else mask
        logits = self.emissions(ids, mask)
        labels = batch.get("labels")
        if self.training:
            return {"loss": self.crf(logits, labels, labels != IGNORE_INDEX)}
        tag_mask = labels != IGNORE_INDEX if labels is not None else mask.astype("bool")
        return {"tags": self.crf.decode(logits, tag_mask), "logits": logits}
