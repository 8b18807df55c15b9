"""Encoder-based task models. Each owns its loss.

Batches hold int64 ``input_ids``, ``token_type_ids`` and ``attention_mask`` of shape [B, T] (padded
per batch) and ``labels`` ([B] for texts, [B, T] for tokens with -100 where nothing is predicted).
Train mode returns ``{'loss', ...}``; eval mode returns raw predictions.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import ENCODERS, HEADS, MODELS
from .crf import CRF

IGNORE_INDEX = -100


def token_cross_entropy(logits, labels, ignore_index: int = IGNORE_INDEX):
    """Mean cross-entropy over the labelled tokens only.

    paddle 3.3's ``cross_entropy(..., ignore_index=...)`` divides by every token, ignored ones
    included, which would shrink the loss with the share of padding in the batch.
    """
    logits = logits.reshape([-1, logits.shape[-1]])
    labels = labels.reshape([-1])
    valid = labels != ignore_index
    safe = paddle.where(valid, labels, paddle.zeros_like(labels))
    losses = F.cross_entropy(logits, safe, reduction="none").reshape([-1])
    validf = valid.astype(losses.dtype)
    return (losses * validf).sum() / paddle.clip(validf.sum(), min=1.0)


def _build_encoder(cfg):
    if isinstance(cfg, nn.Layer):
        return cfg
    return ENCODERS.build(cfg)


class _EncoderTask(nn.Layer):
    """Shared encoder plumbing, export signature and input spec.

    ``task_kind`` names the data a model learns from (the task adapter checks it against the
    dataset's); ``special_tokens``: inputs carry [CLS] / [SEP].
    """

    task_kind = ""
    special_tokens = True

    def __init__(self, encoder):
        super().__init__()
        self.encoder = _build_encoder(encoder)

    def _build_head(self, head, default_type, **kwargs):
        # ``head`` may leave out ``type``: its keys are then options of the task's default head
        return HEADS.build({"type": default_type, **(head or {})}, hidden_size=self.encoder.hidden_size, **kwargs)

    def encode(self, input_ids, token_type_ids, attention_mask):
        return self.encoder(input_ids, token_type_ids, attention_mask)

    def eval_outputs(self, outputs: list) -> dict:
        """The eval-mode outputs from the exported graph's outputs (the logits)."""
        return {"logits": outputs[0]}

    @staticmethod
    def input_spec():
        """Dynamic batch and sequence length for every input."""
        from paddle.static import InputSpec

        return [InputSpec([None, None], "int64", name) for name in ("input_ids", "token_type_ids", "attention_mask")]

    @staticmethod
    def _inputs(batch):
        """(input_ids, token_type_ids, attention_mask); missing types are 0, a missing mask is ids != 0."""
        ids = batch["input_ids"]
        types = batch.get("token_type_ids")
        mask = batch.get("attention_mask")
        if types is None:
            types = paddle.zeros_like(ids)
        if mask is None:
            mask = (ids != 0).astype("int64")
        return ids, types, mask


@MODELS.register
class SequenceClassifier(_EncoderTask):
    """A label per text or text pair (pairs are told apart by ``token_type_ids``)."""

    task_kind = "classification"

    def __init__(self, encoder: dict, num_classes: int = 2, head: dict | None = None, label_smoothing: float = 0.0):
        super().__init__(encoder)
        self.head = self._build_head(head, "ClassificationHead", num_classes=num_classes)
        self.num_classes, self.label_smoothing = num_classes, label_smoothing

    def export_forward(self, input_ids, token_type_ids, attention_mask):
        return self.head(self.encode(input_ids, token_type_ids, attention_mask), attention_mask)

    def forward(self, batch):
        logits = self.export_forward(*self._inputs(batch))
        if not self.training:
            return {"logits": logits}
        loss = F.cross_entropy(logits, batch["labels"].reshape([-1]), label_smoothing=self.label_smoothing)
        return {"loss": loss}


def crf_outputs(crf, logits, tag_mask) -> tuple:
    """What a CRF tagger exports: logits [B, T, K], the positions to tag [B, T] (int64) and its
    table [B, K + 2, K] (transitions, then start and end scores; repeated per sample so that every
    output has the batch axis the runtime splits results by)."""
    table = paddle.concat([crf.transitions, crf.start.unsqueeze(0), crf.end.unsqueeze(0)], axis=0)
    table = table.unsqueeze(0) + paddle.zeros_like(logits[:, :1, :1])
    return logits, tag_mask.astype("int64"), table


def crf_eval_outputs(outputs: list) -> dict:
    """``{'tags', 'logits'}`` from the exported (logits, tag mask, CRF table): Viterbi in numpy with
    the exported table, the same code the runtime runs (kits.deploy.text_ops)."""
    from kits.deploy.text_ops import split_crf_table, viterbi

    logits, mask, table = (o.numpy() if hasattr(o, "numpy") else o for o in outputs[:3])
    if len(logits) == 0:  # an empty batch has no table row to read
        return {"tags": paddle.to_tensor(mask.astype("int64")), "logits": paddle.to_tensor(logits)}
    tags = viterbi(logits, mask, *split_crf_table(table[0]))
    return {"tags": paddle.to_tensor(tags), "logits": paddle.to_tensor(logits)}


def default_tag_mask(attention_mask):
    """Real tokens except the leading [CLS] and the final [SEP] of each sequence."""
    positions = paddle.arange(paddle.shape(attention_mask)[1], dtype="int64").unsqueeze(0)
    lengths = attention_mask.astype("int64").sum(axis=1, keepdim=True)
    return (positions >= 1) & (positions < lengths - 1)


@MODELS.register
class TokenClassifier(_EncoderTask):
    """A tag per token, scored by softmax or by a CRF over the tagged positions.

    With ``use_crf`` the CRF links the labelled positions (labels != -100) in training; without labels
    it decodes ``batch['tag_mask']`` if given, else every real token but [CLS] / [SEP]. Eval returns
    ``{'logits'}`` (softmax) or ``{'tags', 'logits'}`` (CRF; untagged positions are -1).
    """

    task_kind = "token_classification"

    def __init__(self, encoder: dict, num_classes: int, use_crf: bool = False, head: dict | None = None):
        super().__init__(encoder)
        self.head = self._build_head(head, "TokenHead", num_classes=num_classes)
        self.num_classes = num_classes
        self.crf = CRF(num_classes) if use_crf else None

    def export_forward(self, input_ids, token_type_ids, attention_mask):
        """Logits; with a CRF also the tag mask and the CRF table (see ``crf_outputs``), since the
        Viterbi loop does not convert to ONNX: it runs in numpy after the engine (kits.deploy)."""
        logits = self.head(self.encode(input_ids, token_type_ids, attention_mask), attention_mask)
        if self.crf is None:
            return logits
        return crf_outputs(self.crf, logits, default_tag_mask(attention_mask))

    def eval_outputs(self, outputs: list) -> dict:
        if self.crf is None:
            return {"logits": outputs[0]}
        return crf_eval_outputs(outputs)

    def forward(self, batch):
        ids, types, mask = self._inputs(batch)
        logits = self.head(self.encode(ids, types, mask), mask)
        labels = batch.get("labels")
        if self.training:
            if self.crf is not None:
                return {"loss": self.crf(logits, labels, labels != IGNORE_INDEX)}
            return {"loss": token_cross_entropy(logits, labels)}
        if self.crf is None:
            return {"logits": logits}
        tag_mask = batch.get("tag_mask")
        if tag_mask is None:
            tag_mask = labels != IGNORE_INDEX if labels is not None else default_tag_mask(mask)
        return {"tags": self.crf.decode(logits, tag_mask), "logits": logits}


@MODELS.register
class MaskedLM(_EncoderTask):
    """Masked-token prediction with the decoder tied to the encoder's word embeddings.

    Training scores only the masked positions (labels != -100), so the vocabulary projection runs
    on a few tokens per sequence instead of all of them.
    """

    task_kind = "masked_lm"

    def __init__(self, encoder: dict, head: dict | None = None):
        super().__init__(encoder)
        self.head = self._build_head(head, "MaskedLMHead", vocab_size=self.encoder.vocab_size)

    def export_forward(self, input_ids, token_type_ids, attention_mask):
        encoded = self.encode(input_ids, token_type_ids, attention_mask)
        return self.head(encoded, self.encoder.embeddings.word.weight)

    def forward(self, batch):
        if not self.training:
            return {"logits": self.export_forward(*self._inputs(batch))}
        hidden = self.encode(*self._inputs(batch))["hidden"]
        labels = batch["labels"].reshape([-1])
        picked = paddle.nonzero(labels != IGNORE_INDEX).reshape([-1])
        hidden = paddle.gather(hidden.reshape([-1, hidden.shape[-1]]), picked)
        logits = self.head({"hidden": hidden}, self.encoder.embeddings.word.weight)
        return {"loss": token_cross_entropy(logits, paddle.gather(labels, picked))}
