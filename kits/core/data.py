"""Batching that can be resumed exactly: a seeded epoch sampler and per-sample RNG seeding.

The sample order of epoch ``e`` depends only on ``(seed, e)``; each rank takes its strided slice,
and a resumed run skips the batches it has already seen. Random augmentations draw from
``random`` / ``np.random`` seeded per sample with ``(seed, epoch, index)``, so they are identical
with any number of workers and after a resume.
"""

from __future__ import annotations

import math
import random
from typing import Any, Callable, Iterator, Sequence

import numpy as np


class EpochBatchSampler:
    """Yields lists of ``(index, sample_seed)`` for one epoch; call ``set_epoch`` before each.

    ``order_fn`` (a dataset's ``batch_order``) may reorder the shuffled indices, e.g. to put samples
    of similar length into the same batch.
    """

    def __init__(self, num_samples: int, batch_size: int, shuffle: bool = True, drop_last: bool = True,
                 seed: int = 0, rank: int = 0, world_size: int = 1, order_fn=None):
        if num_samples <= 0:
            raise ValueError("the dataset is empty")
        self.num_samples, self.batch_size = num_samples, batch_size
        self.shuffle, self.drop_last, self.seed = shuffle, drop_last, seed
        self.rank, self.world_size = rank, world_size
        self.order_fn = order_fn  # dataset hook, e.g. length bucketing: (order, batch_size, seed) -> order
        self.epoch, self.skip = 0, 0

    def set_epoch(self, epoch: int, skip_batches: int = 0) -> None:
        self.epoch, self.skip = epoch, skip_batches

    def _indices(self) -> list[int]:
        order = list(range(self.num_samples))
        if self.shuffle:
            np.random.default_rng([self.seed, self.epoch]).shuffle(order)
        if self.order_fn is not None:  # depends only on (seed, epoch), so resume stays exact
            order = list(self.order_fn(order, self.batch_size * self.world_size, [self.seed, self.epoch]))
        per_rank = math.ceil(self.num_samples / self.world_size)
        order += order[: per_rank * self.world_size - len(order)]  # pad so ranks get equal work
        return order[self.rank::self.world_size]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        order = self._indices()
        for b in range(self.skip, len(self)):
            chunk = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield [(i, _sample_seed(self.seed, self.epoch, i)) for i in chunk]

    def __len__(self) -> int:
        per_rank = math.ceil(self.num_samples / self.world_size)
        return per_rank // self.batch_size if self.drop_last else math.ceil(per_rank / self.batch_size)


def _sample_seed(seed: int, epoch: int, index: int) -> int:
    return int(np.random.SeedSequence([seed, epoch, index]).generate_state(1)[0])


class SeededDataset:
    """Wraps a dataset so that item ``(index, seed)`` seeds ``random``/``np.random`` first."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, item):
        index, seed = item if isinstance(item, tuple) else (item, None)
        if seed is not None:
            random.seed(seed)
            np.random.seed(seed)
        return _in_worker(self.dataset.__getitem__, index)


# A dataset error raised inside paddle's DataLoader (its reader thread or a worker process) either
# hangs the loader or surfaces as a generic SystemError. Errors are therefore caught where the data
# is made and travel as a batch to the main thread, where ``to_tensors`` raises them.
WORKER_ERROR = "__loader_error__"


def _in_worker(fn, arg):
    try:
        return fn(arg)
    except Exception as exc:  # noqa: BLE001 - re-raised in the main thread by to_tensors
        from .errors import KitsError

        text = f"{type(exc).__name__}: {exc}"
        if not isinstance(exc, KitsError):  # an unexpected error: keep its traceback for debugging
            import traceback

            text += "\n" + "".join(traceback.format_exception(exc)).rstrip()
        # paddle's loader pipes batches as tensors plus a structure: a batch needs one array
        return {WORKER_ERROR: text, "__placeholder__": np.zeros(1, np.float32)}


class _SafeCollate:
    """Passes a worker's error on instead of collating; collate errors travel the same way."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, samples):
        for sample in samples:
            if isinstance(sample, dict) and WORKER_ERROR in sample:
                return sample
        return _in_worker(self.collate, samples)


def default_collate(samples: Sequence[dict]) -> dict[str, Any]:
    """Stack same-shaped arrays per key; keep ragged values (boxes, strings) as lists."""
    batch: dict[str, Any] = {}
    for key in samples[0]:
        values = [s[key] for s in samples]
        if isinstance(values[0], (np.ndarray, np.generic, int, float)) and not isinstance(values[0], bool):
            arrays = [np.asarray(v) for v in values]
            if all(a.shape == arrays[0].shape for a in arrays):
                batch[key] = np.stack(arrays)
                continue
        batch[key] = values
    return batch


def to_tensors(batch: dict[str, Any]) -> dict[str, Any]:
    """numpy arrays -> paddle tensors (lists of arrays -> lists of tensors); other values unchanged."""
    import paddle

    if WORKER_ERROR in batch:
        from .errors import DataError

        raise DataError(f"while loading data: {batch[WORKER_ERROR]}")

    def convert(value):
        if isinstance(value, np.ndarray) and value.dtype != object:
            return paddle.to_tensor(value)
        if isinstance(value, list) and value and isinstance(value[0], np.ndarray):
            return [paddle.to_tensor(v) for v in value]
        return value

    return {k: convert(v) for k, v in batch.items()}


def build_loader(dataset, sampler: EpochBatchSampler | None, batch_size: int, collate: Callable,
                 num_workers: int):
    """A paddle DataLoader over ``SeededDataset(dataset)`` (eval loaders pass ``sampler=None``)."""
    import paddle

    if sampler is None:
        sampler = EpochBatchSampler(len(dataset), batch_size, shuffle=False, drop_last=False)
    return paddle.io.DataLoader(SeededDataset(dataset), batch_sampler=sampler, collate_fn=_SafeCollate(collate),
                                num_workers=num_workers, persistent_workers=num_workers > 0,
                                use_shared_memory=False)
