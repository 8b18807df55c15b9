"""Text classification datasets: TSV / CSV (text, label), sentence pairs, JSON lines."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from kits.core.errors import DataError

from ..registry import DATASETS
from .base import LabelledDataset, check_limit, check_num_classes
from .context import DataContext, resolve_labels, resolve_tokenizer
from .readers import data_path, read_columns, read_jsonl


@dataclass
class Example:
    where: str  # file:line
    text: str
    pair: str | None
    label: str


def _check_text(text: str, where: str, name: str = "text") -> str:
    if not isinstance(text, str) or not text.strip():
        raise DataError(f"{where}: empty {name}")
    return text


class ClassificationDataset(LabelledDataset):
    """Examples -> tokenized features with a class id each (pairs get token types 0 / 1)."""

    kind = "classification"

    def __init__(self, examples: list[Example], root: str, tokenizer, label_list, max_samples: int | None,
                 sort_by_length: bool, num_classes: int | None, context: DataContext | None, where: str):
        super().__init__(context, where)
        self.examples = check_limit(examples, max_samples, where)
        self.tokenizer = resolve_tokenizer(tokenizer, self.texts, context, where)
        self.labels = resolve_labels(label_list, root, lambda: (e.label for e in self.examples), context, where)
        check_num_classes(num_classes, len(self.labels), self.labels.source)
        ids = [self.labels.index(e.label, e.where) for e in self.examples]
        pairs = [e.pair for e in self.examples] if self.examples[0].pair is not None else None
        limit = self.max_length()
        encoded = self.tokenizer.encode([e.text for e in self.examples], pairs, max_length=limit)
        self._report_truncation(encoded, limit)
        self.features = encoded.rows()
        for row, label in zip(self.features, ids):
            row["labels"] = label
        if sort_by_length:
            self.sort_by_length()

    @classmethod
    def reads_pairs(cls, options: Mapping) -> bool:
        """Whether a dataset configured with ``options`` holds text pairs (prediction then splits tabs)."""
        return False

    def texts(self) -> Iterable[str]:
        for e in self.examples:
            yield e.text
            if e.pair is not None:
                yield e.pair


@DATASETS.register
class TextClassificationDataset(ClassificationDataset):
    """Delimited lines ``text<TAB>label`` (``format: csv``: quoted ``text,label``).

    Args:
        root: dataset folder; ``list``: the data file relative to it.
        tokenizer: ``{type: WordPiece | Chars, vocab: ...}``; without ``vocab`` the training set builds one.
        label_list: a file (relative to ``root``), an inline list, or None to collect the training labels.
        header: skip the first line. max_samples: keep the first N samples.
        sort_by_length: order samples by length (for evaluation: less padding per batch).
    """

    columns = ("text", "label")

    def __init__(self, root: str, list: str, tokenizer: Mapping | None = None,
                 label_list: str | Sequence[str] | None = None, format: str = "tsv", header: bool = False,
                 max_samples: int | None = None, sort_by_length: bool = False, num_classes: int | None = None,
                 context: DataContext | None = None):
        path = data_path(root, list)
        examples = [self._example(f"{path}:{n}", fields)
                    for n, fields in read_columns(path, len(self.columns), self.columns, format, header)]
        super().__init__(examples, root, tokenizer, label_list, max_samples, sort_by_length, num_classes,
                         context, str(path))

    @staticmethod
    def _example(where: str, fields: list[str]) -> Example:
        return Example(where, _check_text(fields[0], where), None, fields[1].strip())


@DATASETS.register
class TextPairDataset(TextClassificationDataset):
    """Delimited lines ``text_a<TAB>text_b<TAB>label`` (sentence-pair matching, e.g. AFQMC)."""

    columns = ("text_a", "text_b", "label")

    @classmethod
    def reads_pairs(cls, options: Mapping) -> bool:
        return True

    @staticmethod
    def _example(where: str, fields: list[str]) -> Example:
        return Example(where, _check_text(fields[0], where, "text_a"), _check_text(fields[1], where, "text_b"),
                       fields[2].strip())


@DATASETS.register
class JsonlClassificationDataset(ClassificationDataset):
    """JSON lines with a text field, an optional second text field (pairs) and a label field."""

    @classmethod
    def reads_pairs(cls, options: Mapping) -> bool:
        return bool(options.get("pair_field"))

    def __init__(self, root: str, list: str, tokenizer: Mapping | None = None,
                 label_list: str | Sequence[str] | None = None, text_field: str = "text",
                 pair_field: str | None = None, label_field: str = "label", max_samples: int | None = None,
                 sort_by_length: bool = False, num_classes: int | None = None, context: DataContext | None = None):
        path = data_path(root, list)
        fields = [text_field, label_field] + ([pair_field] if pair_field else [])
        examples = []
        for n, obj in read_jsonl(path, fields):
            where = f"{path}:{n}"
            pair = _check_text(obj[pair_field], where, pair_field) if pair_field else None
            examples.append(Example(where, _check_text(obj[text_field], where, text_field), pair,
                                    str(obj[label_field]).strip()))
        super().__init__(examples, root, tokenizer, label_list, max_samples, sort_by_length, num_classes,
                         context, str(path))

