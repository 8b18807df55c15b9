"""Token classification (NER) datasets: JSON lines of characters + tags, and CoNLL columns.

Tags follow BIO or BIOES (``O``, ``B-X``, ``I-X``, ``E-X``, ``S-X``). Each word (a character for
Chinese) is tagged on its first sub-token; the metric compares whole-sentence word tags, so words
cut off by truncation count as predicted ``O``.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np

from kits.core.errors import DataError

from ..registry import DATASETS
from .base import LabelledDataset, check_limit, check_num_classes
from .context import DataContext, resolve_labels, resolve_tokenizer
from .labels import LabelList
from .readers import data_path, read_conll, read_jsonl

SCHEMES = {"BIO": ("B", "I"), "BIOES": ("B", "I", "E", "S")}
UNITS = ("chars", "words")


@dataclass
class Sentence:
    path: str
    line: int
    words: list[str]
    tags: list[str]
    line_per_word: bool = False  # CoNLL: word k is on line ``line + k``

    def where(self, k: int) -> str:
        return f"{self.path}:{self.line + k if self.line_per_word else self.line}"


def check_scheme(labels: LabelList, scheme: str) -> str:
    """Resolve ``auto`` (BIOES when any E-/S- tag exists) and check every tag against the scheme."""
    prefixes = {n.split("-", 1)[0] for n in labels if n != "O"}
    if scheme == "auto":
        scheme = "BIOES" if prefixes & {"E", "S"} else "BIO"
    if scheme not in SCHEMES:
        raise DataError(f"unknown tag scheme '{scheme}'; choose auto, BIO or BIOES")
    bad = [n for n in labels if n != "O" and ("-" not in n or n.split("-", 1)[0] not in SCHEMES[scheme])]
    if bad:
        raise DataError(f"{labels.source}: tags {bad[:5]} do not follow the {scheme} scheme "
                        f"(O or {'/'.join(SCHEMES[scheme])}-TYPE)")
    return scheme


def split_units(text: str, units: str) -> list[str]:
    """Raw text -> the units a tagger labels: characters (spaces dropped) or whitespace words."""
    return [c for c in text if not c.isspace()] if units == "chars" else text.split()


class TaggingDataset(LabelledDataset):
    """Sentences -> tokenized features with a tag id on the first sub-token of every word."""

    kind = "token_classification"

    def __init__(self, sentences: list[Sentence], root: str, tokenizer, label_list, scheme: str,
                 add_special_tokens: bool, label_all_subtokens: bool, units: str, max_samples: int | None,
                 sort_by_length: bool, num_classes: int | None, context: DataContext | None, where: str):
        super().__init__(context, where)
        if units not in UNITS:
            raise DataError(f"{where}: units must be one of {UNITS}, got '{units}'")
        self.units, self.add_special_tokens = units, add_special_tokens
        self.sentences = check_limit(sentences, max_samples, where)
        self.tokenizer = resolve_tokenizer(tokenizer, self.texts, context, where)
        self.labels = resolve_labels(label_list, root, lambda: (t for s in self.sentences for t in s.tags), context,
                                     where, outside_first="O")
        check_num_classes(num_classes, len(self.labels), self.labels.source)
        self.scheme = check_scheme(self.labels, scheme)
        ids = [[self.labels.index(t, s.where(k)) for k, t in enumerate(s.tags)] for s in self.sentences]
        limit = self.max_length()
        encoded = self.tokenizer.encode_words([s.words for s in self.sentences], ids, max_length=limit,
                                              add_special_tokens=add_special_tokens,
                                              label_all_subtokens=label_all_subtokens)
        self._report_truncation(encoded, limit)
        self.features = encoded.rows()
        self.word_starts = [first_tokens(w, len(s.words)) for w, s in zip(encoded.word_ids, self.sentences)]
        if sort_by_length:
            self.sort_by_length()

    def texts(self) -> Iterable[str]:
        for s in self.sentences:
            yield " ".join(s.words)


def first_tokens(word_ids: Sequence[int | None], num_words: int) -> np.ndarray:
    """Token position of each word's first sub-token; -1 for words with no token (truncated, spaces)."""
    starts = np.full(num_words, -1, dtype=np.int64)
    for position, word in enumerate(word_ids):
        if word is not None and starts[word] < 0:
            starts[word] = position
    return starts


@DATASETS.register
class NERDataset(TaggingDataset):
    """JSON lines ``{"text": [chars], "label": [tags]}`` (the field names are configurable; a string
    text is split into ``units``). BiGRU-CRF configs set ``add_special_tokens: false``."""

    def __init__(self, root: str, list: str, tokenizer: Mapping | None = None,
                 label_list: str | Sequence[str] | None = None, text_field: str = "text",
                 label_field: str = "label", scheme: str = "auto", add_special_tokens: bool = True,
                 label_all_subtokens: bool = False, units: str = "chars", max_samples: int | None = None,
                 sort_by_length: bool = False, num_classes: int | None = None, context: DataContext | None = None):
        path = data_path(root, list)
        sentences = []
        for n, obj in read_jsonl(path, [text_field, label_field]):
            text, tags = obj[text_field], obj[label_field]
            words = split_units(text, units) if isinstance(text, str) else [str(w) for w in text]
            if not words:
                raise DataError(f"{path}:{n}: empty text")
            if not isinstance(tags, builtins.list) or len(tags) != len(words):
                count = len(tags) if isinstance(tags, builtins.list) else type(tags).__name__
                raise DataError(f"{path}:{n}: {len(words)} {units} in '{text_field}' but {count} tags in "
                                f"'{label_field}'")
            sentences.append(Sentence(str(path), n, words, [str(t) for t in tags]))
        super().__init__(sentences, root, tokenizer, label_list, scheme, add_special_tokens, label_all_subtokens,
                         units, max_samples, sort_by_length, num_classes, context, str(path))


@DATASETS.register
class CoNLLDataset(TaggingDataset):
    """CoNLL column files: one token per line (token and tag columns), blank lines between sentences."""

    def __init__(self, root: str, list: str, tokenizer: Mapping | None = None,
                 label_list: str | Sequence[str] | None = None, token_column: int = 0, tag_column: int = -1,
                 delimiter: str | None = None, scheme: str = "auto", add_special_tokens: bool = True,
                 label_all_subtokens: bool = False, units: str = "words", max_samples: int | None = None,
                 sort_by_length: bool = False, num_classes: int | None = None, context: DataContext | None = None):
        path = data_path(root, list)
        sentences = [Sentence(str(path), start, words, tags, line_per_word=True)
                     for start, words, tags in read_conll(path, token_column, tag_column, delimiter)]
        super().__init__(sentences, root, tokenizer, label_list, scheme, add_special_tokens, label_all_subtokens,
                         units, max_samples, sort_by_length, num_classes, context, str(path))


def unit_spans(text: str, units: str) -> list[tuple[int, int]]:
    """Character span ``[start, end)`` of every unit ``split_units`` gives for ``text``."""
    import re

    pattern = r"\S" if units == "chars" else r"\S+"
    return [m.span() for m in re.finditer(pattern, text)]
