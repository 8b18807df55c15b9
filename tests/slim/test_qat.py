"""QAT strategy: tiny real models of each kit are fake-quantized, trained a few steps, written as
INT8 QDQ ONNX, and run in ONNX Runtime and OpenVINO against the fake-quantized paddle model.

``weight_bits=7`` where engines are compared: on CPUs without VNNI (this CI's AVX2) int8 kernels
saturate with 8-bit weights, so only 7-bit weights give engine-independent numbers.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

paddle = pytest.importorskip("paddle")

from kits.core.config import Config  # noqa: E402
from kits.core.errors import ConfigError  # noqa: E402
from kits.slim.base import STRATEGIES, SlimContext  # noqa: E402
from kits.slim.int8_onnx import Int8ExportError, export_int8_onnx, onnxruntime_outputs, output_diff  # noqa: E402
from kits.slim.qat import QAT, quantizable_layers, quantized_layers  # noqa: E402

TINY_PICODET = {"type": "PicoDet", "input_size": 64, "backbone": {"type": "ESNet", "scale": 0.25},
                "neck": {"type": "CSPPAN", "out_channels": 32},
                "head": {"type": "PicoHead", "num_classes": 3, "in_channels": 32, "feat_channels": 32, "num_convs": 1}}
TINY_ENCODER = {"type": "TransformerEncoder", "vocab_size": 40, "hidden_size": 16, "num_layers": 1, "num_heads": 2,
                "intermediate_size": 32, "max_position": 32}


def op_counts(path) -> Counter:
    return Counter(n.op_type for n in onnx.load(str(path)).graph.node)


def openvino_outputs(path, feeds: dict) -> list[np.ndarray]:
    ov = pytest.importorskip("openvino")
    core = ov.Core()
    compiled = core.compile_model(core.read_model(str(path)), "CPU")
    result = compiled(feeds)
    return [result[out] for out in compiled.outputs]


def eval_outputs(model, feeds: dict) -> list[np.ndarray]:
    """The fake-quantized model's ``export_forward`` on named inputs (in its input_spec order)."""
    model.eval()
    with paddle.no_grad():
        outs = model.export_forward(*[paddle.to_tensor(feeds[s.name]) for s in model.input_spec()])
    return [o.numpy() for o in (outs if isinstance(outs, (list, tuple)) else [outs])]


def train_steps(model, batches, steps: int = 3) -> list[float]:
    model.train()
    optimizer = paddle.optimizer.Adam(learning_rate=1e-3, parameters=model.parameters())
    losses = []
    for i in range(steps):
        loss = model(batches[i % len(batches)])["loss"]
        loss.backward()
        optimizer.step()
        optimizer.clear_grad()
        losses.append(float(loss))
    return losses


# -- the strategy's config ------------------------------------------------------------------
@pytest.mark.parametrize("fields, message", [
    ({"weight_quantize": "channel_wise"}, "Did you mean 'channel_wise_abs_max'"),
    ({"activation_quantize": "abs_max"}, "activation_quantize 'abs_max' is unknown"),
    ({"weight_bits": 16}, "weight_bits must be an integer from 2 to 8"),
    ({"activation_bits": 4}, "activation_bits must be 8"),
    ({"moving_rate": 1.5}, "moving_rate must be in (0, 1)"),
    ({"skip": "backbone"}, "list of layer-name patterns"),
    ({"freeze_ranges_at": 1.5}, "freeze_ranges_at must be a fraction in (0, 1]"),
    ({"freeze_ranges_at": 0.5, "activation_quantize": "moving_average_abs_max"}, "needs activation_quantize"),
])
def test_invalid_fields_are_named(fields, message):
    with pytest.raises(ConfigError) as err:
        QAT(**fields)
    assert message in str(err.value)


def test_registered_and_built_from_a_recipe_entry():
    step = STRATEGIES.build({"type": "QAT", "weight_quantize": "abs_max", "skip": ["backbone.stem.*"]})
    assert isinstance(step, QAT) and step.stage == "model"
    assert step.describe()["weight_quantize"] == "abs_max"
    with pytest.raises(ConfigError, match="moving_rte"):
        STRATEGIES.build({"type": "QAT", "moving_rte": 0.9})


def test_skip_pattern_that_matches_nothing_is_an_error():
    import kits.detection.models  # noqa: F401  (fills the registry)
    from kits.detection.registry import MODELS

    model = MODELS.build(TINY_PICODET)
    with pytest.raises(ConfigError) as err:
        QAT(skip=["backbone.stm.*"]).select(model)
    assert "matches no Conv2D/Linear layer" in str(err.value) and "backbone.stem.conv" in str(err.value)


def test_float_model_is_refused_by_the_int8_export(tmp_path):
    import kits.detection.models  # noqa: F401  (fills the registry)
    from kits.detection.registry import MODELS

    with pytest.raises(Int8ExportError, match="apply the QAT strategy first"):
        export_int8_onnx(MODELS.build(TINY_PICODET), {}, tmp_path)


# -- detection: PicoDet ---------------------------------------------------------------------
def _detection_batches():
    rng = np.random.default_rng(0)
    boxes = paddle.to_tensor(np.array([[[5, 5, 40, 40]], [[10, 10, 60, 50]]], np.float32))
    classes = paddle.to_tensor(np.array([[0], [2]], np.int32))
    return [{"image": paddle.to_tensor(rng.normal(size=(2, 3, 64, 64)).astype("float32")), "gt_bbox": boxes,
             "gt_class": classes} for _ in range(2)]


@pytest.fixture(scope="module")
def picodet(tmp_path_factory):
    """A tiny PicoDet after QAT.apply (stem kept float), 4 training steps and the INT8 export."""
    from kits.detection.task import DetectionTask

    task = DetectionTask()
    cfg = Config({"kit": "detection", "model": TINY_PICODET}, path="tiny.yml")
    paddle.seed(0)
    model = task.build_model(cfg)
    ctx = SlimContext(cfg=cfg, task=task, model=model, out_dir=tmp_path_factory.mktemp("qat_det"))
    QAT(weight_bits=7, skip=["backbone.stem.*"]).apply(ctx)
    scale_before = float(quantized_layers(ctx.model)["head.cls_out.0"].activation_quanter.scales().numpy()[0])
    losses = train_steps(ctx.model, _detection_batches(), steps=4)
    loss_keys = set(ctx.model(_detection_batches()[0]))  # before the export: train mode moves the scales
    path = ctx.onnx_exporter(ctx, ctx.out_dir / "work")
    return {"ctx": ctx, "float": model, "path": path, "losses": losses, "scale_before": scale_before,
            "loss_keys": loss_keys}


def test_qat_wraps_a_copy_and_keeps_the_model_contract(picodet):
    ctx, original = picodet["ctx"], picodet["float"]
    assert ctx.needs_training and ctx.precision == "int8" and callable(ctx.onnx_exporter)
    layers = quantized_layers(ctx.model)
    assert len(layers) == len(quantizable_layers(original)) - 1 == ctx.info["qat"]["quantized_layers"]
    assert ctx.info["qat"]["float_layers"] == ["backbone.stem.conv"]
    assert type(ctx.model.backbone.stem.conv) is paddle.nn.Conv2D  # skipped: left a plain conv
    assert type(original.head.cls_out[0]) is paddle.nn.Conv2D and not quantized_layers(original)
    assert all(np.isfinite(picodet["losses"])) and len(picodet["losses"]) == 4
    assert picodet["loss_keys"] == {"loss", "loss_vfl", "loss_bbox", "loss_dfl"}
    ctx.model.eval()
    with paddle.no_grad():
        out = ctx.model({"image": _detection_batches()[0]["image"]})
    assert [tuple(t.shape) for t in out["cls_scores"]] == [(2, 64, 3), (2, 16, 3), (2, 4, 3), (2, 1, 3)]
    # the input ranges were set by the training batches (5 forward passes in train mode)
    quanter = layers["head.cls_out.0"].activation_quanter
    step, zero_point = (float(t.numpy()[0]) for t in quanter.qparams())
    assert picodet["scale_before"] == 1.0 and 0 < step < 0.5 and 0 <= zero_point <= 255
    assert float(quanter._batches.numpy()[0]) == 5


def test_detection_int8_onnx_has_qdq_and_matches_the_simulated_model(picodet):
    facts, path = picodet["ctx"].info["qat_export"], picodet["path"]
    quantized = picodet["ctx"].info["qat"]["quantized_layers"]
    ops = op_counts(path)
    print(f"PicoDet INT8 ONNX: {facts}")
    assert path.name == "model_int8.onnx" and facts["quantized_weights"] == quantized
    assert ops["QuantizeLinear"] == facts["quantized_inputs"] == quantized and ops["Clip"] == 0
    assert ops["DequantizeLinear"] == 2 * quantized and ops["Conv"] == quantized + 1
    graph = onnx.load(str(path)).graph
    zero_points = [i for i in graph.initializer if i.name.endswith(".input.0.zero_point")]
    assert len(zero_points) == quantized and all(i.data_type == onnx.TensorProto.UINT8 for i in zero_points)
    assert any(numpy_helper.to_array(i) > 0 for i in zero_points)  # inputs with negative values
    int8 = [i for i in graph.initializer if i.data_type == onnx.TensorProto.INT8 and i.name.endswith(".int8")]
    assert len(int8) == quantized and np.abs(numpy_helper.to_array(int8[0])).max() <= 63  # 7-bit weights
    assert [o.name for o in graph.output] == [f"scores_{i}" for i in range(4)] + [f"dists_{i}" for i in range(4)]
    assert facts["layer_diff"] < 1e-3 and facts["onnx_diff"] < 1e-4 and facts["onnxruntime_diff"] < 1e-4


def test_openvino_runs_the_detection_int8_model(picodet):
    x = np.random.default_rng(1).normal(size=(1, 3, 64, 64)).astype("float32")
    reference = eval_outputs(picodet["ctx"].model, {"image": x})
    ov_diff = output_diff(openvino_outputs(picodet["path"], {"image": x}), reference)
    ort_diff = output_diff(onnxruntime_outputs(picodet["path"], {"image": x}), reference)
    print(f"PicoDet INT8: OpenVINO diff {ov_diff:.3g}, ONNX Runtime diff {ort_diff:.3g}")
    assert ov_diff < 0.01 and ort_diff < 1e-4  # OpenVINO: its own int8 kernels round differently


# -- segmentation: PP-LiteSeg through the shared Trainer --------------------------------------
def _write_images(root: Path, count: int = 8, size: int = 128) -> None:
    cv2 = pytest.importorskip("cv2")
    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    for i in range(count):
        image = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "images" / f"{i}.png"), image)
        cv2.imwrite(str(root / "masks" / f"{i}.png"), (image[..., 0] > 128).astype(np.uint8) + (image[..., 1] > 200))


def test_segmentation_qat_trains_with_the_trainer_and_exports(tmp_path):
    from kits.core.trainer import Trainer
    from kits.segmentation.task import SegmentationTask

    paddle.seed(0)  # a rounding flip at a 7-bit level boundary in some random inits moves one layer by ~1e-3
    _write_images(tmp_path / "data")
    data = {"type": "FolderSegmentation", "root": str(tmp_path / "data"), "num_classes": 3,
            "transforms": [{"type": "Normalize"}]}
    cfg = Config({"kit": "segmentation", "train_dataset": data, "val_dataset": data,
                  "export": {"input_size": [128, 128]},
                  "model": {"type": "PPLiteSeg", "num_classes": 3, "backbone": {"type": "STDCNet", "base": 16},
                            "arm_channels": [16, 24, 32], "head_channels": [16, 16, 16], "sppm_channels": 32},
                  "optimizer": {"type": "Adam", "lr": 0.001},
                  "trainer": {"iters": 4, "batch_size": 4, "num_workers": 0, "output_dir": str(tmp_path / "out"),
                              "progress": False, "visualdl": False, "save_interval": 1000, "eval_interval": 1000}},
                 path="tiny.yml")
    task = SegmentationTask()
    ctx = SlimContext(cfg=cfg, task=task, model=task.build_model(cfg), out_dir=tmp_path)
    QAT(weight_bits=7).apply(ctx)
    summary = Trainer(cfg, task, callbacks=ctx.callbacks, model=ctx.model).train()
    assert summary["steps"] == 4 and (tmp_path / "out" / "final_model.safetensors").is_file()
    path = ctx.onnx_exporter(ctx, tmp_path / "work")
    facts = ctx.info["qat_export"]
    print(f"PP-LiteSeg INT8 ONNX: {facts}")
    # the auxiliary heads train but are not part of the exported graph
    assert len(facts["layers_not_in_graph"]) == ctx.info["qat"]["quantized_layers"] - facts["quantized_weights"] > 0
    assert op_counts(path)["QuantizeLinear"] == facts["quantized_inputs"] == facts["quantized_weights"]
    assert facts["layer_diff"] < 1e-3 and facts["onnx_diff"] <= max(0.01, 2 * facts["quantization_error"])
    graph = onnx.load(str(path)).graph
    assert [i.name for i in graph.input] == ["image"] and [o.name for o in graph.output] == ["logits"]
    # a fresh input: one value on a rounding boundary, computed an ulp apart by the two engines,
    # flips a step that the layers after it spread over the whole map, so judge the classes
    x = np.random.default_rng(1).normal(size=(1, 3, 128, 128)).astype("float32")
    reference = eval_outputs(ctx.model, {"image": x})[0].argmax(1)
    assert np.mean(onnxruntime_outputs(path, {"image": x})[0].argmax(1) == reference) > 0.9
    ov_out = openvino_outputs(path, {"image": x})[0]  # OpenVINO's int8 kernels: see the report
    assert ov_out.shape == (1, 3, 128, 128) and np.isfinite(ov_out).all()


# -- NLP: a transformer classifier, a CRF token tagger, BiGRU-CRF ------------------------------
def _nlp_batch(with_types: bool, labels):
    ids = np.array([[2, 7, 8, 9, 3, 0], [2, 5, 6, 7, 11, 3]], np.int64)
    batch = {"input_ids": ids, "attention_mask": (ids != 0).astype(np.int64), "labels": np.array(labels)}
    if with_types:
        batch["token_type_ids"] = np.zeros_like(ids)
    return {k: paddle.to_tensor(v) for k, v in batch.items()}


NLP_CASES = {
    "SequenceClassifier": ({"type": "SequenceClassifier", "encoder": TINY_ENCODER, "num_classes": 3}, True, [0, 2]),
    "TokenClassifier-CRF": ({"type": "TokenClassifier", "encoder": TINY_ENCODER, "num_classes": 4, "use_crf": True},
                            True, [[0, 1, 2, 3, 1, -100], [1, 1, 2, 0, 3, 1]]),
    "BiGRUCRF": ({"type": "BiGRUCRF", "vocab_size": 40, "num_classes": 4, "embed_dim": 16, "hidden_size": 16},
                 False, [[0, 1, 2, 3, 1, -100], [1, 1, 2, 0, 3, 1]]),
}


def _nlp_qat(name: str, out_dir: Path, activation_quantize: str = "moving_average_min_max"):
    """The NLP case ``name`` after QAT.apply and 3 training steps: (ctx, batch, deploy spec)."""
    import kits.nlp.models  # noqa: F401  (fills the registry)
    from kits.nlp.registry import MODELS

    model_cfg, with_types, labels = NLP_CASES[name]
    paddle.seed(0)
    ctx = SlimContext(cfg=Config({}), task=None, model=MODELS.build(model_cfg), out_dir=out_dir)
    QAT(weight_bits=7, activation_quantize=activation_quantize).apply(ctx)
    batch = _nlp_batch(with_types, labels)
    assert all(np.isfinite(train_steps(ctx.model, [batch])))
    spec = {"example_shapes": {n: [1, 6] for n in ("input_ids", "token_type_ids", "attention_mask")},
            "input_ranges": {"input_ids": [0, 40]}}
    return ctx, batch, spec


@pytest.mark.parametrize("name", list(NLP_CASES))
def test_nlp_models_export_int8_matmuls(name, tmp_path):
    ctx, batch, spec = _nlp_qat(name, tmp_path)
    path = export_int8_onnx(ctx.model, spec, tmp_path, info=ctx.info)
    facts, ops = ctx.info["qat_export"], op_counts(path)
    print(f"{name} INT8 ONNX: {facts}")
    in_graph = ctx.info["qat"]["quantized_layers"] - len(facts["layers_not_in_graph"])
    float_linears = [n for n, layer in ctx.model.named_sublayers() if isinstance(layer, paddle.nn.Linear)]
    assert float_linears == [], "every Linear, the encoder's fast ones included, is fake-quantized"
    assert facts["quantized_weights"] == ops["QuantizeLinear"] == in_graph and ops["MatMul"] >= in_graph
    assert facts["layers_not_in_graph"] == (["encoder.pooler"] if name == "TokenClassifier-CRF" else [])
    assert facts["layer_diff"] < 1e-3 and facts["onnx_diff"] < 1e-4
    feeds = {k: v.numpy() for k, v in batch.items() if k != "labels"}
    reference = eval_outputs(ctx.model, feeds)
    assert output_diff(onnxruntime_outputs(path, feeds), reference) < 1e-4
    assert output_diff(openvino_outputs(path, feeds), reference) < 1e-4


def test_abs_max_inputs_export_as_clipped_int8(tmp_path):
    ctx, batch, spec = _nlp_qat("SequenceClassifier", tmp_path, "moving_average_abs_max")
    path = export_int8_onnx(ctx.model, spec, tmp_path, info=ctx.info)
    ops, graph = op_counts(path), onnx.load(str(path)).graph
    assert ops["Clip"] == ops["QuantizeLinear"] == ctx.info["qat_export"]["quantized_inputs"] > 0
    zero_points = [i for i in graph.initializer if ".input." in i.name and i.name.endswith(".zero_point")]
    assert zero_points and all(i.data_type == onnx.TensorProto.INT8 for i in zero_points)
    feeds = {k: v.numpy() for k, v in batch.items() if k != "labels"}
    assert output_diff(onnxruntime_outputs(path, feeds), eval_outputs(ctx.model, feeds)) < 1e-4


def test_a_wrong_scale_in_the_file_is_caught(monkeypatch, tmp_path):
    import kits.slim.int8_onnx as int8_onnx

    ctx, _, spec = _nlp_qat("SequenceClassifier", tmp_path)
    real = int8_onnx._onnx_scale

    def wrong(scale, bits):  # every step 1.5x too large
        step, qmax = real(scale, bits)
        return step * 1.5, qmax

    monkeypatch.setattr(int8_onnx, "_onnx_scale", wrong)
    with pytest.raises(Int8ExportError, match="disagrees with the fake-quantized layer"):
        export_int8_onnx(ctx.model, spec, tmp_path)


def test_picodet_recipe_keeps_the_se_gates_outputs_and_stem_reader_float():
    from kits.core.config import load_config
    from kits.detection.task import DetectionTask
    from kits.slim import load_recipe

    root = Path(__file__).resolve().parents[2]
    cfg = load_config(root / "configs/detection/picodet_s_416_roadsign.yml", ["model.pretrained=null"])
    step = load_recipe(root / "configs/slim/qat_int8_picodet_openvino.yml").strategies[0]
    quantized, kept = step.select(DetectionTask().build_model(cfg))
    assert len(kept) == 13 * 2 + 8 + 1 and len(quantized) == 137 - len(kept)
    assert "backbone.stages.0.0.branch1.0.conv" in kept and "backbone.stages.0.0.pw.conv" in quantized
    assert sum(".se." in n for n in kept) == 26 and not any(".se." in n for n in quantized)


def test_ranges_freeze_after_the_scheduled_share_of_steps(tmp_path):
    """freeze_ranges_at: a Trainer callback stops the input ranges; a resumed run freezes them again."""
    import sys

    from kits.core.trainer import Trainer
    from kits.detection.task import DetectionTask
    from kits.slim.qat import FreezeRanges

    sys.path.insert(0, str(Path(__file__).parent))
    from slim_tiny import tiny_detection_cfg

    cfg, task = tiny_detection_cfg(tmp_path), DetectionTask()
    cfg["trainer"]["iters"] = 4
    ctx = SlimContext(cfg=cfg, task=task, model=task.build_model(cfg), out_dir=tmp_path)
    QAT(weight_bits=7, freeze_ranges_at=0.5).apply(ctx)
    assert [type(cb) for cb in ctx.callbacks] == [FreezeRanges]
    Trainer(cfg, task, callbacks=ctx.callbacks, model=ctx.model).train()
    quanters = [layer.activation_quanter for layer in quantized_layers(ctx.model).values()]
    assert all(float(q._batches.numpy()[0]) == 2 and not q.observing for q in quanters)  # steps 1-2 only
    assert ctx.callbacks[0].state_dict() == {"frozen": True}

    again = SlimContext(cfg=cfg, task=task, model=task.build_model(cfg), out_dir=tmp_path)
    QAT(weight_bits=7, freeze_ranges_at=0.5).apply(again)
    resumed = FreezeRanges(0.5)
    resumed.set_state_dict({"frozen": True})
    resumed.on_train_begin(None, None, again.model)
    assert not any(layer.activation_quanter.observing for layer in quantized_layers(again.model).values())
