"""compress() end to end on a tiny model of the other kits: a Transformer-encoder text classifier
(dynamic INT8 PTQ, FFN pruning + fine-tuning, logit distillation) and a PP-LiteSeg segmenter
(static QDQ PTQ, filter pruning + fine-tuning). Each run is judged on its exported files."""

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import paddle
import pytest

from kits.deploy import Predictor
from kits.nlp.task import task_for as text_task_for
from kits.segmentation.task import SegmentationTask
from kits.slim import compress, load_recipe

sys.path.insert(0, str(Path(__file__).parent))
from kit_tiny import SEG_SIZE, TEXT_INPUTS, text_shapes, tiny_seg_cfg, trained_text_model  # noqa: E402

REPORT = "report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, max_deploy_gap: 1.0%s}\n"
TEXT_REPORT = REPORT % f", input_shapes: {text_shapes()}"
SEG_REPORT = REPORT % ""
TEXT_PTQ = "strategies:\n  - {type: PTQ, dynamic: true, op_types: [MatMul], reduce_range: true}\n" + TEXT_REPORT
TEXT_PRUNE = """strategies:
  - {type: Prune, criterion: l1_norm, ratio: 0.25}
finetune: {trainer.epochs: 1, optimizer.lr: 1.0e-3}
""" + TEXT_REPORT
TEXT_DISTILL = """strategies:
  - type: Distill
    pairs: [{student: head, loss: kl, temperature: 2}]
    teacher: {config: %s, weights: %s}
finetune: {trainer.epochs: 1, optimizer.lr: 1.0e-3}
""" + TEXT_REPORT
SEG_PTQ = "strategies:\n  - {type: PTQ, calib_samples: 3, algo: minmax, quant_format: qdq}\n" + SEG_REPORT
SEG_PRUNE = """strategies:
  - {type: Prune, criterion: l1_norm, ratio: 0.3, trace_size: 64}
finetune: {trainer.epochs: 1}
""" + SEG_REPORT
TEXTS = ["the movie was great", "a boring film", "what a lovely surprise", "i hated every minute"]


def _compress(out: Path, recipe: str, cfg, task_for, weights=None) -> tuple[Path, dict]:
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yml").write_text(recipe)
    report = compress(cfg, load_recipe(out / "recipe.yml"), task_for, weights=weights, output=out / "slim")
    return out / "slim", report


@pytest.fixture(scope="module")
def text_model(tmp_path_factory):
    return trained_text_model(tmp_path_factory.mktemp("text"))


@pytest.fixture(scope="module")
def text_ptq(text_model, tmp_path_factory):
    cfg, weights = text_model
    return _compress(tmp_path_factory.mktemp("text_ptq"), TEXT_PTQ, cfg, text_task_for, weights)


@pytest.fixture(scope="module")
def text_prune(text_model, tmp_path_factory):
    cfg, weights = text_model
    return _compress(tmp_path_factory.mktemp("text_prune"), TEXT_PRUNE, cfg, text_task_for, weights)


@pytest.fixture(scope="module")
def text_distill(text_model, tmp_path_factory):
    cfg, weights = text_model
    out = tmp_path_factory.mktemp("text_distill")
    (out / "teacher.yml").write_text(cfg.to_yaml())  # the teacher: the same config and weights, from files
    return _compress(out, TEXT_DISTILL % (out / "teacher.yml", weights), cfg, text_task_for, weights)


@pytest.fixture(scope="module")
def seg_cfg(tmp_path_factory):
    return tiny_seg_cfg(tmp_path_factory.mktemp("seg"))


def _seg_compress(out: Path, recipe: str, cfg):
    paddle.seed(0)  # the untrained model's initial weights
    return _compress(out, recipe, cfg, lambda c: SegmentationTask())


@pytest.fixture(scope="module")
def seg_ptq(seg_cfg, tmp_path_factory):
    return _seg_compress(tmp_path_factory.mktemp("seg_ptq"), SEG_PTQ, seg_cfg)


@pytest.fixture(scope="module")
def seg_prune(seg_cfg, tmp_path_factory):
    return _seg_compress(tmp_path_factory.mktemp("seg_prune"), SEG_PRUNE, seg_cfg)


# ---- helpers over the exported files -----------------------------------------------------------

def _graph(model_dir: Path):
    return onnx.load(str(model_dir / "model.onnx")).graph


def _weight_shapes(graph) -> dict:
    """Name -> shape of every constant tensor (initializers and Constant nodes)."""
    shapes = {t.name: list(t.dims) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            shapes[node.output[0]] = list(node.attribute[0].t.dims)
    return shapes


def _conv_out_channels(graph) -> Counter:
    shapes = _weight_shapes(graph)
    return Counter(shapes[n.input[1]][0] for n in graph.node if n.op_type == "Conv" and n.input[1] in shapes)


def _raw(model_dir: Path, item) -> list[np.ndarray]:
    """Raw outputs of the exported model on one raw input (text or image file), through its deploy.yml."""
    predictor = Predictor(model_dir, "onnxruntime", threads=1)
    return predictor.run_raw(predictor.tensors(predictor.prepare(item)))


def _check_report_rows(report: dict, metric: str) -> None:
    assert report["metric"] == metric and report["target_engine"] == "onnxruntime"
    for name in ("baseline", "compressed"):
        row = report[name]
        assert 0.0 <= row["accuracy"] <= 1.0 and row["accuracy"] == row["metrics"][metric]
        assert row["latency_p50_ms"]["onnxruntime"] > 0
        assert row["params"] > 0 and row["size_mb"] > 0
    assert report["accuracy_drop"] == pytest.approx(report["baseline"]["accuracy"] - report["compressed"]["accuracy"],
                                                    abs=1e-6)


def _check_shipping_rule(out: Path, report: dict) -> None:
    """As tests/slim/test_ptq_pipeline.py: the compressed model ships only if faster and as accurate."""
    speedup = report["speedup"]["onnxruntime"]
    drop = report["accuracy_drop"]
    assert report["shipped"] == ("compressed" if speedup >= 1.05 and drop <= 0.01 else "baseline")
    if report["shipped"] == "baseline":
        assert any("shipping the baseline model" in n for n in report["notes"])
    assert (out / "ship" / "deploy.yml").read_text() == (out / report["shipped"] / "deploy.yml").read_text()
    assert (out / "report.json").is_file() and "| compressed |" in (out / "report.md").read_text()


# ---- text: dynamic INT8 ------------------------------------------------------------------------

def test_text_dynamic_ptq_report(text_ptq):
    out, report = text_ptq
    _check_report_rows(report, "accuracy")
    assert report["baseline"]["accuracy"] >= 0.8  # the short training run learned the sentences
    assert report["info"]["ptq"]["dynamic"] is True
    assert report["latency_input_shapes"] == text_shapes()  # the recipe's shapes, not the export example
    name, shape = next(iter(text_shapes().items()))
    assert f"{name} {'x'.join(map(str, shape))}" in (out / "report.md").read_text()
    assert report["baseline"]["precision"] == "fp32" and report["compressed"]["precision"] == "int8"
    assert report["compressed"]["size_mb"] < report["baseline"]["size_mb"]  # int8 MatMul weights
    assert report["compressed"]["params"] == report["baseline"]["params"]
    _check_shipping_rule(out, report)


def test_text_dynamic_int8_graph(text_ptq):
    out, _ = text_ptq
    base, comp = _graph(out / "baseline"), _graph(out / "compressed")
    assert tuple(i.name for i in comp.input) == TEXT_INPUTS == tuple(text_shapes())  # what latency is fed
    ops = Counter(n.op_type for n in comp.node)
    assert "MatMulInteger" not in {n.op_type for n in base.node}
    assert ops["MatMulInteger"] >= 12 and ops["DynamicQuantizeLinear"] >= 6  # 6 weight MatMuls per layer
    int8 = [t for t in comp.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]
    assert len(int8) >= 12 and {tuple(t.dims) for t in int8} >= {(32, 32), (32, 64), (64, 32)}
    assert "precision: int8" in (out / "compressed" / "deploy.yml").read_text()
    assert (out / "compressed" / "vocab.txt").read_text() == (out / "baseline" / "vocab.txt").read_text()
    for text in TEXTS:  # raw text in: the runtime tokenizes with the vocabulary shipped beside the model
        fp32, int8_out = _raw(out / "baseline", text)[0], _raw(out / "compressed", text)[0]
        assert fp32.shape == int8_out.shape == (1, 2)
        assert np.abs(fp32 - int8_out).max() <= 0.1 * np.abs(fp32).max() + 0.05
    base_results = Predictor(out / "baseline", "onnxruntime").predict(TEXTS)
    results = Predictor(out / "compressed", "onnxruntime").predict(TEXTS)
    assert all({c["label"] for c in r["topk"]} == {"neg", "pos"} for r in results)
    assert [r["label"] for r in results] == [r["label"] for r in base_results]


# ---- text: FFN pruning + fine-tuning --------------------------------------------------------------

def test_text_prune_shrinks_the_ffn(text_prune):
    out, report = text_prune
    _check_report_rows(report, "accuracy")
    prune = report["info"]["prune"]
    assert prune["kind"] == "fc" and prune["traced"] == "export_forward"
    # only the FFN inner width is prunable in the encoder (attention and hidden width stay)
    assert prune["channels"] == {f"encoder.layers.{i}.ffn.fc1.weight": [64, 48] for i in range(2)}
    assert prune["flops_after"] < prune["flops_before"]
    assert report["compressed"]["params"] == report["baseline"]["params"] - 2 * (16 * 32 + 16 + 16 * 32)
    assert report["compressed"]["size_mb"] < report["baseline"]["size_mb"]
    assert report["info"]["finetune"]["steps"] == 4  # one epoch: 16 sentences in batches of 4
    assert report["deploy_gap"] == 0.0  # fp32 export scores exactly like the fine-tuned paddle model
    _check_shipping_rule(out, report)


def test_text_pruned_export_has_narrow_ffn_and_runs(text_prune):
    out, _ = text_prune
    base = Counter(tuple(s) for s in _weight_shapes(_graph(out / "baseline")).values() if len(s) == 2)
    comp = Counter(tuple(s) for s in _weight_shapes(_graph(out / "compressed")).values() if len(s) == 2)
    # fc1 [32, 64] -> [32, 48] and fc2 [64, 32] -> [48, 32] in both layers; nothing else changed
    assert base - comp == Counter({(32, 64): 2, (64, 32): 2})
    assert comp - base == Counter({(32, 48): 2, (48, 32): 2})
    for text in TEXTS:
        assert _raw(out / "compressed", text)[0].shape == (1, 2)


def test_other_engines_score_the_same_file(text_ptq, text_model):
    """What the collapse guard adds to its error: the compressed file's metric in the other engines."""
    from kits.core import runner
    from kits.slim.recipe import ReportConfig
    from kits.slim.report import other_engines

    out, report = text_ptq
    cfg, weights = text_model
    model = runner.load_model(cfg, text_task_for(cfg), weights)
    scores = other_engines(out / "compressed", model, text_task_for(cfg), cfg,
                           ReportConfig(backends=["openvino", "onnxruntime"], threads=1), "accuracy")
    assert scores == {"onnxruntime": report["compressed"]["accuracy"]}  # the target engine is left out


# ---- text: distillation from a teacher given as config + weights ------------------------------------

def test_text_distill_trains_against_the_teacher(text_distill):
    out, report = text_distill
    _check_report_rows(report, "accuracy")
    losses = report["info"]["distill"]["last_losses"]
    assert set(losses) == {"distill_0"} and math.isfinite(losses["distill_0"]) and losses["distill_0"] >= 0
    assert report["info"]["finetune"]["steps"] == 4
    assert report["compressed"]["params"] == report["baseline"]["params"]
    assert report["deploy_gap"] == 0.0
    changed = [np.abs(_raw(out / "baseline", t)[0] - _raw(out / "compressed", t)[0]).max() for t in TEXTS]
    assert max(changed) > 1e-4  # the fine-tune moved the student
    _check_shipping_rule(out, report)


# ---- segmentation: static QDQ INT8 ------------------------------------------------------------------

def test_seg_ptq_report(seg_ptq):
    out, report = seg_ptq
    _check_report_rows(report, "mIoU")
    assert report["info"]["ptq"]["calibration_samples"] == 3
    assert report["latency_input_shapes"] is None  # a fixed-size export is timed at its own size
    assert report["compressed"]["precision"] == "int8"
    assert report["compressed"]["size_mb"] < 0.5 * report["baseline"]["size_mb"]
    assert report["deploy_gap"] <= 0.05  # int8 file vs the fp32 training graph
    _check_shipping_rule(out, report)


def test_seg_int8_graph_runs_close_to_fp32(seg_ptq, seg_cfg):
    out, _ = seg_ptq
    graph = _graph(out / "compressed")
    assert {"QuantizeLinear", "DequantizeLinear"} <= {n.op_type for n in graph.node}
    int8 = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8) >= 20  # the conv weights are stored as int8
    image = Path(seg_cfg["val_dataset"]["root"]) / "images" / "4.png"
    fp32, q = _raw(out / "baseline", str(image))[0], _raw(out / "compressed", str(image))[0]
    assert fp32.shape == q.shape == (1, 3, SEG_SIZE, SEG_SIZE)
    assert np.abs(fp32 - q).max() <= 0.1 * np.abs(fp32).max() + 0.05
    assert (fp32.argmax(1) == q.argmax(1)).mean() >= 0.9


# ---- segmentation: filter pruning + fine-tuning --------------------------------------------------------

def test_seg_prune_report(seg_prune):
    out, report = seg_prune
    _check_report_rows(report, "mIoU")
    prune = report["info"]["prune"]
    assert prune["kind"] == "conv" and prune["groups"] >= 5
    assert all(after == before - round(0.3 * before) for before, after in prune["channels"].values())
    assert prune["flops_after"] < prune["flops_before"]
    assert report["compressed"]["params"] < report["baseline"]["params"]
    assert report["info"]["finetune"]["steps"] == 2  # one epoch: 4 images in batches of 2
    assert report["deploy_gap"] <= 1e-3
    _check_shipping_rule(out, report)


def test_seg_pruned_export_has_fewer_filters_and_runs(seg_prune, seg_cfg):
    out, report = seg_prune
    base, comp = _conv_out_channels(_graph(out / "baseline")), _conv_out_channels(_graph(out / "compressed"))
    assert sum(comp.values()) == sum(base.values())  # the same convolutions...
    assert sum(c * n for c, n in comp.items()) < sum(c * n for c, n in base.items())  # ...with fewer filters
    assert {after for _, after in report["info"]["prune"]["channels"].values()} <= set(comp)
    image = Path(seg_cfg["val_dataset"]["root"]) / "images" / "5.png"
    assert _raw(out / "compressed", str(image))[0].shape == (1, 3, SEG_SIZE, SEG_SIZE)  # class maps keep their layout
    assert "precision: fp32" in (out / "compressed" / "deploy.yml").read_text()
