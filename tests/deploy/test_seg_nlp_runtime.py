"""The light runtime on exported segmentation and NLP models: results equal the kits' own predict,
raw text in, CRF decoding and entity spans in numpy, and deploy/infer.py (--check, outputs)."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paddle
import pytest
import yaml

from kits import nlp
from kits import segmentation as seg
from kits.deploy import Predictor, SpecError
from kits.deploy.ops import PREPROCESS, build_pipeline
from kits.deploy.text_ops import entity_chunks, viterbi

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "export"))
from test_seg_nlp_export import SEG_CLASSES, export_segmenters, export_text_models  # noqa: E402

BACKENDS = ["paddle", "onnxruntime", "openvino"]
NER_TEXTS = ["张三在北京工作", "李四 去上海", "王五加入华为公司和腾讯", "我", "赵六是老师 ，住在广州"]
SENTIMENT_TEXTS = ["the movie was great", "i hated it so much", "a dull plot", "unknown words here"]


@pytest.fixture(scope="module")
def segmenters(tmp_path_factory):
    return export_segmenters(tmp_path_factory.mktemp("seg_runtime"))


@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    return export_text_models(tmp_path_factory.mktemp("nlp_runtime"))


def images(sizes=((50, 70), (64, 64), (33, 97))):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (*size, 3), dtype=np.uint8) for size in sizes]


@pytest.mark.parametrize("name", ["free", "fixed"])
def test_segmentation_label_maps_equal_the_kit_predict(segmenters, name):
    cfg, out = segmenters[name]
    paddle.seed(0)
    model = seg.load_model(cfg)
    ours = seg.predict(model, images())
    assert any((m == len(SEG_CLASSES)).any() for m in ours)  # the void channel wins somewhere
    for backend in BACKENDS:
        got = Predictor(out, backend).predict(images())
        for mask, want in zip((g["mask"] for g in got), ours):
            assert mask.shape == want.shape and mask.dtype == np.int32
            assert np.array_equal(mask, want), f"{backend}: {(mask != want).sum()} pixels differ"


def test_classifier_gives_the_kit_labels_with_scores(text_models):
    cfg, weights, out = text_models["classifier"]
    ours = nlp.predict(cfg, SENTIMENT_TEXTS, weights=weights)
    for backend in BACKENDS:
        got = Predictor(out, backend).predict(SENTIMENT_TEXTS)
        for mine, theirs in zip(got, ours):
            best = mine["topk"][0]
            assert best["label"] == theirs["label"] and best["score"] == pytest.approx(theirs["score"], abs=1e-5)
            assert sum(t["score"] for t in mine["topk"]) == pytest.approx(1.0, abs=1e-5)  # both classes listed
    predictor = Predictor(out)
    one = predictor.predict("the movie was great")  # a bare string is one text
    assert one["topk"][0]["label"] == ours[0]["label"]
    sample = predictor.prepare("the movie was great")
    ids = {k: sample[k] for k in ("input_ids", "token_type_ids", "attention_mask")}
    assert predictor.predict(ids)["topk"] == one["topk"]  # token ids skip the tokenizer


@pytest.mark.parametrize("name", ["bigru", "crf"])
def test_tagger_gives_the_kit_entities(text_models, name):
    cfg, weights, out = text_models[name]
    ours = nlp.predict(cfg, NER_TEXTS, weights=weights)
    assert sum(len(r["entities"]) for r in ours) >= 4  # trained enough to find entities
    for backend in BACKENDS:
        got = Predictor(out, backend).predict(NER_TEXTS)
        assert [g["entities"] for g in got] == [r["entities"] for r in ours], backend
    spaced = Predictor(out).predict("李四 去上海")
    assert {(e["text"], e["start"]) for e in spaced["entities"]} == {(e["text"], e["start"])
                                                                     for e in ours[1]["entities"]}


@pytest.mark.parametrize("name,texts", [("classifier", SENTIMENT_TEXTS + ["Héllo, WORLD!! naïve"]),
                                        ("bigru", NER_TEXTS), ("crf", NER_TEXTS)])
def test_tokenize_op_encodes_like_the_kit(text_models, name, texts):
    cfg, weights, out = text_models[name]
    pipeline = nlp.load_model(cfg, weights)
    spec = yaml.safe_load((out / "deploy.yml").read_text(encoding="utf-8"))
    tokenize = build_pipeline(spec["preprocess"], PREPROCESS, base_dir=out)[0]
    rows = pipeline.task.prepare(texts, pipeline.tokenizer, pipeline.section)
    for text, row in zip(texts, rows):
        sample = tokenize({"text": text})
        for key in ("input_ids", "token_type_ids", "attention_mask"):
            assert sample[key].tolist() == row[key], (text, key)
        if "word_ids" in row:
            assert sample["word_ids"].tolist() == [-1 if w is None else w for w in row["word_ids"]]
            assert [tuple(s) for s in sample["spans"]] == [tuple(s) for s in row["spans"]]


def test_tokenize_options_follow_the_kit_tokenizer(tmp_path):
    from kits.core.fileio import sha256sum
    from kits.nlp.tokenization import Tokenizer, learn_char_vocab, learn_wordpiece_vocab, save_vocab

    texts = ["The Movie was GREAT", "naïve café, déjà vu", "中文 字符 [MASK] test", "tab\tseparated pair"]
    for kind, learn in (("wordpiece", learn_wordpiece_vocab), ("chars", learn_char_vocab)):
        for lowercase in (True, False):
            vocab = save_vocab(learn(texts, min_freq=1, lowercase=lowercase), tmp_path / "vocab.txt")
            kit = getattr(Tokenizer, kind)(vocab, lowercase=lowercase, max_length=6)
            op = dict(type="Tokenize", vocab="vocab.txt", sha256=sha256sum(vocab), kind=kind, lowercase=lowercase,
                      max_length=6, pairs=True)
            tokenize = build_pipeline([op], PREPROCESS, base_dir=tmp_path)[0]
            for text in texts:
                first, second = text.split("\t", 1) if "\t" in text else (text, "")
                want = kit.encode([first], [second]).rows()[0]
                got = tokenize({"text": text})
                assert got["input_ids"].tolist() == want["input_ids"], (kind, lowercase, text)
                assert got["token_type_ids"].tolist() == want["token_type_ids"]


def test_tokenize_checks_its_vocab(text_models, tmp_path):
    _, _, out = text_models["bigru"]
    op = dict(yaml.safe_load((out / "deploy.yml").read_text(encoding="utf-8"))["preprocess"][0])
    with pytest.raises(SpecError, match="base_dir"):
        build_pipeline([op], PREPROCESS)[0]({"text": "张三"})  # built without the model directory
    with pytest.raises(SpecError, match="has no option 'base_dir'"):
        build_pipeline([{**op, "base_dir": str(out)}], PREPROCESS)
    (tmp_path / "vocab.txt").write_text("[PAD]\n[UNK]\n", encoding="utf-8")
    with pytest.raises(SpecError, match="sha256"):
        build_pipeline([op], PREPROCESS, base_dir=tmp_path)
    with pytest.raises(SpecError, match="missing"):
        build_pipeline([op], PREPROCESS, base_dir=tmp_path / "nowhere")


def test_numpy_viterbi_equals_the_kit_crf():
    from kits.nlp.models import CRF

    paddle.seed(1)
    crf = CRF(5)
    rng = np.random.default_rng(0)
    emissions = rng.normal(size=(6, 9, 5)).astype("float32")
    mask = rng.random((6, 9)) < 0.7  # holes (sub-tokens), padded tails, an empty row
    mask[0], mask[1, 4:], mask[2] = True, False, False
    want = crf.decode(paddle.to_tensor(emissions), paddle.to_tensor(mask)).numpy()
    got = viterbi(emissions, mask, crf.transitions.numpy(), crf.start.numpy(), crf.end.numpy())
    assert got.dtype == np.int64 and got.tolist() == want.tolist()
    assert (got[2] == -1).all() and (got[~mask] == -1).all()


def test_entity_chunks_read_tags_like_seqeval():
    from seqeval.metrics.sequence_labeling import get_entities

    tags = ["O", "B-PER", "I-PER", "E-PER", "S-LOC", "I-LOC", "B-ORG", "I-PER", "E-ORG", "I-X"]
    rng = np.random.default_rng(0)
    for _ in range(300):
        seq = list(rng.choice(tags, size=int(rng.integers(0, 12))))
        assert entity_chunks(seq) == get_entities(seq), seq
    assert entity_chunks(["B-PER", "I-PER", "O", "I-LOC"]) == [("PER", 0, 1), ("LOC", 3, 3)]


def run_infer(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "deploy/infer.py", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)


def test_infer_script_checks_and_writes_segmentation(segmenters, tmp_path):
    _, out = segmenters["free"]
    for i, image in enumerate(images()):
        cv2.imwrite(str(tmp_path / f"img{i}.png"), image)
    proc = run_infer("--model-dir", out, "--input", tmp_path, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnxruntime  onnx" in proc.stdout and "openvino" in proc.stdout and "FAIL" not in proc.stdout
    result_dir = tmp_path / "results"
    proc = run_infer("--model-dir", out, "--input", tmp_path / "img0.png", "--output", result_dir)
    assert proc.returncode == 0, proc.stderr
    line = json.loads((result_dir / "results.jsonl").read_text().splitlines()[0])
    assert line["mask_shape"] == [50, 70]
    assert cv2.imread(line["mask"], cv2.IMREAD_UNCHANGED).max() <= len(SEG_CLASSES)
    overlay = cv2.imread(str(result_dir / "vis" / "00000_img0.jpg"))
    assert overlay.shape == (50, 70, 3)


@pytest.mark.parametrize("name", ["classifier", "bigru", "crf"])
def test_infer_script_checks_and_predicts_text(text_models, name, tmp_path):
    _, _, out = text_models[name]
    texts = SENTIMENT_TEXTS if name == "classifier" else NER_TEXTS
    lines = tmp_path / "texts.txt"
    lines.write_text("\n".join(texts) + "\n", encoding="utf-8")
    proc = run_infer("--model-dir", out, "--input", lines, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnxruntime  onnx" in proc.stdout and "FAIL" not in proc.stdout and "DIFFER" not in proc.stdout
    proc = run_infer("--model-dir", out, "--input", lines)
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(results) == len(texts)
    key = "topk" if name == "classifier" else "entities"
    expected = Predictor(out).predict(texts)
    assert [r[key] for r in results] == [e[key] for e in expected]


def test_mixed_batches_of_padded_rows_agree_across_engines(text_models):
    """Engines get padded batches (e.g. when a compressed model is scored): every backend agrees."""
    _, _, out = text_models["bigru"]
    predictors = {b: Predictor(out, b) for b in BACKENDS}
    samples = [predictors["paddle"].prepare(t) for t in NER_TEXTS]
    width = max(len(s["input_ids"]) for s in samples)
    ids = np.zeros((len(samples), width), np.int64)
    mask = np.zeros_like(ids)
    for row, s in enumerate(samples):
        ids[row, :len(s["input_ids"])], mask[row, :len(s["input_ids"])] = s["input_ids"], 1
    raw = {b: p.run_raw({"input_ids": ids, "attention_mask": mask}) for b, p in predictors.items()}
    for a, b in itertools.combinations(BACKENDS, 2):
        for x, y in zip(raw[a], raw[b]):
            assert np.abs(x.astype(np.float64) - y.astype(np.float64)).max() <= 1e-4, (a, b)
    single = predictors["onnxruntime"].run_raw(predictors["onnxruntime"].tensors(samples[0]))
    np.testing.assert_allclose(raw["onnxruntime"][0][0, :len(samples[0]["input_ids"])], single[0][0], atol=1e-5)
