"""NLP datasets: clear errors with file and line, label lists, NER label alignment, truncation."""

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest

from kits.core.config import Config
from kits.core.errors import ConfigError, DataError
from kits.nlp.data import (CoNLLDataset, DataContext, MaskedLMDataset, NERDataset,
                           TextClassificationDataset, TextPairDataset, bucket_order)
from kits.nlp.task import task_for
from kits.nlp.tokenization import IGNORE_INDEX, SPECIAL_TOKENS, Tokenizer, save_vocab

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlp_fixtures import NER_BIO, SHARED, bioes, write_ner, write_tsv  # noqa: E402

CHARS = {"type": "Chars"}


@pytest.fixture
def words_tok(tmp_path):
    words = ["the", "movie", "was", "great", "bad", "un", "##believ", "##ably", "good", "eu", "rejects"]
    return Tokenizer.wordpiece(save_vocab(list(SPECIAL_TOKENS) + words, tmp_path / "vocab.txt"))


def test_label_not_in_list_names_file_and_line(tmp_path, words_tok):
    write_tsv(tmp_path, "d.tsv", [("the movie", "pos"), ("bad", "neg"), ("great", "meh")])
    with pytest.raises(DataError, match=r"d\.tsv:3: label 'meh' is not in the label list .*pos, neg"):
        TextClassificationDataset(str(tmp_path), "d.tsv", tokenizer=words_tok, label_list=["pos", "neg"])


def test_label_file_error_counts_the_header_line(tmp_path, words_tok):
    write_tsv(tmp_path, "d.tsv", [("the movie", "pos"), ("bad", "ne g")], header="text\tlabel")
    (tmp_path / "labels.txt").write_text("pos\nneg\n")
    with pytest.raises(DataError, match=r"d\.tsv:3: label 'ne g'.*labels\.txt"):
        TextClassificationDataset(str(tmp_path), "d.tsv", tokenizer=words_tok, label_list="labels.txt", header=True)


def test_empty_text_and_wrong_column_count_name_the_line(tmp_path, words_tok):
    (tmp_path / "e.tsv").write_text("the movie\tpos\n  \tneg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"e\.tsv:2: empty text"):
        TextClassificationDataset(str(tmp_path), "e.tsv", tokenizer=words_tok)
    (tmp_path / "c.tsv").write_text("the movie\tpos\n\ngreat\tpos\textra\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"c\.tsv:3: expected 2 columns \(text, label\) separated by tabs, found 3"):
        TextClassificationDataset(str(tmp_path), "c.tsv", tokenizer=words_tok)
    with pytest.raises(DataError, match=r"c\.tsv:1: expected 3 columns \(text_a, text_b, label\)"):
        TextPairDataset(str(tmp_path), "c.tsv", tokenizer=words_tok)
    (tmp_path / "p.tsv").write_text("the movie\tgood\t1\nbad\t\t0\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"p\.tsv:2: empty text_b"):
        TextPairDataset(str(tmp_path), "p.tsv", tokenizer=words_tok)


def test_csv_with_quotes_and_pairs_get_token_types(tmp_path, words_tok):
    (tmp_path / "d.csv").write_text('text,label\n"the movie, was great",1\nbad,0\n', encoding="utf-8")
    ds = TextClassificationDataset(str(tmp_path), "d.csv", tokenizer=words_tok, format="csv", header=True)
    assert ds.class_names == ["0", "1"] and [f["labels"] for f in ds.features] == [1, 0]
    write_tsv(tmp_path, "p.tsv", [("the movie", "was great", "1"), ("bad", "good", "0")])
    pair = TextPairDataset(str(tmp_path), "p.tsv", tokenizer=words_tok, label_list=["0", "1"])
    assert pair.features[0]["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1]
    batch = pair.collate([pair[0], pair[1]])
    assert batch["input_ids"].shape == (2, 7) and batch["attention_mask"][1].tolist() == [1] * 5 + [0, 0]
    assert batch["labels"].tolist() == [1, 0] and batch["index"].tolist() == [0, 1]


def test_json_errors_name_the_line(tmp_path):
    (tmp_path / "a.json").write_text('{"text": ["a"], "label": ["O"]}\n{"text": ["a", "b"], "label": ["O"]}\n')
    with pytest.raises(DataError, match=r"a\.json:2: 2 chars in 'text' but 1 tags in 'label'"):
        NERDataset(str(tmp_path), "a.json", tokenizer=CHARS)
    (tmp_path / "b.json").write_text('{"text": ["a"], "label": ["O"]}\n{"text": ["a"], "label": [O]}\n')
    with pytest.raises(DataError, match=r"b\.json:2: invalid JSON"):
        NERDataset(str(tmp_path), "b.json", tokenizer=CHARS)
    (tmp_path / "c.json").write_text('{"text": [], "label": []}\n')
    with pytest.raises(DataError, match=r"c\.json:1: empty text"):
        NERDataset(str(tmp_path), "c.json", tokenizer=CHARS)
    (tmp_path / "d.json").write_text('{"words": ["a"], "label": ["O"]}\n')
    with pytest.raises(DataError, match=r"d\.json:1: missing field\(s\) \['text'\]"):
        NERDataset(str(tmp_path), "d.json", tokenizer=CHARS)


def test_unknown_tag_and_bad_scheme(tmp_path):
    write_ner(tmp_path, "t.json")
    with pytest.raises(DataError, match=r"t\.json:3: label 'B-ORG' is not in the label list"):
        NERDataset(str(tmp_path), "t.json", tokenizer=CHARS, label_list=["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    write_ner(tmp_path, "s.json", scheme="BIOES")
    with pytest.raises(DataError, match=r"do not follow the BIO scheme"):
        NERDataset(str(tmp_path), "s.json", tokenizer=CHARS, scheme="BIO")
    assert NERDataset(str(tmp_path), "s.json", tokenizer=CHARS).scheme == "BIOES"


def test_built_vocab_and_labels_are_saved_and_read_back(tmp_path):
    root = write_ner(tmp_path / "data", "train.json").parent
    ctx = DataContext(tmp_path / "out", writable=True)
    train = NERDataset(str(root), "train.json", tokenizer={"type": "Chars", "max_size": 30}, context=ctx)
    assert (tmp_path / "out/vocab.txt").is_file() and train.tokenizer.vocab_size == 30
    assert (tmp_path / "out/labels.txt").read_text().split() == train.class_names
    assert train.class_names[0] == "O" and len(train.class_names) == 7
    val = NERDataset(str(root), "train.json", tokenizer={"type": "Chars"}, context=DataContext(tmp_path / "out"))
    assert val.class_names == train.class_names and val.features == train.features
    with pytest.raises(DataError, match=r"no vocab\.txt was found in .*empty: train first"):
        NERDataset(str(root), "train.json", tokenizer={"type": "Chars"}, context=DataContext(tmp_path / "empty"))
    with pytest.raises(ConfigError, match="tokenizer has 30 tokens but the model's vocab_size is 20"):
        NERDataset(str(root), "train.json", tokenizer={"type": "Chars"},
                   context=DataContext(tmp_path / "out", vocab_size=20))


def test_ner_labels_align_with_characters_through_the_dataset(tmp_path):
    root = write_ner(tmp_path, "t.json").parent
    for special in (True, False):
        ds = NERDataset(str(root), "t.json", tokenizer={"type": "Chars", "max_size": 80}, add_special_tokens=special,
                        context=DataContext(tmp_path / f"o{special}", writable=True))
        for i, (text, tags) in enumerate(NER_BIO):
            row, offset = ds.features[i], int(special)
            tokens = [ds.tokenizer.id_to_token(t) for t in row["input_ids"]]
            assert tokens[offset:offset + len(text)] == list(text)
            names = [ds.class_names[k] if k != IGNORE_INDEX else None for k in row["labels"]]
            assert names[offset:offset + len(text)] == tags.split()
            assert (names[0] is None) == special and (names[-1] is None) == special
            assert ds.word_starts[i].tolist() == list(range(offset, offset + len(text)))


def test_conll_words_label_the_first_subtoken(tmp_path, words_tok):
    (tmp_path / "d.conll").write_text("-DOCSTART- O\n\nEU B-ORG\nrejects O\nunbelievably O\n\nthe O\n"
                                      "movie B-MISC\n", encoding="utf-8")
    ds = CoNLLDataset(str(tmp_path), "d.conll", tokenizer=words_tok)
    assert [s.words for s in ds.sentences] == [["EU", "rejects", "unbelievably"], ["the", "movie"]]
    tokens = [words_tok.id_to_token(t) for t in ds.features[0]["input_ids"]]
    assert tokens == ["[CLS]", "eu", "rejects", "un", "##believ", "##ably", "[SEP]"]
    names = ds.class_names
    assert [names[k] if k >= 0 else "-" for k in ds.features[0]["labels"]] == ["-", "B-ORG", "O", "O", "-", "-", "-"]
    assert ds.word_starts[0].tolist() == [1, 2, 3]
    (tmp_path / "bad.conll").write_text("EU B-ORG\nrejects\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.conll:2: expected a token and a tag column"):
        CoNLLDataset(str(tmp_path), "bad.conll", tokenizer=words_tok)


def test_truncation_is_counted_in_the_log(tmp_path, caplog):
    root = write_ner(tmp_path, "t.json").parent
    with caplog.at_level(logging.WARNING):
        ds = NERDataset(str(root), "t.json", tokenizer={"type": "Chars", "max_length": 6}, add_special_tokens=False,
                        context=DataContext(tmp_path / "o", writable=True))
    assert "3 of 8 sequences are longer than 6 tokens and were truncated" in caplog.text
    assert max(ds.lengths) == 6 and ds.word_starts[2].tolist()[6:] == [-1, -1]
    with caplog.at_level(logging.WARNING):  # the model's max_position caps the tokenizer's limit
        NERDataset(str(root), "t.json", tokenizer={"type": "Chars", "max_length": 512}, add_special_tokens=False,
                   context=DataContext(tmp_path / "o", max_length=5))
    assert "longer than 5 tokens" in caplog.text


def test_validation_set_inherits_tokenizer_and_labels(tmp_path):
    root = write_ner(tmp_path / "data", "train.json").parent
    (root / "labels.txt").write_text("\n".join(["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]))
    other = write_ner(tmp_path / "other", "dev.json", NER_BIO[:2]).parent
    cfg = Config({"kit": "nlp", "model": {"type": "BiGRUCRF", "vocab_size": 64, "num_classes": 7},
                  "train_dataset": {"type": "NERDataset", "root": str(root), "list": "train.json",
                                    "label_list": "labels.txt", "add_special_tokens": False,
                                    "tokenizer": {"type": "Chars"}},
                  "val_dataset": {"type": "NERDataset", "root": str(other), "list": "dev.json",
                                  "add_special_tokens": False},
                  "optimizer": {"type": "Adam", "lr": 0.01},
                  "trainer": {"iters": 1, "output_dir": str(tmp_path / "out")}}, path="t.yml")
    task = task_for(cfg)
    task.validate(cfg)
    task.build_model(cfg)
    train, val = task.build_dataset(cfg, "train"), task.build_dataset(cfg, "val")
    assert val.class_names == train.class_names == (root / "labels.txt").read_text().split()
    assert val.tokenizer.vocab_size == train.tokenizer.vocab_size and len(val) == 2
    cfg["val_dataset"]["add_special_tokens"] = True
    with pytest.raises(ConfigError, match=r"BiGRUCRF expects inputs without \[CLS\]/\[SEP\]"):
        task.validate(cfg)
    cfg["val_dataset"] = {"type": "TextClassificationDataset", "root": str(root), "list": "x.tsv"}
    with pytest.raises(ConfigError, match="holds classification data but BiGRUCRF is a token_classification model"):
        task.validate(cfg)


def test_masked_lm_masks_only_real_tokens_and_is_seeded(tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(text for text, _ in NER_BIO) + "\n", encoding="utf-8")
    ds = MaskedLMDataset(str(tmp_path), "c.txt", tokenizer={"type": "Chars"}, mask_prob=0.3,
                         context=DataContext(tmp_path / "o", writable=True))
    tok = ds.tokenizer
    np.random.seed(1)
    first = ds[0]
    np.random.seed(1)
    assert (ds[0]["input_ids"] == first["input_ids"]).all()
    masked = labelled = 0
    for i in range(len(ds)):
        for _ in range(20):
            item, orig = ds[i], np.asarray(ds.features[i]["input_ids"])
            chosen = item["labels"] != IGNORE_INDEX
            assert chosen.any() and not chosen[0] and not chosen[-1]  # never [CLS] / [SEP]
            assert (item["labels"][chosen] == orig[chosen]).all()
            assert (item["input_ids"][~chosen] == orig[~chosen]).all()
            masked += int((item["input_ids"][chosen] == tok.mask_id).sum())
            labelled += int(chosen.sum())
    assert 0.7 < masked / labelled < 0.9


def test_bucket_order_groups_lengths_and_keeps_every_index():
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 200, size=1000).tolist()
    order = rng.permutation(1000).tolist()
    out = bucket_order(order, lengths, batch_size=16, chunk_batches=10, seed=3)
    assert sorted(out) == list(range(1000)) and out == bucket_order(order, lengths, 16, 10, seed=3)

    def padding(seq):
        return sum(16 * max(lengths[i] for i in seq[b:b + 16]) - sum(lengths[i] for i in seq[b:b + 16])
                   for b in range(0, 992, 16))
    assert padding(out) < 0.2 * padding(order)


def test_real_resume_lines_align(tmp_path):
    path = SHARED / "datasets/nlp/resume_ner"
    if not (path / "train.json").is_file():
        pytest.skip(f"needs {path} (shared datasets beside the repository)")
    lines = (path / "train.json").read_text(encoding="utf-8").splitlines()[:20]
    (tmp_path / "few.json").write_text("\n".join(lines) + "\n", encoding="utf-8")
    ds = NERDataset(str(tmp_path), "few.json", tokenizer={"type": "Chars"}, label_list=str(path / "labels.txt"),
                    add_special_tokens=False, context=DataContext(tmp_path / "o", writable=True))
    assert ds.scheme == "BIOES" and ds.num_classes == 20
    for line, row in zip(lines, ds.features):
        gold = json.loads(line)["label"]
        assert [ds.class_names[k] for k in row["labels"]] == gold
    assert bioes("B-X I-X O B-Y") == "B-X E-X O S-Y"


def test_wordpiece_vocabulary_is_learned_from_training_texts(tmp_path):
    from nlp_fixtures import SENTIMENT

    (tmp_path / "c.txt").write_text("\n".join(t for t, _ in SENTIMENT) + "\n", encoding="utf-8")
    ds = MaskedLMDataset(str(tmp_path), "c.txt", tokenizer={"type": "WordPiece", "min_freq": 1, "max_size": 200},
                         context=DataContext(tmp_path / "o", writable=True))
    vocab = (tmp_path / "o/vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == list(SPECIAL_TOKENS) and len(vocab) <= 200 and "movie" in vocab
    assert ds.tokenizer.tokenize("the movie") == ["the", "movie"]


def test_plain_python_use_learns_the_vocabulary_without_leaving_files(tmp_path, monkeypatch):
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    root = write_ner(tmp_path / "data", "t.json").parent
    ds = NERDataset(str(root), "t.json", tokenizer={"type": "Chars"})
    assert ds.tokenizer.tokenize(NER_BIO[0][0]) == list(NER_BIO[0][0])
    assert list((tmp_path / "tmp").iterdir()) == []
