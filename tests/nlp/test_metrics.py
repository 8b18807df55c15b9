"""NLP metrics against hand computations: accuracy / macro-F1, seqeval entity scores (BIO, BIOES), MLM."""

import math
import sys
from pathlib import Path

import numpy as np
import pytest

from kits.nlp.data import DataContext, NERDataset
from kits.nlp.metrics import (ClassificationMetric, MaskedLMMetric, NERMetric, confusion_matrix, entity_scores,
                              macro_f1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlp_fixtures import write_ner  # noqa: E402


def test_accuracy_macro_f1_and_confusion_image(tmp_path):
    gold, pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    logits = np.eye(4)[pred]
    metric = ClassificationMetric(["a", "b", "c", "never"], image_path=tmp_path / "cm.png")
    metric.update({"logits": logits[:4]}, {"labels": np.array(gold[:4])})
    metric.update({"logits": logits[4:]}, {"labels": np.array(gold[4:])})
    out = metric.compute()
    # per class F1 = 2TP / (predicted + actual): a 2/4, b 4/5, c 2/3; 'never' occurs nowhere and is left out
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert out["f1/b"] == pytest.approx(0.8) and out["f1/never"] == 0.0
    assert confusion_matrix(gold, pred, 3).tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    assert macro_f1(np.zeros((2, 2), int)) == 0.0


def test_seqeval_entity_scores_bio():
    gold = [["B-PER", "I-PER", "O", "B-LOC", "I-LOC", "O"], ["B-ORG", "I-ORG", "O"], ["O", "O", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-LOC", "O", "O"], ["B-ORG", "I-ORG", "O"], ["B-PER", "O", "O"]]
    # gold PER, LOC, ORG; predicted PER, LOC(3..3, wrong end), ORG, PER(extra): 2 correct of 4 / of 3
    out = entity_scores(gold, pred, "BIO")
    assert out["precision"] == pytest.approx(2 / 4) and out["recall"] == pytest.approx(2 / 3)
    assert out["f1"] == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))
    assert out["f1/ORG"] == 1.0 and out["f1/LOC"] == 0.0 and out["f1/PER"] == pytest.approx(2 / 3)


def test_seqeval_entity_scores_bioes_and_strict_mode():
    gold = [["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "E-ORG"]]
    pred = [["B-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "E-ORG", "O"]]
    out = entity_scores(gold, pred, "BIOES")
    assert out["precision"] == out["recall"] == out["f1"] == pytest.approx(2 / 3)
    assert entity_scores(gold, pred, "BIOES", strict=True)["f1"] == pytest.approx(2 / 3)
    # an entity that starts with I-: the conlleval reading accepts it, strict BIOES does not
    loose = [["I-PER", "E-PER", "O", "S-LOC"], ["B-ORG", "I-ORG", "E-ORG"]]
    assert entity_scores(gold, loose, "BIOES")["f1"] == 1.0
    strict = entity_scores(gold, loose, "BIOES", strict=True)  # finds LOC and ORG only: P 2/2, R 2/3
    assert strict["precision"] == 1.0 and strict["recall"] == pytest.approx(2 / 3)
    assert strict["f1"] == pytest.approx(0.8)


def test_ner_metric_scores_whole_sentences_through_the_dataset(tmp_path):
    root = write_ner(tmp_path, "t.json").parent
    ds = NERDataset(str(root), "t.json", tokenizer={"type": "Chars", "max_length": 6}, add_special_tokens=False,
                    context=DataContext(tmp_path / "o", writable=True))
    batch = ds.collate([ds[i] for i in range(len(ds))])
    tags = np.where(batch["labels"] == -100, -1, batch["labels"])  # a perfect tagger of the kept tokens
    metric = NERMetric(ds)
    metric.update({"tags": tags}, batch)
    out = metric.compute()
    # 13 gold entities; truncation at 6 characters cuts 华为公司 (4..7) to 华为 (4..5): 12 right of 13
    assert out["precision"] == pytest.approx(12 / 13) and out["recall"] == pytest.approx(12 / 13)
    assert out["f1/PER"] == 1.0 and out["f1/ORG"] == pytest.approx(2 * 1 / 2 * 1 / 2 / (1 / 2 + 1 / 2))
    logits = np.eye(ds.num_classes)[np.where(tags < 0, 0, tags)] * 5.0  # softmax models give logits
    metric.reset()
    metric.update({"logits": logits}, batch)
    assert metric.compute()["f1"] == pytest.approx(12 / 13)


def test_masked_lm_metric_matches_hand_cross_entropy():
    logits = np.zeros((1, 3, 4), np.float32)
    logits[0, 1] = [2.0, 0.0, 0.0, 0.0]
    logits[0, 2] = [0.0, 0.0, 1.0, 0.0]
    labels = np.array([[-100, 0, 3]])
    metric = MaskedLMMetric()
    metric.update({"logits": logits}, {"labels": labels})
    out = metric.compute()
    ce1 = -2.0 + math.log(math.exp(2) + 3)
    ce2 = math.log(math.e + 3)
    assert out["mlm_accuracy"] == 0.5
    assert out["mlm_loss"] == pytest.approx((ce1 + ce2) / 2, rel=1e-6)
    assert out["perplexity"] == pytest.approx(math.exp((ce1 + ce2) / 2), rel=1e-6)
