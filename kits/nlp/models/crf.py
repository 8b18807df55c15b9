"""A linear-chain CRF: negative log-likelihood (forward algorithm) and Viterbi decoding.

Both run over the time axis once and are vectorised over the batch and the tags. The mask may have
holes (e.g. only the first sub-token of each word carries a label): tagged positions are first packed
to the left, in order, so the chain links consecutive tagged positions only.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn


def pack_left(mask):
    """Order that moves the positions where ``mask`` is set to the front, keeping their order.

    Returns ``(order, packed_mask)``: gather with ``order`` to pack; ``packed_mask`` is left-aligned.
    """
    mask = mask.astype("int64")
    order = paddle.argsort(mask, axis=1, descending=True, stable=True)
    counts = mask.sum(axis=1, keepdim=True)
    positions = paddle.arange(paddle.shape(mask)[1], dtype="int64").unsqueeze(0)
    return order, positions < counts


def unpack(packed, order):
    """Inverse of packing with ``order``: values go back to their original positions."""
    return paddle.take_along_axis(packed, paddle.argsort(order, axis=1), axis=1)


def _gather_time(x, order):
    """Reorder ``x`` [B, T, ...] along time by ``order`` [B, T]."""
    index = order
    for _ in range(x.ndim - 2):
        index = index.unsqueeze(-1)
    return paddle.take_along_axis(x, index, axis=1, broadcast=True)


class CRF(nn.Layer):
    """Transition scores ``transitions[i, j]`` (tag i -> tag j) plus start and end scores."""

    def __init__(self, num_tags: int):
        super().__init__()
        self.num_tags = num_tags
        init = nn.initializer.Uniform(-0.1, 0.1)
        self.transitions = self.create_parameter([num_tags, num_tags], default_initializer=init)
        self.start = self.create_parameter([num_tags], default_initializer=init)
        self.end = self.create_parameter([num_tags], default_initializer=init)

    def forward(self, emissions, tags, mask):
        """Mean negative log-likelihood over the batch (sequences with no tagged position add 0)."""
        return self.nll(emissions, tags, mask).mean()

    def nll(self, emissions, tags, mask):
        """Per-sequence negative log-likelihood: ``log Z - score(gold path)``, shape [B]."""
        order, mask = pack_left(mask)
        emissions, tags = _gather_time(emissions, order), _gather_time(tags, order)
        tags = paddle.where(mask, tags, paddle.zeros_like(tags))  # padded labels may be -100
        nonempty = mask[:, 0].astype(emissions.dtype)
        return (self._log_partition(emissions, mask) - self._path_score(emissions, tags, mask)) * nonempty

    def _log_partition(self, emissions, mask):
        alpha = self.start.unsqueeze(0) + emissions[:, 0]
        for t in range(1, emissions.shape[1]):
            # [B, K_prev, 1] + [K_prev, K] + [B, 1, K] -> sum over the previous tag
            step = alpha.unsqueeze(2) + self.transitions.unsqueeze(0) + emissions[:, t].unsqueeze(1)
            alpha = paddle.where(mask[:, t : t + 1], paddle.logsumexp(step, axis=1), alpha)
        return paddle.logsumexp(alpha + self.end.unsqueeze(0), axis=1)

    def _path_score(self, emissions, tags, mask):
        maskf = mask.astype(emissions.dtype)
        emit = paddle.take_along_axis(emissions, tags.unsqueeze(-1), axis=2).squeeze(-1)
        flat = (tags[:, :-1] * self.num_tags + tags[:, 1:]).reshape([-1])
        trans = paddle.gather(self.transitions.reshape([-1]), flat).reshape(tags[:, 1:].shape)
        lengths = mask.astype("int64").sum(axis=1, keepdim=True)
        last = paddle.take_along_axis(tags, paddle.clip(lengths - 1, min=0), axis=1).squeeze(1)
        return (paddle.gather(self.start, tags[:, 0]) + (emit * maskf).sum(axis=1)
                + (trans * maskf[:, 1:]).sum(axis=1) + paddle.gather(self.end, last))

    def decode(self, emissions, mask, pad_tag: int = -1):
        """Best tag path per sequence (Viterbi); untagged positions get ``pad_tag``. Shape [B, T]."""
        order, packed_mask = pack_left(mask)
        tags = self._viterbi(_gather_time(emissions, order), packed_mask)
        tags = paddle.where(packed_mask, tags, paddle.full_like(tags, pad_tag))
        return unpack(tags, order)

    def _viterbi(self, emissions, mask):
        # Loops over a shape tensor and indexed list reads so that jit.to_static turns them into
        # while-loops over tensor arrays (dynamic sequence length in exported graphs).
        steps = paddle.shape(emissions)[1]
        score = self.start.unsqueeze(0) + emissions[:, 0]
        keep = paddle.arange(self.num_tags, dtype="int64").unsqueeze(0)  # backpointer through padding
        pointers = []
        for t in range(1, steps):
            step = score.unsqueeze(2) + self.transitions.unsqueeze(0)
            valid = mask[:, t : t + 1]
            best, prev = step.max(axis=1), step.argmax(axis=1)
            score = paddle.where(valid, best + emissions[:, t], score)
            pointers.append(paddle.where(valid, prev, keep.expand_as(prev)))
        tag = (score + self.end.unsqueeze(0)).argmax(axis=1, keepdim=True)
        path = [tag]
        for i in range(steps - 2, -1, -1):
            tag = paddle.take_along_axis(pointers[i], tag, axis=1)
            path.append(tag)
        return paddle.flip(paddle.concat(path, axis=1), axis=[1])
