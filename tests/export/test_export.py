"""Exporter: every format of three tiny models, deploy.yml contents, parity, and clear errors."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import paddle
import paddle.nn.functional as F
import pytest
import yaml

from kits.core.errors import ConfigError
from kits.core.fileio import sha256sum
from kits.export import FORMATS, ONNX_OPSET, ExportError, export
from kits.export.formats import Exporter, Option, plan

sys.path.insert(0, str(Path(__file__).resolve().parent))
from tiny_models import SPECS, TinyClassifier, TinyTextClassifier, export_all, installed_formats  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_all(tmp_path_factory.mktemp("export"))


def deploy_yml(result) -> dict:
    return yaml.safe_load(result.deploy_file.read_text())


def test_formats_table_is_typed():
    assert {"paddle", "paddle-legacy", "onnx", "openvino", "mnn", "ncnn", "tensorrt"} <= set(FORMATS)
    for name, fmt in FORMATS.items():
        assert issubclass(fmt.exporter, Exporter) and fmt.suffix.startswith(".") and fmt.engine
        assert all(isinstance(o, Option) for o in fmt.options.values())
        assert all(dep in FORMATS for dep in fmt.needs)
    assert [n for n, _, _ in plan(["mnn"])] == ["paddle", "onnx", "mnn"]  # ONNX-derived formats reuse one ONNX


@pytest.mark.parametrize("name", ["classifier", "segmenter", "text"])
def test_every_installed_format_is_written_with_parity(exported, name):
    model, result = exported[name]
    assert set(result) == set(installed_formats(name))
    spec = deploy_yml(result)
    for fmt, entry in spec["models"].items():
        for file in entry["files"]:
            path = result.deploy_file.parent / file
            assert path.is_file() and entry["sha256"][file] == sha256sum(path)
    print(f"{name}: export parity {result.parity}")
    assert result.parity["onnxruntime"] <= 1e-4
    assert spec["parity"]["onnxruntime"] == pytest.approx(result.parity["onnxruntime"])
    assert spec["versions"]["paddlepaddle"] == paddle.__version__
    assert {"paddle2onnx", "onnx", "onnxruntime"} <= set(spec["versions"])
    assert spec["outputs"] == ["logits"] and spec["labels"] == SPECS[name]["labels"]
    assert spec["preprocess"] == SPECS[name].get("preprocess", [])
    assert onnx.load(str(result["onnx"])).opset_import[0].version == ONNX_OPSET


def test_input_spec_keeps_dynamic_dims(exported):
    seg = deploy_yml(exported["segmenter"][1])["inputs"]
    assert seg == [{"name": "image", "dtype": "float32", "shape": [-1, 3, -1, -1],
                    "example_shape": [1, 3, 32, 48], "range": None}]
    text = deploy_yml(exported["text"][1])["inputs"]
    assert [(i["name"], i["dtype"], i["shape"]) for i in text] == [("input_ids", "int64", [-1, -1]),
                                                                   ("attention_mask", "int64", [-1, -1])]
    assert text[0]["range"] == [0, 50]
    assert deploy_yml(exported["classifier"][1])["source"]["config_hash"] == "0" * 64
    graph = onnx.load(str(exported["text"][1]["onnx"])).graph
    assert [o.name for o in graph.output] == ["logits"]
    assert not graph.input[0].type.tensor_type.shape.dim[1].HasField("dim_value")  # sequence length stays dynamic


def test_tensorrt_writes_build_script_and_paddle_trt_settings(exported):
    result = exported["text"][1]
    entry = deploy_yml(result)["models"]["tensorrt"]
    script = result["tensorrt"].read_text()
    assert "trtexec --onnx=model.onnx --saveEngine=model.engine" in script
    assert "--minShapes=input_ids:1x1,attention_mask:1x1" in script
    assert entry["paddle_trt"]["shapes"]["input_ids"] == {"min": [1, 1], "opt": [1, 7], "max": [1, 7]}
    if not entry["engine_built"]:
        assert any("build_tensorrt.sh on the target" in n for n in result.notes)


def test_tensorrt_engine_is_built_on_a_gpu_machine(exported):
    if not exported["classifier"][1].deploy_file.parent.joinpath("model.engine").exists():
        pytest.skip("no NVIDIA GPU with TensorRT's trtexec on this machine: the engine is built on the target")


def test_unknown_format_and_bad_options_name_the_valid_ones(tmp_path):
    model = TinyClassifier()
    with pytest.raises(ConfigError, match="unknown export format 'onxx'. Did you mean 'onnx'.*Valid formats"):
        export(model, {}, tmp_path, formats=["onxx"])
    with pytest.raises(ConfigError, match="no option 'weight_bits'. Did you mean 'weight_quant_bits'"):
        export(model, {}, tmp_path, formats=["mnn"], options={"mnn": {"weight_bits": 8}})
    with pytest.raises(ConfigError, match=r"mnn.weight_quant_bits=4 is invalid; expected 8, None"):
        plan(["mnn"], {"mnn": {"weight_quant_bits": 4}})
    with pytest.raises(ConfigError, match=r"openvino.fp16='yes' is invalid; expected bool"):
        plan(["openvino"], {"openvino": {"fp16": "yes"}})
    with pytest.raises(ConfigError, match="unknown deploy spec key 'label'. Did you mean 'labels'"):
        export(model, {"label": []}, tmp_path)
    with pytest.raises(ConfigError, match="unknown preprocess op 'Normalise'. Did you mean 'Normalize'"):
        export(model, {"preprocess": [{"type": "Normalise"}]}, tmp_path)
    assert not list(tmp_path.iterdir())  # nothing is written before the request is valid


def test_ncnn_refuses_integer_inputs(tmp_path):
    with pytest.raises(ExportError, match="ncnn .* cannot take integer inputs input_ids"):
        export(TinyTextClassifier(), SPECS["text"], tmp_path, formats=["ncnn"])


class TinyAttention(TinyTextClassifier):
    """The transformer ops that paddle 3.3 binds to PIR-only C functions: matmul, gelu, tanh, sum."""

    def export_forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        bias = (1.0 - attention_mask.astype("float32").unsqueeze(1)) * -1e4
        ctx = paddle.matmul(F.softmax(paddle.matmul(x, x, transpose_y=True) + bias, -1), x)
        pooled = paddle.sum(F.gelu(ctx), axis=1) + paddle.tanh(x).sum(axis=1)
        return self.fc(pooled)


class SinPool(TinyTextClassifier):
    def export_forward(self, input_ids, attention_mask):
        return self.fc(paddle.sin(self.embed(input_ids) * attention_mask.astype("float32").unsqueeze(-1)).sum(1))


def test_transformer_ops_export_to_the_legacy_program(tmp_path):
    from paddle import inference

    paddle.seed(0)
    model = TinyAttention()
    model.eval()
    export(model, {}, tmp_path, formats=["paddle-legacy"])
    ids = np.array([[3, 9, 27, 4, 0], [5, 6, 7, 8, 1]], np.int64)
    mask = np.array([[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]], np.int64)
    expected = model.export_forward(paddle.to_tensor(ids), paddle.to_tensor(mask)).numpy()
    config = inference.Config(str(tmp_path / "model_legacy.pdmodel"), str(tmp_path / "model_legacy.pdiparams"))
    config.disable_gpu()
    predictor = inference.create_predictor(config)
    for name, value in zip(predictor.get_input_names(), (ids, mask)):
        predictor.get_input_handle(name).copy_from_cpu(value)
    predictor.run()
    got = predictor.get_output_handle(predictor.get_output_names()[0]).copy_to_cpu()
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert paddle.matmul is paddle.tensor.matmul  # the scoped fallbacks are undone


def test_legacy_ir_limits_are_reported(tmp_path):
    with pytest.raises(ExportError, match="paddle-legacy: Paddle's legacy program IR cannot trace this model"):
        export(SinPool(), {}, tmp_path, formats=["paddle-legacy"])


def test_mnn_int8_weights_and_openvino_fp16_options(tmp_path):
    paddle.seed(0)
    result = export(TinyClassifier(), SPECS["classifier"], tmp_path,
                    formats=[f for f in ("mnn", "openvino") if f in installed_formats("classifier")] or ["onnx"],
                    options={"mnn": {"weight_quant_bits": 8}, "openvino": {"fp16": True}})
    models = deploy_yml(result)["models"]
    if "mnn" in models:
        assert models["mnn"]["precision"] == "int8-weights"
    if "openvino" in models:
        assert models["openvino"]["precision"] == "fp16" and models["openvino"]["options"] == {"fp16": True}


def test_model_mode_is_restored(tmp_path):
    model = TinyClassifier()
    model.train()
    export(model, {}, tmp_path, formats=["paddle"])
    assert model.training


def test_export_tool_rejects_a_bad_format_before_loading_anything():
    proc = subprocess.run([sys.executable, "tools/export.py", "-c", "missing.yml", "--format", "onxx"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "unknown export format 'onxx'. Did you mean 'onnx'" in proc.stderr


def test_raw_outputs_match_dygraph(exported):
    import onnxruntime as ort

    model, result = exported["segmenter"]
    x = np.random.default_rng(1).standard_normal((2, 3, 40, 24)).astype("float32")  # another dynamic size
    want = model.export_forward(paddle.to_tensor(x)).numpy()
    got = ort.InferenceSession(str(result["onnx"])).run(None, {"image": x})[0]
    assert got.shape == (2, 3, 40, 24) and np.abs(got - want).max() <= 1e-4
