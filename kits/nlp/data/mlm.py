"""Raw text for masked-LM pretraining: plain lines, text columns of a TSV, or JSON-lines fields."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

import numpy as np

from kits.core.errors import DataError

from ..registry import DATASETS
from ..tokenization import IGNORE_INDEX, SPECIAL_TOKENS
from .base import TextDataset, check_limit
from .context import DataContext, resolve_tokenizer
from .readers import data_path, read_jsonl, read_lines

FORMATS = ("lines", "tsv", "jsonl")


def read_corpus(path: Path, format: str, columns: Sequence[int], fields: Sequence[str]) -> list[str]:
    """Every non-empty text of a file; each listed column / field of a row is its own text."""
    if format == "lines":
        return [line.strip() for _, line in read_lines(path)]
    if format == "jsonl":
        return [str(obj[f]).strip() for _, obj in read_jsonl(path, fields) for f in fields if str(obj[f]).strip()]
    if format != "tsv":
        raise DataError(f"unknown corpus format '{format}' for {path}; choose one of {', '.join(FORMATS)}")
    texts = []
    for number, line in read_lines(path):
        cells = line.split("\t")
        if max(columns) >= len(cells):
            raise DataError(f"{path}:{number}: needs column {max(columns)} but the line has {len(cells)} columns")
        texts += [cells[c].strip() for c in columns if cells[c].strip()]
    return texts


@DATASETS.register
class MaskedLMDataset(TextDataset):
    """Texts for masked-token prediction; masks are drawn per sample and epoch (seeded by the loader).

    Args:
        list: one file or a list of files relative to ``root``.
        format: ``lines`` (one text per line), ``tsv`` (the ``columns`` are texts) or ``jsonl`` (``fields``).
        mask_prob: share of tokens to predict; of those 80 % become [MASK], 10 % a random token, 10 % stay.
    """

    kind = "masked_lm"

    def __init__(self, root: str, list: str | Sequence[str], tokenizer: Mapping | None = None,
                 format: str = "lines", columns: Sequence[int] = (0,), fields: Sequence[str] = ("text",),
                 mask_prob: float = 0.15, max_samples: int | None = None, sort_by_length: bool = False,
                 context: DataContext | None = None):
        files = [list] if isinstance(list, str) else [*list]
        paths = [data_path(root, name) for name in files]
        where = ", ".join(str(p) for p in paths)
        super().__init__(context, where)
        if not 0.0 < mask_prob < 1.0:
            raise DataError(f"mask_prob must be between 0 and 1, got {mask_prob}")
        self.mask_prob = mask_prob
        self.corpus = check_limit([t for p in paths for t in read_corpus(p, format, columns, fields)],
                                  max_samples, where)
        self.tokenizer = resolve_tokenizer(tokenizer, self.texts, context, where)
        limit = self.max_length()
        encoded = self.tokenizer.encode(self.corpus, max_length=limit)
        self._report_truncation(encoded, limit)
        self.features = encoded.rows()
        tok = self.tokenizer
        self.special_ids = np.array(sorted({tok.token_to_id(t) for t in SPECIAL_TOKENS}), dtype=np.int64)
        self.random_low = int(self.special_ids.max()) + 1
        if sort_by_length:
            self.sort_by_length()

    def texts(self) -> Iterable[str]:
        return iter(self.corpus)

    def __getitem__(self, index: int) -> dict:
        row = self.features[index]
        ids = np.asarray(row["input_ids"], dtype=np.int64)
        inputs, labels = mask_tokens(ids, self.mask_prob, self.tokenizer.mask_id, self.special_ids,
                                     self.random_low, self.tokenizer.vocab_size)
        return {**row, "input_ids": inputs, "labels": labels, "index": index}


def mask_tokens(ids: np.ndarray, prob: float, mask_id: int, special_ids: np.ndarray, random_low: int,
                vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """BERT masking with ``np.random``: at least one real token is always chosen."""
    candidates = ~np.isin(ids, special_ids)
    chosen = (np.random.random_sample(len(ids)) < prob) & candidates
    if not chosen.any() and candidates.any():
        chosen[np.random.choice(np.flatnonzero(candidates))] = True
    labels = np.where(chosen, ids, IGNORE_INDEX)
    roll = np.random.random_sample(len(ids))
    inputs = ids.copy()
    inputs[chosen & (roll < 0.8)] = mask_id
    swap = chosen & (roll >= 0.8) & (roll < 0.9)
    if random_low < vocab_size:
        inputs[swap] = np.random.randint(random_low, vocab_size, size=int(swap.sum()))
    return inputs, labels
