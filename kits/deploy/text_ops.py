"""Text pre- and post-processing: tokenization, CRF Viterbi decoding and entity spans, in numpy.

One implementation for both sides: the NLP kit's CRF models decode their exported emissions with
``viterbi`` (``eval_outputs``), and the runtime runs the same code as the ``CRFDecode`` op.

``Tokenize`` rebuilds the NLP kit's tokenizer from the vocab file exported beside the model
(WordPiece or one token per character, with the same normalisation, special tokens and
truncation), so raw text goes in; token-classification samples also carry the word of every
token and the character span of every word, which ``TokenEntities`` maps entities back to.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import EngineMissingError, InputError, SpecError, did_you_mean
from .ops import POSTPROCESS, PREPROCESS, PostContext
from .spec import _sha256

PAD, UNK, CLS, SEP, MASK = "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"
SPECIAL_TOKENS = (PAD, UNK, CLS, SEP, MASK)
TOKENIZER_KINDS = ("wordpiece", "chars")
UNITS = {"chars": r"\S", "words": r"\S+"}   # what a tagger labels: characters (no spaces) or words


# -- tokenization -----------------------------------------------------------------------------
def read_vocab(path: str | Path) -> dict[str, int]:
    """One token per line; the line number is the id."""
    with open(path, encoding="utf-8") as fh:
        return {line.rstrip("\n"): i for i, line in enumerate(fh)}


def build_tokenizer(vocab: dict[str, int], kind: str = "wordpiece", lowercase: bool = True):
    """A ``tokenizers.Tokenizer``: BERT WordPiece, or one token per non-space character, with the
    special tokens matched before normalisation and the ``[CLS] a [SEP] (b [SEP])`` template."""
    try:
        from tokenizers import AddedToken, Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    except ImportError:
        raise EngineMissingError("text models need the tokenizers package; install it with "
                                 "`pip install -e .[nlp]`") from None
    if kind == "wordpiece":
        backend = Tokenizer(models.WordPiece(vocab, unk_token=UNK, max_input_chars_per_word=100))
        backend.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                        strip_accents=None, lowercase=lowercase)
        backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    elif kind == "chars":
        backend = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
        if lowercase:
            backend.normalizer = normalizers.Lowercase()
        backend.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Split(Regex("."), behavior="isolated")])
    else:
        raise SpecError(f"tokenizer kind '{kind}' is not one of {', '.join(TOKENIZER_KINDS)}."
                        f"{did_you_mean(kind, TOKENIZER_KINDS)}")
    present = [t for t in SPECIAL_TOKENS if t in vocab]
    backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in present])
    if CLS in vocab and SEP in vocab:
        backend.post_processor = processors.TemplateProcessing(
            single=f"{CLS} $A {SEP}", pair=f"{CLS} $A {SEP} $B:1 {SEP}:1",
            special_tokens=[(CLS, vocab[CLS]), (SEP, vocab[SEP])])
    return backend


def split_units(text: str, units: str) -> tuple[list[str], list[tuple[int, int]]]:
    """The units a tagger labels and their ``[start, end)`` character spans in ``text``."""
    found = list(re.finditer(UNITS[units], text))
    return [m.group() for m in found], [m.span() for m in found]


@PREPROCESS.register
class Tokenize:
    """Raw text (``text``, or a string given to predict) -> ``input_ids``, ``token_type_ids`` and
    ``attention_mask`` (1-D int64), cut to ``max_length`` tokens.

    vocab: the vocab file in the model directory (checked against ``sha256``). kind: ``wordpiece``
    or ``chars``. units: ``chars`` / ``words`` split the text into the units a tagger labels and
    keep ``word_ids`` (word of each token, -1 for none) and ``spans`` (characters of each unit).
    pairs: the sample's ``text_pair``, else a tab in the text, gives the second text of a pair
    (empty when there is none).
    base_dir is given by the runtime (the model directory), never in deploy.yml. A sample that
    already holds ``input_ids`` passes unchanged.
    """

    def __init__(self, vocab: str, sha256: str | None = None, kind: str = "wordpiece", lowercase: bool = True,
                 max_length: int = 512, add_special_tokens: bool = True, units: str | None = None,
                 pairs: bool = False, base_dir: str | Path | None = None):
        if kind not in TOKENIZER_KINDS:
            raise SpecError(f"Tokenize kind '{kind}' is not one of {', '.join(TOKENIZER_KINDS)}."
                            f"{did_you_mean(kind, TOKENIZER_KINDS)}")
        if units is not None and units not in UNITS:
            raise SpecError(f"Tokenize units '{units}' is not one of {', '.join(UNITS)}.{did_you_mean(units, UNITS)}")
        if Path(vocab).name != vocab:
            raise SpecError(f"Tokenize vocab must be a file name in the model directory, got '{vocab}'")
        self.vocab, self.sha256, self.kind, self.lowercase = vocab, sha256, kind, lowercase
        self.max_length, self.add_special_tokens = int(max_length), add_special_tokens
        self.units, self.pairs = units, pairs
        self.base_dir, self._backend = base_dir, None
        if base_dir is not None:
            self.backend()  # a missing or replaced vocab fails when the model is loaded, not on the first text

    def backend(self):
        if self._backend is None:
            if self.base_dir is None:
                raise SpecError("Tokenize needs the model directory to find its vocab; build the pipeline with "
                                "build_pipeline(..., base_dir=model_dir)")
            path = Path(self.base_dir) / self.vocab
            if not path.is_file():
                raise SpecError(f"{path} is named by the Tokenize op of deploy.yml but missing; re-export the model")
            if self.sha256 and _sha256(path) != self.sha256:
                raise SpecError(f"{path} does not match the sha256 in deploy.yml (corrupt or replaced vocab)")
            backend = build_tokenizer(read_vocab(path), self.kind, self.lowercase)
            backend.enable_truncation(self.max_length, strategy="longest_first")
            self._backend = backend
        return self._backend

    def __call__(self, sample: dict) -> dict:
        if "input_ids" in sample and "text" not in sample:  # token ids (e.g. a .jsonl of tensors) pass as they are
            return sample
        text = sample.get("text", sample.get("path"))  # predict("some text") arrives as {'path': 'some text'}
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"this model takes text; got {text!r}")
        out = {**sample, "text": text}
        if self.units:
            words, spans = split_units(text, self.units)
            enc = self.backend().encode(words, is_pretokenized=True, add_special_tokens=self.add_special_tokens)
            out["word_ids"] = np.asarray([-1 if w is None else w for w in enc.word_ids], np.int64)
            out["spans"] = spans
        elif self.pairs:
            if "text_pair" in sample:
                first, second = text, sample["text_pair"]
            else:
                first, second = text.split("\t", 1) if "\t" in text else (text, "")
            enc = self.backend().encode(first, second, add_special_tokens=self.add_special_tokens)
        else:
            enc = self.backend().encode(text, add_special_tokens=self.add_special_tokens)
        out["input_ids"] = np.asarray(enc.ids, np.int64)
        out["token_type_ids"] = np.asarray(enc.type_ids, np.int64)
        out["attention_mask"] = np.ones(len(enc.ids), np.int64)
        return out


# -- CRF decoding ---------------------------------------------------------------------------
def viterbi(emissions: np.ndarray, mask: np.ndarray, transitions: np.ndarray, start: np.ndarray,
            end: np.ndarray, pad_tag: int = -1) -> np.ndarray:
    """Best tag path of a linear-chain CRF per sequence, [B, T] int64.

    emissions [B, T, K]; mask [B, T]: the positions that get a tag (they are linked in order,
    holes skipped); transitions [K, K] (tag i -> tag j), start / end [K]. Untagged positions get
    ``pad_tag``. The float32 sums and first-index tie breaks follow the kit's paddle CRF.
    """
    emissions = np.asarray(emissions, np.float32)
    mask = np.asarray(mask).astype(bool)
    batch, steps, tags = emissions.shape
    if steps == 0:
        return np.zeros((batch, 0), np.int64)
    order = np.argsort(~mask, axis=1, kind="stable")  # tagged positions first, in order
    packed = np.take_along_axis(emissions, order[..., None], axis=1)
    valid = np.arange(steps)[None] < mask.sum(1, keepdims=True)
    transitions = np.asarray(transitions, np.float32)
    score = np.asarray(start, np.float32)[None] + packed[:, 0]
    keep = np.broadcast_to(np.arange(tags), (batch, tags))
    pointers = []
    for t in range(1, steps):
        step = score[:, :, None] + transitions[None]
        here = valid[:, t:t + 1]
        score = np.where(here, step.max(1) + packed[:, t], score)
        pointers.append(np.where(here, step.argmax(1), keep))
    best = (score + np.asarray(end, np.float32)[None]).argmax(1)
    path = [best]
    rows = np.arange(batch)
    for pointer in reversed(pointers):
        best = pointer[rows, best]
        path.append(best)
    packed_tags = np.where(valid, np.stack(path[::-1], axis=1), pad_tag).astype(np.int64)
    out = np.empty_like(packed_tags)
    np.put_along_axis(out, order, packed_tags, axis=1)
    return out


def split_crf_table(table: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The exported CRF table [K + 2, K] -> transitions [K, K], start [K], end [K]."""
    table = np.asarray(table, np.float32)
    if table.ndim != 2 or table.shape[0] != table.shape[1] + 2:
        raise SpecError(f"a CRF table must be [K + 2, K] (transitions, start, end), got shape {list(table.shape)}")
    k = table.shape[1]
    return table[:k], table[k], table[k + 1]


@POSTPROCESS.register
class CRFDecode:
    """Viterbi over the emissions ``source`` at the positions of ``mask`` with the CRF table
    ``transitions`` (all model outputs) -> output ``tags`` (tag id per token, -1 untagged)."""

    def __init__(self, source: str = "logits", mask: str = "tag_mask", transitions: str = "transitions"):
        self.source, self.mask, self.transitions = source, mask, transitions

    def __call__(self, ctx: PostContext) -> None:
        emissions, mask = ctx.get(self.source), ctx.get(self.mask)
        ctx.outputs["tags"] = viterbi(emissions[None], mask[None], *split_crf_table(ctx.get(self.transitions)))[0]


# -- entities -------------------------------------------------------------------------------
def _parts(tag: str) -> tuple[str, str]:
    """('B', 'PER') from 'B-PER'; a bare prefix has type '_'."""
    return tag[0], tag[1:].split("-", 1)[-1] or "_"


_ENDS_AFTER = {("B", "B"), ("B", "S"), ("B", "O"), ("I", "B"), ("I", "S"), ("I", "O")}
_STARTS_AT = {("E", "E"), ("E", "I"), ("S", "E"), ("S", "I"), ("O", "E"), ("O", "I")}


def entity_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) word index of every entity in BIO / BIOES tags, read leniently as
    conlleval does (the NLP kit's metric): an I- after O or another type opens an entity."""
    chunks, begin = [], 0
    prev, prev_type = "O", ""
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = _parts(tag)
        ends = prev in ("E", "S") or (prev, prefix) in _ENDS_AFTER or (prev not in ("O", ".") and prev_type != kind)
        if ends:
            chunks.append((prev_type, begin, i - 1))
        if prefix in ("B", "S") or (prev, prefix) in _STARTS_AT or (prefix not in ("O", ".") and prev_type != kind):
            begin = i
        prev, prev_type = prefix, kind
    return chunks


def first_tokens(word_ids: np.ndarray, num_words: int) -> np.ndarray:
    """Token position of each word's first token; -1 for a word with none (cut by truncation)."""
    starts = np.full(num_words, -1, np.int64)
    for position, word in enumerate(np.asarray(word_ids)):
        if 0 <= word < num_words and starts[word] < 0:
            starts[word] = position
    return starts


@POSTPROCESS.register
class TokenEntities:
    """Tags per token (output ``tags`` when CRFDecode ran, else the argmax of ``source``) ->
    ``tags`` per word (label names; ``O`` for a word without a token) and ``entities``:
    type, start, end (character offsets in the input text) and text."""

    def __init__(self, source: str = "logits"):
        self.source = source

    def __call__(self, ctx: PostContext) -> None:
        sample = ctx.sample
        if "word_ids" not in sample or "spans" not in sample:
            raise SpecError("TokenEntities needs a Tokenize op with 'units' in the preprocessing")
        token_tags = ctx.outputs["tags"] if "tags" in ctx.outputs else ctx.get(self.source).argmax(-1)
        spans, text = sample["spans"], sample["text"]
        names = []
        for position in first_tokens(sample["word_ids"], len(spans)):
            tag = int(token_tags[position]) if position >= 0 else -1
            names.append(ctx.label_name(tag) or "O")
        ctx.result["tags"] = names
        ctx.result["entities"] = [{"type": kind, "start": spans[a][0], "end": spans[b][1],
                                   "text": text[spans[a][0]:spans[b][1]]} for kind, a, b in entity_chunks(names)]
