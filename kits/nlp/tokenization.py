"""Tokenizers over the ``tokenizers`` library: BERT WordPiece and Chinese characters.

Both produce BERT-style inputs (``[CLS] a [SEP]`` or ``[CLS] a [SEP] b [SEP]`` with token types 0/1),
character offsets and word ids, so word-level labels can be put on the first sub-token of each word.
"""

from __future__ import annotations

import collections
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .registry import TOKENIZERS

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
IGNORE_INDEX = -100


def load_vocab(path: str | os.PathLike) -> dict[str, int]:
    """A vocab file, one token per line; the line number is the id."""
    with open(path, encoding="utf-8") as fh:
        tokens = [line.rstrip("\n") for line in fh]
    return {tok: i for i, tok in enumerate(tokens)}


def save_vocab(tokens: Sequence[str], path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    bad = [t for t in tokens if not t or "\n" in t]
    if bad:
        raise ValueError(f"vocab tokens must be non-empty single lines, got {bad[:3]}")
    path.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    return path


def build_char_vocab(texts: Iterable[str | Sequence[str]], min_freq: int = 1, max_size: int | None = None,
                     lowercase: bool = False) -> list[str]:
    """Special tokens, then characters by falling frequency (ties by first appearance); spaces are skipped."""
    counts: collections.Counter[str] = collections.Counter()
    for text in texts:
        for ch in ("".join(text) if not isinstance(text, str) else text):
            if not ch.isspace():
                counts[ch.lower() if lowercase else ch] += 1
    chars = [c for c, n in counts.most_common() if n >= min_freq and c not in SPECIAL_TOKENS]
    if max_size is not None:
        chars = chars[: max(0, max_size - len(SPECIAL_TOKENS))]
    return list(SPECIAL_TOKENS) + chars


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int], label_all_subtokens: bool = False,
                 ignore_index: int = IGNORE_INDEX) -> list[int]:
    """Token labels from word labels: the first sub-token of a word gets its label, the rest (and
    special tokens) ``ignore_index``; with ``label_all_subtokens`` every sub-token gets it."""
    labels, previous = [], None
    for word in word_ids:
        if word is None:
            labels.append(ignore_index)
        elif word != previous or label_all_subtokens:
            labels.append(int(word_labels[word]))
        else:
            labels.append(ignore_index)
        previous = word
    return labels


@dataclass
class Encoded:
    """A tokenized batch before padding (one list per sample)."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]]
    offsets: list[list[tuple[int, int]]]
    word_ids: list[list[int | None]]
    num_truncated: int = 0
    labels: list | None = None

    def __len__(self):
        return len(self.input_ids)

    def rows(self) -> list[dict]:
        """One feature dict per sample (what a dataset returns)."""
        out = []
        for i, ids in enumerate(self.input_ids):
            row = {"input_ids": ids, "token_type_ids": self.token_type_ids[i], "attention_mask": [1] * len(ids)}
            if self.labels is not None:
                row["labels"] = self.labels[i]
            out.append(row)
        return out


class Tokenizer:
    """Wraps a ``tokenizers.Tokenizer`` with BERT special tokens; build with ``wordpiece`` / ``chars``."""

    def __init__(self, backend, max_length: int = 512, kind: str = "wordpiece"):
        self.backend, self.max_length, self.kind = backend, max_length, kind
        missing = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is None]
        if missing:
            raise ValueError(f"the vocabulary lacks special tokens {missing}")
        self.pad_id, self.unk_id = backend.token_to_id(PAD), backend.token_to_id(UNK)
        self.cls_id, self.sep_id, self.mask_id = (backend.token_to_id(t) for t in (CLS, SEP, MASK))

    @classmethod
    def wordpiece(cls, vocab_file: str | os.PathLike, lowercase: bool = True, max_length: int = 512) -> "Tokenizer":
        """BERT WordPiece from a vocab.txt (Chinese characters are split one by one, as BERT does)."""
        from tokenizers import Tokenizer as Backend, decoders, models, normalizers, pre_tokenizers

        backend = Backend(models.WordPiece(load_vocab(vocab_file), unk_token=UNK, max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=None, lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
        backend.decoder = decoders.WordPiece(prefix="##")
        return cls(_with_template(backend), max_length, "wordpiece")

    @classmethod
    def chars(cls, vocab_file: str | os.PathLike, lowercase: bool = False, max_length: int = 512) -> "Tokenizer":
        """One token per non-space character; characters outside the vocab become [UNK]."""
        from tokenizers import Regex, Tokenizer as Backend, models, normalizers, pre_tokenizers

        backend = Backend(models.WordLevel(load_vocab(vocab_file), unk_token=UNK))
        if lowercase:
            backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")])
        return cls(_with_template(backend), max_length, "chars")

    @classmethod
    def pretrained(cls, name: str, max_length: int | None = None) -> "Tokenizer":
        """The tokenizer of a named pretrained encoder (e.g. ``minilm_l6_en``)."""
        from .pretrained import VOCAB_PRESETS, vocab_file

        preset = dict(VOCAB_PRESETS.get(name, {}))
        if max_length is not None:
            preset["max_length"] = max_length
        return cls.wordpiece(vocab_file(name), **preset)

    @property
    def vocab_size(self) -> int:
        return self.backend.get_vocab_size(with_added_tokens=True)

    def token_to_id(self, token: str) -> int | None:
        return self.backend.token_to_id(token)

    def id_to_token(self, index: int) -> str | None:
        return self.backend.id_to_token(index)

    def tokenize(self, text: str) -> list[str]:
        return self.backend.encode(text, add_special_tokens=False).tokens

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.backend.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def encode(self, texts: Sequence[str], pairs: Sequence[str] | None = None, max_length: int | None = None,
               add_special_tokens: bool = True) -> Encoded:
        """Tokenize texts (or text pairs); longer inputs are cut to ``max_length`` tokens and counted."""
        if pairs is not None and len(pairs) != len(texts):
            raise ValueError(f"{len(texts)} texts but {len(pairs)} pair texts")
        inputs = list(texts) if pairs is None else list(zip(texts, pairs))
        return self._run(inputs, max_length, add_special_tokens, is_pretokenized=False)

    def encode_words(self, words: Sequence[Sequence[str]], labels: Sequence[Sequence[int]] | None = None,
                     max_length: int | None = None, add_special_tokens: bool = True,
                     label_all_subtokens: bool = False) -> Encoded:
        """Tokenize pre-split words (NER); word labels move to the first sub-token of each word."""
        encoded = self._run([list(w) for w in words], max_length, add_special_tokens, is_pretokenized=True)
        if labels is not None:
            if len(labels) != len(words):
                raise ValueError(f"{len(words)} word lists but {len(labels)} label lists")
            encoded.labels = [align_labels(ids, lab, label_all_subtokens) for ids, lab in zip(encoded.word_ids, labels)]
        return encoded

    def _run(self, inputs, max_length, add_special_tokens, is_pretokenized) -> Encoded:
        limit = max_length or self.max_length
        self.backend.enable_truncation(limit, strategy="longest_first")
        try:
            encs = self.backend.encode_batch(inputs, is_pretokenized=is_pretokenized,
                                             add_special_tokens=add_special_tokens)
        finally:
            self.backend.no_truncation()
        return Encoded(
            input_ids=[e.ids for e in encs], token_type_ids=[e.type_ids for e in encs],
            offsets=[e.offsets for e in encs], word_ids=[e.word_ids for e in encs],
            num_truncated=sum(bool(e.overflowing) for e in encs))


def _with_template(backend):
    from tokenizers import AddedToken, processors

    # matched before normalisation and splitting, so "[MASK]" in a text stays one token
    present = [t for t in SPECIAL_TOKENS if backend.token_to_id(t) is not None]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])
    cls_id, sep_id = backend.token_to_id(CLS), backend.token_to_id(SEP)
    if cls_id is not None and sep_id is not None:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, cls_id), (SEP, sep_id)])
    return backend


def pad_batch(rows: Sequence[dict], pad_id: int = 0, label_pad: int = IGNORE_INDEX,
              multiple_of: int | None = None) -> dict[str, np.ndarray]:
    """Pad a list of feature dicts to the batch's longest sequence (dynamic padding) as int64 arrays.

    Token-level ``labels`` are padded with ``label_pad``; scalar labels become a [B] array.
    """
    longest = max(len(r["input_ids"]) for r in rows)
    if multiple_of:
        longest = -(-longest // multiple_of) * multiple_of
    fill = {"input_ids": pad_id, "token_type_ids": 0, "attention_mask": 0, "labels": label_pad}
    out = {}
    for key in rows[0]:
        values = [r[key] for r in rows]
        if np.ndim(values[0]) == 0:
            out[key] = np.asarray(values, dtype=np.int64)
            continue
        array = np.full((len(rows), longest), fill.get(key, 0), dtype=np.int64)
        for i, v in enumerate(values):
            array[i, : len(v)] = v
        out[key] = array
    return out


@TOKENIZERS.register(name="WordPiece")
def wordpiece_tokenizer(vocab: str | None = None, lowercase: bool = True, max_length: int | None = None,
                        min_freq: int = 2, max_size: int = 8000) -> Tokenizer:
    """``vocab``: a vocab.txt path, or a pretrained encoder name (its casing and length are then used).

    Without ``vocab`` a training set learns one from its texts (``min_freq``, ``max_size``; see
    ``VOCAB_BUILDERS``) and the run saves it as ``vocab.txt`` in its output directory.
    """
    if vocab is None:
        raise ValueError("WordPiece needs a vocab file or pretrained name; datasets learn one from training texts")
    if not Path(vocab).is_file():
        return Tokenizer.pretrained(vocab, max_length=max_length)
    return Tokenizer.wordpiece(vocab, lowercase=lowercase, max_length=max_length or 512)


@TOKENIZERS.register(name="Chars")
def char_tokenizer(vocab: str | None = None, lowercase: bool = False, max_length: int = 512, min_freq: int = 1,
                   max_size: int | None = None) -> Tokenizer:
    """One token per character. Without ``vocab`` a training set collects its characters (see WordPiece)."""
    if vocab is None:
        raise ValueError("Chars needs a vocab file; datasets build one from training texts")
    if not Path(vocab).is_file():
        raise FileNotFoundError(f"vocabulary file not found: {vocab}")
    return Tokenizer.chars(vocab, lowercase=lowercase, max_length=max_length)


def learn_wordpiece_vocab(texts: Iterable[str], min_freq: int = 2, max_size: int = 8000, lowercase: bool = True,
                          **_) -> list[str]:
    """A WordPiece vocabulary learned from texts with the ``tokenizers`` trainer; special tokens first."""
    from tokenizers import Tokenizer as Backend, models, normalizers, pre_tokenizers, trainers

    backend = Backend(models.WordPiece(unk_token=UNK))
    backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                    strip_accents=None, lowercase=lowercase)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.WordPieceTrainer(vocab_size=max_size, min_frequency=min_freq,
                                        special_tokens=list(SPECIAL_TOKENS), show_progress=False)
    backend.train_from_iterator(texts, trainer)
    # the trainer breaks frequency ties in a per-process random order; ids must not depend on the process
    learned = set(backend.get_vocab()) - set(SPECIAL_TOKENS)
    return list(SPECIAL_TOKENS) + sorted(learned)


def learn_char_vocab(texts: Iterable[str], min_freq: int = 1, max_size: int | None = None, lowercase: bool = False,
                     **_) -> list[str]:
    return build_char_vocab(texts, min_freq=min_freq, max_size=max_size, lowercase=lowercase)


# How each tokenizer type learns a vocabulary from training texts (keyword arguments: its config keys).
VOCAB_BUILDERS = {"WordPiece": learn_wordpiece_vocab, "Chars": learn_char_vocab}
