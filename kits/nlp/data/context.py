"""What a run tells its datasets, and how they find their tokenizer and label list.

A training set may *build* what the config leaves out (a vocabulary without ``tokenizer.vocab``, a
label list without ``label_list``) and saves it as ``vocab.txt`` / ``labels.txt`` in the run's
output directory; evaluation and prediction read them back from there.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from kits.core.errors import ConfigError, DataError

from ..registry import TOKENIZERS
from ..tokenization import VOCAB_BUILDERS, Tokenizer, save_vocab
from .labels import LabelList

log = logging.getLogger(__name__)
VOCAB_FILE, LABELS_FILE = "vocab.txt", "labels.txt"
BUILD_KEYS = ("min_freq", "max_size")


@dataclass
class DataContext:
    """``directory``: where built vocab / labels live; ``writable``: this dataset may build them there.
    ``max_length`` / ``vocab_size``: the model's longest input and vocabulary (None: unknown)."""

    directory: Path | None = None
    writable: bool = False
    max_length: int | None = None
    vocab_size: int | None = None

    def file(self, name: str) -> Path | None:
        return Path(self.directory) / name if self.directory is not None else None


def resolve_tokenizer(spec: Mapping | Tokenizer | None, texts: Callable[[], Iterable[str]] | None,
                      ctx: DataContext | None, where: str) -> Tokenizer:
    """A Tokenizer from its config; a missing ``vocab`` is built (training set) or read back (others)."""
    if isinstance(spec, Tokenizer):
        return _check_size(spec, ctx)
    if not spec:
        raise ConfigError(f"{where}: no tokenizer; set train_dataset.tokenizer, e.g. {{type: Chars}} or "
                          "{type: WordPiece, vocab: minilm_l6_en}")
    spec = dict(spec)
    if spec.get("vocab") is None and ctx is None and texts is not None:
        # plain Python use: learn the vocabulary into a file that lives only while the tokenizer reads it
        with tempfile.TemporaryDirectory(prefix="kits_vocab_") as tmp:
            return resolve_tokenizer(spec, texts, DataContext(Path(tmp), writable=True), where)
    if spec.get("vocab") is None:
        spec["vocab"] = str(_vocab_file(spec, texts, ctx, where))
    try:
        tokenizer = TOKENIZERS.build(spec)
    except (FileNotFoundError, ValueError) as exc:
        raise DataError(f"{where}: cannot build the tokenizer: {exc}") from None
    return _check_size(tokenizer, ctx)


def _vocab_file(spec: dict, texts, ctx: DataContext | None, where: str) -> Path:
    target = ctx.file(VOCAB_FILE) if ctx else None
    if ctx is not None and ctx.writable and target is not None and texts is not None:
        builder = VOCAB_BUILDERS.get(spec["type"])
        if builder is None:
            raise ConfigError(f"{where}: tokenizer type {spec['type']} cannot learn a vocabulary; set tokenizer.vocab")
        options = {k: v for k, v in spec.items() if k in (*BUILD_KEYS, "lowercase")}
        tokens = builder(texts(), **options)
        save_vocab(tokens, target)
        log.info("built a %s vocabulary of %d tokens from the training texts -> %s", spec["type"], len(tokens), target)
        return target
    if target is not None and target.is_file():
        return target
    raise DataError(f"{where}: tokenizer.vocab is not set and no {VOCAB_FILE} was found"
                    f"{f' in {target.parent}' if target else ''}: train first (the training set builds the "
                    "vocabulary there) or set tokenizer.vocab to a vocab.txt")


def _check_size(tokenizer: Tokenizer, ctx: DataContext | None) -> Tokenizer:
    if ctx is not None and ctx.vocab_size is not None and tokenizer.vocab_size > ctx.vocab_size:
        raise ConfigError(f"the tokenizer has {tokenizer.vocab_size} tokens but the model's vocab_size is "
                          f"{ctx.vocab_size}; raise the model's vocab_size or cap tokenizer.max_size")
    return tokenizer


def resolve_labels(spec: str | Sequence[str] | None, root: str | Path, observed: Callable[[], Iterable[str]],
                   ctx: DataContext | None, where: str, outside_first: str | None = None) -> LabelList:
    """The label list: inline, a file (relative to ``root``), or collected from the training labels."""
    saved = ctx.file(LABELS_FILE) if ctx else None
    if isinstance(spec, (list, tuple)):
        labels = LabelList(spec, f"{where} label_list")
    elif spec:
        candidates = [Path(root) / spec, Path(spec)] + ([saved] if saved and not ctx.writable else [])
        found = next((p for p in candidates if p.is_file()), None)
        if found is None:
            raise DataError(f"label list not found: {Path(root) / spec}")
        labels = LabelList.from_file(found)
    elif ctx is None or ctx.writable or saved is None:
        labels = LabelList.collect(observed(), where, outside_first)
        log.info("collected %d labels from %s", len(labels), where)
    elif saved.is_file():
        labels = LabelList.from_file(saved)
    else:
        raise DataError(f"{where}: label_list is not set and no {LABELS_FILE} was found in {saved.parent}: "
                        "train first (the training set saves its labels there) or set label_list")
    if ctx is not None and ctx.writable and saved is not None:
        labels.save(saved)
    return labels
