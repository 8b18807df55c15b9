"""Tiny training runs through the shared Trainer, and masked-LM pretraining -> fine-tuning."""

import sys
from pathlib import Path

import numpy as np
import pytest

from kits.core import runner
from kits.core.callbacks import Callback
from kits.core.config import Config
from kits.core.pretrained import load_state
from kits.nlp.task import MaskedLMTask, task_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from nlp_fixtures import NER_BIO, TINY_ENCODER, bigru_config, classifier_config, tiny_trainer  # noqa: E402


class Losses(Callback):
    name = "losses"

    def __init__(self):
        self.values = []

    def on_step_end(self, state, control, model, logs):
        self.values.append(logs["loss"])


def run(cfg: dict, path="tiny.yml"):
    cfg = Config(cfg, path=path)
    losses = Losses()
    summary = runner.train(cfg, task_for(cfg), callbacks=[losses])
    return summary, losses.values


def test_classifier_learns_via_the_trainer(tmp_path):
    summary, losses = run(classifier_config(tmp_path, iters=40))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    print(f"classifier loss {first:.3f} -> {last:.3f}, best accuracy {summary['best_value']}")
    assert last < 0.3 * first
    out = tmp_path / "out"
    written = {p.name for p in out.iterdir()}
    assert {"vocab.txt", "labels.txt", "best_model.safetensors", "confusion_matrix.png"} <= written
    assert (out / "labels.txt").read_text().split() == ["neg", "pos"]
    assert summary["best_metric"] == "accuracy" and summary["best_value"] == 1.0


def test_bigru_crf_learns_bioes_ner_via_the_trainer(tmp_path):
    summary, losses = run(bigru_config(tmp_path, iters=40, scheme="BIOES"))
    first, last = np.mean(losses[:4]), np.mean(losses[-4:])
    print(f"BiGRU-CRF loss {first:.2f} -> {last:.3f}, dev entity F1 {summary['best_value']}")
    assert last < 0.2 * first
    assert summary["best_metric"] == "f1" and summary["best_value"] > 0.9


def mlm_config(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir(exist_ok=True)
    (corpus / "text.txt").write_text("\n".join(t for t, _ in NER_BIO) * 4 + "\n", encoding="utf-8")
    return {"kit": "nlp", "model": {"type": "MaskedLM", "encoder": dict(TINY_ENCODER)},
            "train_dataset": {"type": "MaskedLMDataset", "root": str(corpus), "list": "text.txt",
                              "tokenizer": {"type": "Chars", "max_size": 64}},
            "optimizer": {"type": "AdamW", "lr": 0.005},
            "trainer": tiny_trainer(tmp_path / "mlm", 30)}


def test_mlm_pretrain_then_classifier_fine_tune(tmp_path):
    summary, losses = run(mlm_config(tmp_path))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    mlm_dir = tmp_path / "mlm/out"
    mlm = load_state(mlm_dir / "final_model.safetensors")
    assert any(k.startswith("head.") for k in mlm)

    # the fine-tune reads the MLM run's vocabulary and weights; encoder tensors load, the head does not
    root = tmp_path / "cls"
    root.mkdir()
    rows = ["张三在北京\tpos", "李四去上海\tneg", "王五在广州\tpos", "赵六是老师\tneg"]
    (root / "train.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    cfg = {"kit": "nlp", "pretrained": str(mlm_dir / "final_model.safetensors"),
           "model": {"type": "SequenceClassifier", "num_classes": 2, "encoder": dict(TINY_ENCODER),
                     "head": {"pooling": "mean"}},
           "train_dataset": {"type": "TextClassificationDataset", "root": str(root), "list": "train.tsv",
                             "tokenizer": {"type": "Chars", "vocab": str(mlm_dir / "vocab.txt")}},
           "optimizer": {"type": "AdamW", "lr": 0.0},
           "trainer": tiny_trainer(tmp_path / "cls", 1)}
    run(cfg)
    tuned = load_state(tmp_path / "cls/out/final_model.safetensors")
    encoder_keys = [k for k in tuned if k.startswith("encoder.")]
    assert len(encoder_keys) == len([k for k in mlm if k.startswith("encoder.")]) > 10
    for key in encoder_keys:  # lr 0: the fine-tune's encoder is exactly the pretrained one
        np.testing.assert_array_equal(tuned[key], mlm[key], err_msg=key)
    assert tuned["head.fc.weight"].shape == (32, 2) and "head.fc.weight" not in mlm


def test_mlm_task_predicts_mask_fills(tmp_path):
    run(mlm_config(tmp_path))
    cfg = Config(mlm_config(tmp_path), path="mlm.yml")
    from kits.nlp.predict import load_pipeline

    pipe = load_pipeline(cfg, tmp_path / "mlm/out/final_model.safetensors")
    assert isinstance(pipe.task, MaskedLMTask)
    out = pipe(["张三在[MASK]京工作"])
    assert out[0]["masks"] and len(out[0]["masks"][0]["tokens"]) == 5


@pytest.mark.parametrize("split", ["train_dataset.context", "val_dataset.context"])
def test_context_is_not_a_config_key(tmp_path, split):
    from kits.core.config import apply_overrides
    from kits.core.errors import ConfigError

    cfg = apply_overrides(Config(bigru_config(tmp_path), path="t.yml"), [f"{split}=x"])
    with pytest.raises(ConfigError, match="set by the task"):
        task_for(cfg).validate(cfg)


@pytest.mark.parametrize("use_crf", [False, True])
def test_encoder_token_classifier_learns_ner(tmp_path, use_crf):
    cfg = bigru_config(tmp_path, iters=40)
    cfg["model"] = {"type": "TokenClassifier", "num_classes": 7, "use_crf": use_crf, "encoder": dict(TINY_ENCODER)}
    for split in ("train_dataset", "val_dataset"):
        cfg[split]["add_special_tokens"] = True
    cfg["optimizer"] = {"type": "AdamW", "lr": 0.005}
    summary, losses = run(cfg)
    assert np.mean(losses[-4:]) < 0.3 * np.mean(losses[:4])
    assert summary["best_value"] > 0.6
