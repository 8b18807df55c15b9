import itertools
import json
from pathlib import Path

import numpy as np
import paddle
import pytest

from kits.nlp.models import CRF, BiGRUCRF, TokenClassifier
from kits.nlp.tokenization import Tokenizer, build_char_vocab, pad_batch, save_vocab

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


def _path_score(crf, emissions, path):
    trans, start, end = crf.transitions.numpy(), crf.start.numpy(), crf.end.numpy()
    score = start[path[0]] + end[path[-1]] + emissions[0, path[0]]
    for t in range(1, len(path)):
        score += trans[path[t - 1], path[t]] + emissions[t, path[t]]
    return score


@pytest.fixture
def tiny_problem():
    paddle.seed(0)
    rng = np.random.default_rng(0)
    crf = CRF(3)
    emissions = rng.normal(size=(4, 5, 3)).astype("float32")
    # a full row, a row with holes (sub-tokens), a single position, a padded tail
    mask = np.array([[1, 1, 1, 1, 1], [1, 0, 1, 1, 0], [0, 1, 0, 0, 0], [1, 1, 1, 0, 0]], dtype=bool)
    tags = rng.integers(0, 3, size=(4, 5))
    tags[~mask] = -100
    return crf, emissions, mask, tags


def test_nll_and_viterbi_match_brute_force(tiny_problem):
    crf, emissions, mask, tags = tiny_problem
    nll = crf.nll(paddle.to_tensor(emissions), paddle.to_tensor(tags), paddle.to_tensor(mask)).numpy()
    decoded = crf.decode(paddle.to_tensor(emissions), paddle.to_tensor(mask)).numpy()
    for b in range(len(mask)):
        em, gold = emissions[b][mask[b]], tags[b][mask[b]]
        paths = list(itertools.product(range(3), repeat=len(em)))
        scores = np.array([_path_score(crf, em, p) for p in paths], dtype=np.float64)
        log_z = scores.max() + np.log(np.exp(scores - scores.max()).sum())
        assert abs(nll[b] - (log_z - _path_score(crf, em, gold))) < 1e-4
        assert decoded[b][mask[b]].tolist() == list(paths[int(scores.argmax())])
        assert (decoded[b][~mask[b]] == -1).all()
    loss = crf(paddle.to_tensor(emissions, stop_gradient=False), paddle.to_tensor(tags), paddle.to_tensor(mask))
    assert abs(float(loss) - nll.mean()) < 1e-5


def test_batched_decode_equals_one_by_one_and_gradients_flow(tiny_problem):
    crf, emissions, mask, tags = tiny_problem
    batch = crf.decode(paddle.to_tensor(emissions), paddle.to_tensor(mask)).numpy()
    for b in range(len(mask)):
        single = crf.decode(paddle.to_tensor(emissions[b : b + 1]), paddle.to_tensor(mask[b : b + 1])).numpy()
        assert (single[0] == batch[b]).all()
    em = paddle.to_tensor(emissions, stop_gradient=False)
    crf(em, paddle.to_tensor(tags), paddle.to_tensor(mask)).backward()
    assert crf.transitions.grad is not None and float(crf.transitions.grad.abs().sum()) > 0
    assert float(em.grad.numpy()[~mask].__abs__().sum()) == 0.0  # untagged positions get no gradient


def _resume_batch(n=12):
    path = SHARED / "datasets" / "nlp" / "resume_ner"
    if not (path / "train.json").is_file():
        pytest.skip(f"needs {path} (shared datasets beside the repository)")
    rows = [json.loads(line) for line in (path / "train.json").read_text(encoding="utf-8").splitlines()[:n]]
    labels = (path / "labels.txt").read_text(encoding="utf-8").split()
    return rows, {name: i for i, name in enumerate(labels)}


def test_bigru_crf_learns_resume_ner_lines(tmp_path):
    rows, label_ids = _resume_batch()
    vocab = save_vocab(build_char_vocab(r["text"] for r in rows), tmp_path / "chars.txt")
    tok = Tokenizer.chars(vocab)
    enc = tok.encode_words([r["text"] for r in rows], [[label_ids[t] for t in r["label"]] for r in rows],
                           add_special_tokens=False, max_length=64)
    batch = {k: paddle.to_tensor(v) for k, v in pad_batch(enc.rows()).items()}
    paddle.seed(0)
    model = BiGRUCRF(vocab_size=tok.vocab_size, num_classes=len(label_ids), embed_dim=32, hidden_size=32)
    opt = paddle.optimizer.Adam(learning_rate=0.01, parameters=model.parameters())
    model.train()
    losses = []
    for _ in range(25):
        loss = model(batch)["loss"]
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    print(f'BiGRU-CRF NLL {losses[0]:.2f} -> {losses[-1]:.2f}')
    assert losses[-1] < 0.3 * losses[0], losses
    model.eval()
    out = model(batch)
    tags, labels = out["tags"].numpy(), batch["labels"].numpy()
    assert (tags[labels == -100] == -1).all()
    accuracy = (tags == labels)[labels != -100].mean()
    print(f'tag accuracy on the training lines {accuracy:.3f}')
    assert accuracy > 0.8


def _export_roundtrip(model, tmp_path):
    class Wrap(paddle.nn.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, token_type_ids, attention_mask):
            return self.inner.export_forward(input_ids, token_type_ids, attention_mask)

    static = paddle.jit.to_static(Wrap(model), input_spec=model.input_spec(), full_graph=True)
    paddle.jit.save(static, str(tmp_path / "model"))
    return paddle.jit.load(str(tmp_path / "model"))


def test_crf_token_classifier_exports_with_dynamic_length(tmp_path):
    paddle.seed(0)
    enc = dict(type="TransformerEncoder", vocab_size=40, hidden_size=16, num_layers=1, num_heads=2,
               intermediate_size=32, max_position=32)
    model = TokenClassifier(encoder=enc, num_classes=4, use_crf=True)
    model.eval()
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 7, 11, 3]], dtype=np.int64)
    mask = (ids != 0).astype(np.int64)
    args = [paddle.to_tensor(a) for a in (ids, np.zeros_like(ids), mask)]
    loaded = _export_roundtrip(model, tmp_path)
    for cut in (6, 4):
        sub = [a[:, :cut] for a in args]
        expected = [o.numpy() for o in model.export_forward(*sub)]   # logits, tag mask, transitions
        got = loaded(*sub)
        for a, b in zip(got, expected):
            np.testing.assert_allclose(a.numpy().astype("float64"), b.astype("float64"), atol=1e-5)
        tags = model.eval_outputs([paddle.to_tensor(o) for o in expected])["tags"].numpy()
        assert (tags[:, 0] == -1).all()  # [CLS] is not tagged
