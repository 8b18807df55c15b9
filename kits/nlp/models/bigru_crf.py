"""Character embedding + bidirectional GRU + CRF, the classic light sequence tagger for Chinese NER.

It reads characters without [CLS] / [SEP] (encode with ``add_special_tokens=False``): every real
token is tagged.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn

from ..registry import MODELS
from .crf import CRF
from .tasks import crf_eval_outputs, crf_outputs

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
        """Logits, tag mask and CRF table (see ``crf_outputs``); Viterbi runs after the engine."""
        mask = attention_mask.astype("int64")
        states = self._padding_safe_gru(self.dropout(self.embedding(input_ids)), mask)
        return crf_outputs(self.crf, self.fc(self.dropout(states)), mask > 0)

    def _padding_safe_gru(self, embedded, mask):
        """The BiGRU states ``emissions`` gets with ``sequence_length``, computed without it, since
        paddle2onnx drops it (the backward direction would start on the padding of shorter rows):
        the GRU also runs on the rows right-aligned (padding first), where the backward states are
        right. This doubles the GRU work of the exported graph."""
        if self.gru.num_layers != 1:
            raise NotImplementedError(f"BiGRUCRF exports with num_layers=1 only (got {self.gru.num_layers}): "
                                      "paddle2onnx drops the GRU's sequence_length, and the padding-safe "
                                      "rewrite holds for one layer")
        steps = paddle.shape(mask)[1]
        shift = steps - mask.sum(axis=1, keepdim=True)  # padding per row, [B, 1]
        positions = paddle.arange(steps, dtype="int64").unsqueeze(0)
        right = paddle.take_along_axis(embedded, paddle.clip(positions - shift, min=0).unsqueeze(-1), axis=1,
                                       broadcast=True)
        right = right * (positions >= shift).astype(embedded.dtype).unsqueeze(-1)
        both, _ = self.gru(paddle.concat([embedded, right], axis=0))
        # one axis per slice: paddle2onnx mis-converts paddle.split or a 2-axis slice over a dynamic batch
        rows, size = paddle.shape(mask)[0], self.gru.hidden_size
        forward, backward = both[:, :, :size], both[:, :, size:]
        back = paddle.clip(positions + shift, max=steps - 1).unsqueeze(-1)
        states = paddle.concat([forward[:rows], paddle.take_along_axis(backward[rows:], back, axis=1, broadcast=True)],
                               axis=-1)
        return states * (mask > 0).astype(states.dtype).unsqueeze(-1)  # zeros on padding, as sequence_length gives

    def eval_outputs(self, outputs: list) -> dict:
        return crf_eval_outputs(outputs)

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
