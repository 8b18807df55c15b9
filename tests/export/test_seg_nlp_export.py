"""Segmentation and NLP kits through the exporter: deploy specs, free / fixed input sizes, the
exported CRF outputs and ``eval_outputs`` against the eval forward. The builders here are shared
with tests/deploy/test_seg_nlp_runtime.py."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import paddle
import pytest
import yaml

from kits import nlp
from kits import segmentation as seg
from kits.core.errors import ConfigError
from kits.core.fileio import sha256sum
from kits.core.runner import as_config, latest_weights
from kits.deploy import Predictor

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "nlp"))
from nlp_fixtures import TINY_ENCODER, bigru_config, classifier_config, ner_dir, tiny_trainer  # noqa: E402

FORMATS = ["onnx", "openvino"]
SEG_NORM = {"type": "Normalize", "channel_order": "BGR", "mean": [110.3, 108.4, 105.0], "std": [72.1, 72.7, 69.9],
            "scale_after": 1 / 255}
SEG_CLASSES = ["background", "road", "sign"]


# -- builders (also used by the runtime tests) ------------------------------------------------
def seg_config(tmp: Path, model: dict | None = None, val: list | None = None, **extra) -> dict:
    """A tiny ESPNet (void output) over a folder of random 30x40 images."""
    data = tmp / "segdata"
    if not data.is_dir():
        rng = np.random.default_rng(0)
        (data / "images").mkdir(parents=True)
        (data / "masks").mkdir()
        for i in range(2):
            cv2.imwrite(str(data / "images" / f"{i}.png"), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
            cv2.imwrite(str(data / "masks" / f"{i}.png"), rng.integers(0, 3, (30, 40)).astype(np.uint8))
    section = {"type": "FolderSegmentation", "root": str(data), "class_names": SEG_CLASSES}
    return {"kit": "segmentation",
            "model": model or {"type": "ESPNet", "num_classes": 3, "p": 1, "q": 1, "void_output": True},
            "train_dataset": {**section, "transforms": [SEG_NORM]},
            "val_dataset": {**section, "transforms": val or [SEG_NORM]},
            "optimizer": {"type": "Adam", "lr": 0.001},
            "trainer": {"output_dir": str(tmp / "out"), "device": "cpu"}, **extra}


def export_segmenters(root: Path) -> dict:
    """name -> (config, export dir): ESPNet at a free size, and at the fixed size of a val Resize."""
    out = {}
    for name, val in (("free", None), ("fixed", [{"type": "Resize", "target_size": [48, 64]}, SEG_NORM])):
        cfg = seg_config(root / name, val=val)
        paddle.seed(0)  # the same random weights for export and for load_model in the tests
        seg.export(cfg, formats=FORMATS, output=root / name / "export")
        out[name] = (cfg, root / name / "export")
    return out


def crf_tagger_config(tmp: Path, iters: int = 20) -> dict:
    """A tiny encoder token classifier with a CRF on the hand-written Chinese NER lines."""
    root = str(ner_dir(tmp))
    return {"kit": "nlp",
            "model": {"type": "TokenClassifier", "num_classes": 7, "use_crf": True, "encoder": dict(TINY_ENCODER),
                      "head": {"dropout": 0.0}},
            "train_dataset": {"type": "NERDataset", "root": root, "list": "train.json",
                              "tokenizer": {"type": "WordPiece", "min_freq": 1, "max_size": 64}},
            "val_dataset": {"type": "NERDataset", "root": root, "list": "dev.json"},
            "optimizer": {"type": "AdamW", "lr": 0.003}, "trainer": tiny_trainer(tmp, iters)}


NLP_CONFIGS = {"classifier": classifier_config, "bigru": bigru_config, "crf": crf_tagger_config}


def export_text_models(root: Path) -> dict:
    """name -> (config, weights, export dir) for the three tiny NLP models, each trained a little."""
    out = {}
    for name, make in NLP_CONFIGS.items():
        tmp = root / name
        tmp.mkdir(parents=True, exist_ok=True)
        paddle.seed(0)
        cfg = make(tmp, 20)
        nlp.train(cfg)
        weights = latest_weights(tmp / "out")
        nlp.export(cfg, weights, formats=FORMATS, output=tmp / "export")
        out[name] = (cfg, weights, tmp / "export")
    return out


def deploy_yml(model_dir: Path) -> dict:
    return yaml.safe_load((model_dir / "deploy.yml").read_text(encoding="utf-8"))


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def segmenters(tmp_path_factory):
    return export_segmenters(tmp_path_factory.mktemp("seg_export"))


@pytest.fixture(scope="module")
def text_models(tmp_path_factory):
    return export_text_models(tmp_path_factory.mktemp("nlp_export"))


# -- segmentation ---------------------------------------------------------------------------
def test_segmenter_exports_at_a_free_size_padded_to_8(segmenters):
    cfg, out = segmenters["free"]
    spec = deploy_yml(out)
    assert spec["inputs"][0]["shape"] == [-1, 3, -1, -1] and spec["labels"] == SEG_CLASSES
    assert spec["preprocess"] == [
        {"type": "DecodeImage", "to_rgb": False},
        {"type": "Normalize", "mean": SEG_NORM["mean"], "std": SEG_NORM["std"], "scale": 1.0,
         "scale_after": pytest.approx(1 / 255)},
        {"type": "Pad", "multiple_of": 8}, {"type": "HWC2CHW"}]
    # the void channel keeps id 3: no entry of labels, a miss for the metric (as seg.predict reports it)
    assert spec["postprocess"] == [{"type": "SegmentationMask", "interp": "linear", "void_index": 3}]
    assert spec["parity"]["onnxruntime"] <= 1e-4 and set(spec["models"]) == {"paddle", *FORMATS}
    paddle.seed(0)
    model = seg.load_model(cfg)
    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for size in ((56, 72), (40, 104)):  # any multiple of 8, as the runtime's Pad gives
        x = np.random.default_rng(1).standard_normal((1, 3, *size)).astype("float32")
        got = session.run(None, {"image": x})[0]
        np.testing.assert_allclose(got, model.export_forward(paddle.to_tensor(x)).numpy(), atol=1e-4)


def test_segmenter_with_a_val_resize_exports_at_that_size(segmenters):
    _, out = segmenters["fixed"]
    spec = deploy_yml(out)
    assert spec["inputs"][0]["shape"] == [-1, 3, 48, 64]
    assert [op["type"] for op in spec["preprocess"]] == ["DecodeImage", "Resize", "Normalize", "HWC2CHW"]
    assert spec["preprocess"][1] == {"type": "Resize", "size": [48, 64], "keep_ratio": False, "interp": "linear"}
    graph = onnx.load(str(out / "model.onnx")).graph
    assert [d.dim_value for d in graph.input[0].type.tensor_type.shape.dim[1:]] == [3, 48, 64]


def test_pp_liteseg_exports_at_the_training_crop_size(tmp_path):
    model = {"type": "PPLiteSeg", "num_classes": 3, "aux_weights": [], "arm_channels": [8, 8, 8],
             "head_channels": [8, 8, 8], "sppm_channels": 8,
             "backbone": {"type": "EfficientNetLite0", "out_strides": [8, 16, 32]}}
    cfg = seg_config(tmp_path, model=model)
    cfg["train_dataset"]["transforms"] = [{"type": "RandomPaddingCrop", "crop_size": [128, 128]}, SEG_NORM]
    result = seg.export(cfg, formats=["onnx"], output=tmp_path / "export")  # its adaptive pooling needs a fixed size
    spec = deploy_yml(tmp_path / "export")
    assert spec["inputs"][0]["shape"] == [-1, 3, 128, 128] and result.parity["onnxruntime"] <= 1e-4
    assert spec["preprocess"][1]["size"] == [128, 128] and "void_index" not in spec["postprocess"][0]


def test_export_size_rules_and_errors(tmp_path):
    task = seg.SegmentationTask()
    espnet = seg.ESPNet(num_classes=3, p=1, q=1)
    lite = {"type": "PPLiteSeg", "num_classes": 3, "backbone": {"type": "EfficientNetLite0"}}
    assert task.export_size(as_config(seg_config(tmp_path)), espnet) is None
    given = as_config(seg_config(tmp_path, export={"input_size": [64, 96]}))
    assert task.export_size(given, espnet) == (64, 96)
    assert tuple(task.export_model(given, espnet).input_spec()[0].shape) == (-1, 3, 64, 96)
    keep = as_config(seg_config(tmp_path, val=[{"type": "Resize", "target_size": 64, "keep_ratio": True}, SEG_NORM]))
    assert task.export_size(keep, espnet) is None
    ops = [op["type"] for op in task.deploy_spec(keep, espnet)["preprocess"]]
    assert ops == ["DecodeImage", "Resize", "Normalize", "Pad", "HWC2CHW"]
    with pytest.raises(ConfigError, match="export.input_size"):
        task.export_size(as_config(seg_config(tmp_path, model=lite)), seg.MODELS.build(lite))
    flip = as_config(seg_config(tmp_path, val=[{"type": "RandomHorizontalFlip"}, SEG_NORM]))
    with pytest.raises(ConfigError, match=r"\['RandomHorizontalFlip'\] cannot be exported"):
        task.deploy_spec(flip, espnet)


# -- NLP ------------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kind,outputs,post", [
    ("classifier", "wordpiece", ["logits"], ["Softmax", "TopK"]),
    ("bigru", "chars", ["logits", "tag_mask", "transitions"], ["CRFDecode", "TokenEntities"]),
    ("crf", "wordpiece", ["logits", "tag_mask", "transitions"], ["CRFDecode", "TokenEntities"]),
])
def test_text_model_exports_its_vocab_and_text_ops(text_models, name, kind, outputs, post):
    cfg, _, out = text_models[name]
    spec = deploy_yml(out)
    tokenize = spec["preprocess"][0]
    assert tokenize["type"] == "Tokenize" and tokenize["vocab"] == "vocab.txt" and tokenize["kind"] == kind
    assert tokenize["sha256"] == sha256sum(out / "vocab.txt")  # the vocab travels with the model
    assert (out / "vocab.txt").read_bytes() == (Path(cfg["trainer"]["output_dir"]) / "vocab.txt").read_bytes()
    assert tokenize["add_special_tokens"] == (name != "bigru")
    assert spec["outputs"] == outputs and [op["type"] for op in spec["postprocess"]] == post
    assert spec["parity"]["onnxruntime"] <= 1e-4
    ids = next(i for i in spec["inputs"] if i["name"] == "input_ids")
    assert ids["shape"] == [-1, -1] and ids["range"] == [0, 64]
    labels = (Path(cfg["trainer"]["output_dir"]) / "labels.txt").read_text(encoding="utf-8").split()
    assert spec["labels"] == labels


def test_crf_tagger_exports_emissions_mask_and_table():
    paddle.seed(0)
    model = nlp.BiGRUCRF(vocab_size=20, num_classes=4, embed_dim=8, hidden_size=8)
    model.eval()
    ids = paddle.to_tensor(np.array([[3, 4, 5, 0], [6, 7, 8, 9]], "int64"))
    logits, mask, table = model.export_forward(ids, (ids != 0).astype("int64"))
    assert logits.shape == [2, 4, 4] and mask.dtype == paddle.int64 and mask.numpy().tolist()[0] == [1, 1, 1, 0]
    crf = model.crf
    want = np.concatenate([crf.transitions.numpy(), crf.start.numpy()[None], crf.end.numpy()[None]])
    assert table.shape == [2, 6, 4] and np.array_equal(table.numpy()[1], want)


def _padded_batch(cfg, size: int = 4) -> dict:
    """A padded validation batch, labels included, as evaluation feeds the model."""
    task = nlp.task_for(as_config(cfg))
    config = as_config(cfg)
    task.build_model(config)
    dataset = task.build_dataset(config, "val")
    return dataset.collate([dataset[i] for i in range(min(size, len(dataset)))])


@pytest.mark.parametrize("name", ["classifier", "bigru", "crf"])
def test_eval_outputs_of_the_exported_model_equal_the_eval_forward(text_models, name):
    cfg, weights, out = text_models[name]
    pipeline = nlp.load_model(cfg, weights)
    batch = _padded_batch(cfg)
    lengths = batch["attention_mask"].sum(1)
    assert lengths.min() < lengths.max()  # rows of different lengths: padding inside the batch
    predictor = Predictor(out, "onnxruntime")
    raw = predictor.run_raw([batch[i.name] for i in predictor.spec.inputs])
    got = pipeline.model.eval_outputs([paddle.to_tensor(r) for r in raw])
    with paddle.no_grad():
        want = pipeline.model({k: paddle.to_tensor(v) for k, v in batch.items()})
    assert set(got) == set(want)
    real = batch["attention_mask"].astype(bool) if name != "classifier" else slice(None)
    np.testing.assert_allclose(got["logits"].numpy()[real], want["logits"].numpy()[real], atol=1e-4)
    if "tags" in want:
        assert got["tags"].numpy().tolist() == want["tags"].numpy().tolist()


def test_segmenter_eval_outputs_equal_the_eval_forward(segmenters):
    cfg, out = segmenters["free"]
    paddle.seed(0)
    model = seg.load_model(cfg)
    x = np.random.default_rng(2).standard_normal((2, 3, 40, 48)).astype("float32")
    got = model.eval_outputs([paddle.to_tensor(o) for o in Predictor(out, "openvino").run_raw([x])])
    with paddle.no_grad():
        want = model({"image": paddle.to_tensor(x)})
    np.testing.assert_allclose(got["logits"].numpy(), want["logits"].numpy(), atol=1e-4)
