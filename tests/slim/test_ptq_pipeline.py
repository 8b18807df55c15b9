"""compress() with post-training quantization on a tiny detector: the artifacts, the report and
the decision which model ships are real outcomes of the run."""

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from kits.deploy import Predictor
from kits.detection.task import DetectionTask
from kits.slim import CompressionError, compress, load_recipe
from kits.slim.deployed import calibration_batches
from kits.slim.pipeline import check_collapse
sys.path.insert(0, str(Path(__file__).parent))
from slim_tiny import tiny_detection_cfg  # noqa: E402

RECIPE = """strategies:
  - {type: PTQ, calib_samples: 4, algo: minmax}
report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("ptq")
    (out / "ptq.yml").write_text(RECIPE)
    cfg = tiny_detection_cfg(out)
    import paddle

    paddle.seed(0)  # a fixed tiny model: an untrained random one can sit on a rounding edge
    report = compress(cfg, load_recipe(out / "ptq.yml"), lambda c: DetectionTask(), output=out / "slim")
    return out / "slim", report


def test_report_files_and_numbers(run):
    out, report = run
    saved = json.loads((out / "report.json").read_text())
    assert saved["shipped"] == report["shipped"]
    assert "| baseline | fp32 |" in (out / "report.md").read_text()
    for name in ("baseline", "compressed"):
        row = report[name]
        assert 0.0 <= row["accuracy"] <= 1.0
        assert row["latency_p50_ms"]["onnxruntime"] > 0
        assert row["flops"] > 0 and row["params"] > 0
    assert report["compressed"]["flops"] == report["baseline"]["flops"]  # quantization keeps the FLOPs
    assert report["info"]["ptq"]["calibration_samples"] == 4


def test_the_faster_model_ships(run):
    out, report = run
    speedup = report["speedup"]["onnxruntime"]
    drop = report["accuracy_drop"]
    assert report["shipped"] == ("compressed" if speedup >= 1.05 and drop <= 0.01 else "baseline")
    if report["shipped"] == "baseline":
        assert any("shipping the baseline model" in n for n in report["notes"])
    shipped = (out / "ship" / "deploy.yml").read_text()
    assert shipped == (out / report["shipped"] / "deploy.yml").read_text()


def test_int8_graph_runs_close_to_fp32(run):
    out, _ = run
    graph = onnx.load(str(out / "compressed" / "model.onnx")).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [t for t in graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 4]
    assert len(int8_weights) >= 20  # the conv weights are stored as int8
    # 7-bit by default (reduce_range): 8-bit weights saturate int8 kernels on x86 CPUs without VNNI
    peaks = [int(np.abs(onnx.numpy_helper.to_array(t).astype(np.int32)).max()) for t in int8_weights]
    assert max(peaks) <= 64 and max(peaks) >= 63
    assert "precision: int8" in (out / "compressed" / "deploy.yml").read_text()
    # a training image as inference sees it: the ranges were calibrated on such images
    x = next(calibration_batches(DetectionTask(), tiny_detection_cfg(out.parent), 1, names=["image"]))["image"]
    fp32 = Predictor(out / "baseline", "onnxruntime").run_raw([x])
    int8 = Predictor(out / "compressed", "onnxruntime").run_raw([x])
    for a, b in zip(fp32, int8):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 0.1 * (np.abs(a).max() + 1e-6) + 0.05


def test_collapse_guard_names_both_numbers(tmp_path):
    report = {"deploy_gap": 0.3, "compressed": {"accuracy": 0.2}, "training_graph_accuracy": 0.5,
              "target_engine": "openvino"}
    with pytest.raises(CompressionError) as err:
        check_collapse(report, 0.02, tmp_path / "report.md")
    assert "0.2000 in openvino" in str(err.value) and "0.5000" in str(err.value)
    with pytest.raises(CompressionError, match="in onnxruntime the same file scores 0.4990"):
        check_collapse({**report, "other_engines_accuracy": {"onnxruntime": 0.499}}, 0.02, tmp_path / "report.md")
    check_collapse({**report, "deploy_gap": 0.01}, 0.02, tmp_path / "report.md")  # within bounds: no error


NNCF_RECIPE = """strategies:
  - {type: PTQ, quantizer: nncf, calib_samples: 4}
report: {backends: [openvino, onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}
"""


def test_nncf_quantizer_writes_int8_that_both_engines_run(tmp_path):
    pytest.importorskip("nncf")
    pytest.importorskip("openvino")
    (tmp_path / "nncf.yml").write_text(NNCF_RECIPE)
    import paddle

    paddle.seed(0)  # a fixed tiny model: an untrained random one can sit on a rounding edge
    report = compress(tiny_detection_cfg(tmp_path), load_recipe(tmp_path / "nncf.yml"), lambda c: DetectionTask(),
                      output=tmp_path / "slim")
    out = tmp_path / "slim"
    assert report["info"]["ptq"] == {"calibration_samples": 4, "quantizer": "nncf", "algo": "minmax", "preset": "mixed",
                                     "weights_made_7bit": report["info"]["ptq"]["weights_made_7bit"],
                                     "model_type": None, "float_nodes": report["info"]["ptq"]["float_nodes"]}
    graph = onnx.load(str(out / "compressed" / "model.onnx")).graph
    quantized = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert len(quantized) >= 20
    # the head's output convs are in the ignored scope: their weights reach the graph in float
    float_nodes = set(report["info"]["ptq"]["float_nodes"])
    convs = {n.name: n for n in graph.node if n.op_type == "Conv"}
    assert float_nodes & set(convs)
    for name in float_nodes & set(convs):
        producers = {o: n.op_type for n in graph.node for o in n.output}
        assert producers.get(convs[name].input[1]) != "DequantizeLinear"
    # a training image as inference sees it: the ranges were calibrated on such images
    cfg = tiny_detection_cfg(tmp_path)
    x = next(calibration_batches(DetectionTask(), cfg, 1, names=["image"]))["image"]
    fp32 = Predictor(out / "baseline", "onnxruntime").run_raw([x])
    int8 = Predictor(out / "compressed", "onnxruntime").run_raw([x])
    for a, b in zip(fp32, int8):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 0.1 * (np.abs(a).max() + 1e-6) + 0.05
    # OpenVINO runs the same file; on CPUs without VNNI its INT8 results can stray further from FP32
    # than ONNX Runtime's (the report's deployed accuracy per engine is what judges that)
    assert [o.shape for o in Predictor(out / "compressed", "openvino").run_raw([x])] == [o.shape for o in fp32]
    assert report["compressed"]["latency_p50_ms"]["openvino"] > 0


def test_nncf_options_are_checked():
    from kits.core.errors import ConfigError
    from kits.slim import STRATEGIES

    with pytest.raises(ConfigError, match="dynamic, quant_format belong to the onnxruntime quantizer"):
        STRATEGIES.build({"type": "PTQ", "quantizer": "nncf", "dynamic": True, "quant_format": "qoperator"})
    with pytest.raises(ConfigError, match="Did you mean 'nncf'"):
        STRATEGIES.build({"type": "PTQ", "quantizer": "ncnf"})
    with pytest.raises(ConfigError, match="PTQ.preset must be one of mixed, performance"):
        STRATEGIES.build({"type": "PTQ", "quantizer": "nncf", "preset": "fast"})
    with pytest.raises(ConfigError, match="PTQ.model_type is an option of quantizer nncf"):
        STRATEGIES.build({"type": "PTQ", "model_type": "transformer"})


def test_seven_bit_weights_requantizes_only_wide_weights():
    from onnx import TensorProto, helper, numpy_helper

    from kits.slim.ptq import seven_bit_weights

    wide = np.array([[127, -128, 3, -1]], np.int8)
    narrow = np.array([[63, -64, 5, 0]], np.int8)
    inits = [numpy_helper.from_array(wide, "w_wide"), numpy_helper.from_array(np.float32(0.01), "s_wide"),
             numpy_helper.from_array(narrow, "w_narrow"), numpy_helper.from_array(np.float32(0.02), "s_narrow")]
    nodes = [helper.make_node("DequantizeLinear", ["w_wide", "s_wide"], ["a"]),
             helper.make_node("DequantizeLinear", ["w_narrow", "s_narrow"], ["b"]),
             helper.make_node("Add", ["a", "b"], ["y"])]
    graph = helper.make_graph(nodes, "g", [], [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
                              initializer=inits)
    model = helper.make_model(graph)
    assert seven_bit_weights(model) == 1
    values = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    assert values["w_wide"].tolist() == [[63, -64, 2, 0]] and values["s_wide"] == np.float32(0.02)
    assert values["w_narrow"].tolist() == narrow.tolist() and values["s_narrow"] == np.float32(0.02)
    # the dequantized weights move by at most one new step (the old step doubled)
    assert np.abs(values["w_wide"] * 0.02 - wide * 0.01).max() <= 0.01 + 1e-7


@pytest.mark.parametrize("quantizer", ["onnxruntime", "nncf"])
def test_mse_calibration_through_each_quantizer(tmp_path, quantizer):
    if quantizer == "nncf":
        pytest.importorskip("nncf")
    import paddle

    paddle.seed(0)
    (tmp_path / "mse.yml").write_text(
        f"strategies:\n  - {{type: PTQ, quantizer: {quantizer}, algo: mse, calib_samples: 4}}\n"
        "report: {backends: [onnxruntime], threads: 1, rounds: 1, iters: 3, eval_samples: 4, max_deploy_gap: 1.0}\n")
    report = compress(tiny_detection_cfg(tmp_path), load_recipe(tmp_path / "mse.yml"), lambda c: DetectionTask(),
                      output=tmp_path / "slim")
    assert report["info"]["ptq"]["algo"] == "mse" and report["compressed"]["precision"] == "int8"
    out = tmp_path / "slim"
    if quantizer == "onnxruntime":  # the MSE ranges are the graph's: same samples, same histograms
        from kits.slim.mse_calib import mse_overrides

        info = report["info"]["ptq"]
        assert 0 < info["mse_clipped"] <= info["mse_ranges"]
        feeds = iter(list(calibration_batches(DetectionTask(), tiny_detection_cfg(tmp_path), 4, names=["image"])))
        reader = type("R", (), {"get_next": lambda self: next(feeds, None)})()
        overrides, clipped = mse_overrides(out / "baseline" / "model.onnx", reader)
        graph = onnx.load(str(out / "compressed" / "model.onnx")).graph
        inits = {t.name: onnx.numpy_helper.to_array(t) for t in graph.initializer}
        scales = {n.input[0]: float(inits[n.input[1]]) for n in graph.node
                  if n.op_type == "QuantizeLinear" and n.input[1] in inits and inits[n.input[1]].size == 1}
        # ops that only move values (Split, Reshape, MaxPool, ...) take their input's scale instead
        producer = {o: n.op_type for n in graph.node for o in n.output}
        checked = [t for t in clipped if t in scales and producer.get(t) in ("Conv", "Concat", "Add", "Mul", "HardSigmoid")]
        assert checked
        for name in checked:
            (rng,) = overrides[name]
            assert scales[name] == pytest.approx((float(rng["rmax"]) - float(rng["rmin"])) / 255, rel=1e-4)
    x = next(calibration_batches(DetectionTask(), tiny_detection_cfg(tmp_path), 1, names=["image"]))["image"]
    fp32 = Predictor(out / "baseline", "onnxruntime").run_raw([x])
    int8 = Predictor(out / "compressed", "onnxruntime").run_raw([x])
    for a, b in zip(fp32, int8):
        assert a.shape == b.shape
        assert np.abs(a - b).max() <= 0.1 * (np.abs(a).max() + 1e-6) + 0.05
