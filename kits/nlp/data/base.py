"""The base of the NLP datasets: tokenized samples in memory, dynamic padding per batch."""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np

from kits.core.errors import DataError

from ..tokenization import Encoded, Tokenizer, pad_batch
from .bucketing import bucket_order
from .context import DataContext

log = logging.getLogger(__name__)


class TextDataset:
    """Items are dicts of token-id lists plus ``index``; ``collate`` pads to the batch's longest.

    ``kind`` names the task that reads the dataset (``classification``, ``token_classification`` or
    ``masked_lm``); the NLP task adapter checks it against the model's.
    """

    kind = ""
    tokenizer: Tokenizer
    bucket_chunk_batches = 50  # batches per sorted chunk in ``batch_order``

    def __init__(self, context: DataContext | None, where: str):
        self.context, self.where = context, where
        self.features: list[dict] = []

    def max_length(self) -> int:
        """The tokenizer's limit, capped by the longest input the model accepts."""
        limit = self.tokenizer.max_length
        if self.context is not None and self.context.max_length is not None:
            limit = min(limit, self.context.max_length)
        return limit

    def _report_truncation(self, encoded: Encoded, limit: int) -> None:
        if encoded.num_truncated:
            log.warning("%s: %d of %d sequences are longer than %d tokens and were truncated", self.where,
                        encoded.num_truncated, len(encoded), limit)

    def _sort(self, order: Sequence[int]) -> None:
        """Reorder every per-sample list attribute (used by ``sort_by_length``)."""
        for name, value in list(vars(self).items()):
            if isinstance(value, list) and len(value) == len(order) and name != "features":
                setattr(self, name, [value[i] for i in order])
        self.features = [self.features[i] for i in order]

    def sort_by_length(self) -> None:
        """Sort samples by length: consecutive (evaluation) batches then need little padding."""
        self._sort(sorted(range(len(self.features)), key=lambda i: len(self.features[i]["input_ids"])))

    @property
    def lengths(self) -> list[int]:
        """Token count of every sample (for length-bucketed batching)."""
        return [len(f["input_ids"]) for f in self.features]

    def batch_order(self, order: Sequence[int], batch_size: int, seed) -> list[int]:
        """An epoch's shuffled ``order`` regrouped into length buckets (see ``bucketing``)."""
        return bucket_order(order, self.lengths, batch_size, self.bucket_chunk_batches, seed)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> dict:
        return {**self.features[index], "index": index}

    def collate(self, samples: list[dict]) -> dict:
        return pad_batch(samples, pad_id=self.tokenizer.pad_id)


class LabelledDataset(TextDataset):
    """A text dataset with a label list ``self.labels`` (classification and tagging; not masked LM)."""

    @property
    def class_names(self) -> list[str]:
        return self.labels.names

    @property
    def num_classes(self) -> int:
        return len(self.labels)


def check_limit(records: list, max_samples: int | None, where: str) -> list:
    """The first ``max_samples`` records; no record at all is a DataError."""
    if max_samples is not None:
        records = records[:max_samples]
    if not records:
        raise DataError(f"{where}: no samples")
    return records


def check_num_classes(num_classes: int | None, found: int, source: str) -> None:
    if num_classes is not None and num_classes != found:
        raise DataError(f"{source} has {found} labels but num_classes is {num_classes}")


def as_array(values) -> np.ndarray:
    return np.asarray(values, dtype=np.int64)
