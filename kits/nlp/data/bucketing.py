"""Length-bucketed batch order: batches of similar length need little padding.

``bucket_order`` takes an epoch's shuffled sample order, sorts it by length inside chunks of
``chunk_batches`` batches and shuffles the resulting batches, so every batch holds samples of
similar length while the epoch stays random. It is deterministic given ``seed``, so a resumed run
sees the same batches. The shared trainer's sampler shuffles uniformly and has no hook for a
dataset-defined order yet; datasets expose ``lengths`` for when it does.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def bucket_order(order: Sequence[int], lengths: Sequence[int], batch_size: int, chunk_batches: int = 50,
                 seed: int | Sequence[int] = 0) -> list[int]:
    """``order`` regrouped so that consecutive ``batch_size`` slices have similar lengths."""
    order = list(order)
    chunk = max(1, chunk_batches) * batch_size
    grouped: list[int] = []
    for start in range(0, len(order), chunk):
        part = order[start:start + chunk]
        grouped += sorted(part, key=lambda i: lengths[i])  # stable: ties keep their shuffled order
    batches = [grouped[i:i + batch_size] for i in range(0, len(grouped), batch_size)]
    full = [b for b in batches if len(b) == batch_size]
    rest = [b for b in batches if len(b) != batch_size]
    rng = np.random.default_rng(seed)
    picks = rng.permutation(len(full))
    return [i for k in picks for i in full[k]] + [i for b in rest for i in b]
