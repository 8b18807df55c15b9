"""Runtime: every installed backend against paddle through the Predictor, ops, errors, CLI scripts."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from kits.deploy import (DeployError, EngineMissingError, FormatMismatchError, InputError, Predictor, SpecError,
                         compare_backends, load_spec)
from kits.deploy.backends import installed
from kits.deploy.ops import POSTPROCESS, PREPROCESS, PostContext

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "export"))

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"
IMAGES = SHARED / "datasets" / "roadsign_voc" / "JPEGImages"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from tiny_models import export_all

    return {name: result.deploy_file.parent for name, (_, result) in
            export_all(tmp_path_factory.mktemp("runtime")).items()}


def image_path() -> Path:
    if not IMAGES.is_dir():
        pytest.skip(f"needs {IMAGES} (datasets beside the repository)")
    return sorted(IMAGES.glob("*.jpg"))[0]


@pytest.mark.parametrize("name", ["classifier", "segmenter", "text"])
def test_every_installed_backend_matches_paddle(exported, name):
    rows = compare_backends(exported[name])
    print("\n" + "\n".join(f"{name:<10} {r['backend']:<12} {r['format']:<14} {r['max_abs_diff']}" for r in rows))
    expected = {("paddle", "paddle-legacy"), ("onnxruntime", "onnx")}
    expected |= {(b, b) for b in ("openvino", "mnn", "ncnn") if installed(b) and not (b == "ncnn" and name == "text")}
    assert {(r["backend"], r["format"]) for r in rows} == expected
    for row in rows:
        assert row["error"] is None and row["ok"], row
        assert row["max_abs_diff"] <= 1e-4 and row["results_equal"]


def test_predict_on_a_real_image_across_backends(exported):
    path = image_path()
    original = cv2.imread(str(path)).shape[:2]
    results = {b: Predictor(exported["segmenter"], b).predict(str(path)) for b in ("paddle", "onnxruntime")}
    assert results["paddle"]["mask"].shape == original  # resized back to the image, padding cropped
    assert np.array_equal(results["paddle"]["mask"], results["onnxruntime"]["mask"])
    top = Predictor(exported["classifier"], "onnxruntime").predict([str(path)])[0]
    assert len(top["topk"]) == 3 and top["topk"][0]["id"] == top["label"]
    assert top["topk"][0]["label"] in load_spec(exported["classifier"]).labels
    assert sum(t["score"] for t in top["topk"]) <= 1.0 + 1e-6


def test_text_model_takes_any_sequence_length(exported):
    rng = np.random.default_rng(3)
    paddle_p, ort_p = Predictor(exported["text"], "paddle"), Predictor(exported["text"], "onnxruntime")
    for length in (5, 19):
        item = {"input_ids": rng.integers(0, 50, size=length), "attention_mask": np.ones(length, "int64")}
        assert paddle_p.predict(item)["label"] == ort_p.predict(item)["label"]
        diff = np.abs(paddle_p.run_raw(paddle_p.tensors(item))[0] - ort_p.run_raw(ort_p.tensors(item))[0]).max()
        assert diff <= 1e-4


@pytest.mark.skipif(not installed("openvino"), reason="OpenVINO is not installed")
def test_openvino_compiles_fixed_size_models_for_the_example_shape(exported):
    rng = np.random.default_rng(1)
    ov, ref = Predictor(exported["classifier"], "openvino"), Predictor(exported["classifier"], "onnxruntime")
    assert ov.engine.static_shapes == ((1, 3, 32, 32),)
    for n in (1, 3, 1):  # batch 3 switches to one dynamic compile, which then serves batch 1 too
        x = rng.standard_normal((n, 3, 32, 32)).astype("float32")
        assert np.abs(ov.run_raw([x])[0] - ref.run_raw([x])[0]).max() <= 1e-4
        assert ov.engine.static_shapes is None or n == 1
    assert ov.engine.static_shapes is None
    for name in ("segmenter", "text"):  # FP32 with free spatial size / token inputs: dynamic from the start
        assert Predictor(exported[name], "openvino").engine.static_shapes is None


@pytest.mark.skipif(not installed("openvino"), reason="OpenVINO is not installed")
def test_openvino_keeps_int8_models_static_for_every_shape(exported, tmp_path):
    """OpenVINO miscomputes some INT8 graphs compiled with dynamic spatial dims: those stay static."""
    import shutil

    from kits.deploy.backends.openvino_backend import MAX_COMPILED

    copy = tmp_path / "segmenter_int8"
    shutil.copytree(exported["segmenter"], copy)
    spec = yaml.safe_load((copy / "deploy.yml").read_text())
    spec["models"]["openvino"]["precision"] = "int8"  # the rule reads the recorded precision
    (copy / "deploy.yml").write_text(yaml.safe_dump(spec))
    ov, ref = Predictor(copy, "openvino"), Predictor(exported["segmenter"], "onnxruntime")
    for width in range(MAX_COMPILED + 2):
        x = np.random.default_rng(width).standard_normal((1, 3, 48, 64 + 8 * width)).astype("float32")
        assert np.abs(ov.run_raw([x])[0] - ref.run_raw([x])[0]).max() <= 1e-4
        assert ov.engine.static_shapes == (x.shape,)
    assert len(ov.engine._compiled) == MAX_COMPILED


def test_paddle_onednn_option_keeps_fp32_parity(exported):
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
    plain = Predictor(exported["classifier"], "paddle", threads=1).run_raw([x])[0]
    onednn = Predictor(exported["classifier"], "paddle", threads=1, options={"onednn": True}).run_raw([x])[0]
    assert np.abs(plain - onednn).max() <= 1e-4


def test_missing_engine_names_the_pip_extra(exported, monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)  # an import of it now fails
    with pytest.raises(EngineMissingError, match=r"pip install -e \.\[openvino\]"):
        Predictor(exported["classifier"], "openvino")
    from kits.deploy.backends.base import require

    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(EngineMissingError, match=r"pip install -e \.\[onnx\]"):
        require("onnxruntime", "onnx")


def test_format_and_backend_mismatches_are_clear(exported):
    with pytest.raises(FormatMismatchError, match="backend 'ncnn' runs ncnn; re-export with --format ncnn"):
        Predictor(exported["text"], "ncnn")
    with pytest.raises(DeployError, match="unknown backend 'onnxrt'"):
        Predictor(exported["text"], "onnxrt")
    with pytest.raises(DeployError, match="no option 'onedn'. Did you mean 'onednn'"):
        Predictor(exported["text"], "paddle", options={"onedn": True})


def test_gpu_devices(exported):
    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EngineMissingError, match="no CUDAExecutionProvider"):
            Predictor(exported["classifier"], "onnxruntime", device="gpu")
        pytest.skip("no CUDA GPU / onnxruntime-gpu here: GPU and TensorRT runs are checked on GPU machines")
    p = Predictor(exported["classifier"], "onnxruntime", device="gpu")
    ref = Predictor(exported["classifier"], "onnxruntime")
    x = np.zeros((1, 3, 32, 32), "float32")
    assert np.abs(p.run_raw([x])[0] - ref.run_raw([x])[0]).max() <= 1e-3


def test_wrong_inputs_are_rejected(exported):
    text = Predictor(exported["text"], "onnxruntime")
    with pytest.raises(InputError, match="needs input 'input_ids'"):
        text.predict(str(ROOT / "README.md"))
    with pytest.raises(InputError, match="takes int64 values, got float32"):
        text.run_raw({"input_ids": np.zeros((1, 4), "float32"), "attention_mask": np.ones((1, 4), "int64")})
    cls = Predictor(exported["classifier"], "onnxruntime")
    with pytest.raises(InputError, match=r"must have shape \[-1, 3, 32, 32\]"):
        cls.run_raw([np.zeros((1, 3, 16, 16), "float32")])
    with pytest.raises(InputError, match="cannot read"):
        cls.predict(str(ROOT / "pyproject.toml"))


def test_spec_is_validated_and_files_are_verified(exported, tmp_path):
    import shutil

    copy = tmp_path / "model"
    shutil.copytree(exported["classifier"], copy)
    (copy / "model.onnx").write_bytes((copy / "model.onnx").read_bytes() + b"x")
    with pytest.raises(SpecError, match="does not match the sha256"):
        Predictor(copy, "onnxruntime")
    data = yaml.safe_load((copy / "deploy.yml").read_text())
    data["lables"] = data.pop("labels")
    (copy / "deploy.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(SpecError, match="unknown key 'lables'. Did you mean 'labels'"):
        load_spec(copy)
    with pytest.raises(SpecError, match="no deploy.yml"):
        load_spec(tmp_path)


def test_image_ops_keep_geometry():
    image = np.zeros((100, 50, 3), np.uint8)
    sample = PREPROCESS.build({"type": "DecodeImage"})({"image": image})
    sample = PREPROCESS.build({"type": "Resize", "size": [64, 64], "keep_ratio": True, "interp": "area"})(sample)
    assert sample["image"].shape == (64, 32, 3) and sample["scale_factor"] == (0.64, 0.64)
    sample = PREPROCESS.build({"type": "Pad", "multiple_of": 48})(sample)
    assert sample["image"].shape == (96, 48, 3) and sample["input_shape"] == (96, 48)
    logits = np.zeros((2, 96, 48), np.float32)
    logits[1, :32] = 1.0  # class 1 on the top third of the resized image
    ctx = PostContext({"logits": logits}, sample)
    POSTPROCESS.build({"type": "SegmentationMask"})(ctx)
    mask = ctx.result["mask"]
    assert mask.shape == (100, 50) and mask[:49].min() == 1 and mask[52:].max() == 0
    with pytest.raises(SpecError, match="unknown preprocess op 'Resise'. Did you mean 'Resize'"):
        PREPROCESS.build({"type": "Resise"})
    with pytest.raises(SpecError, match="interp 'bilinear' is not one of"):
        PREPROCESS.build({"type": "Resize", "size": 8, "interp": "bilinear"})


def test_import_does_not_load_paddle():
    code = "import sys, kits.deploy, kits.deploy.visualize; print('paddle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr


def run_script(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_infer_script_end_to_end(exported, tmp_path):
    path = image_path()
    out = tmp_path / "out"
    proc = run_script("deploy/infer.py", "--model-dir", exported["segmenter"], "--input", path,
                      "--backend", "onnxruntime", "--output", out)
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["input"] == str(path)
    assert lines[0]["mask_shape"] == list(cv2.imread(str(path)).shape[:2])
    assert cv2.imread(lines[0]["mask"], cv2.IMREAD_UNCHANGED).shape == tuple(lines[0]["mask_shape"])
    assert (out / "vis" / f"00000_{path.stem}.jpg").is_file()
    proc = run_script("deploy/infer.py", "--model-dir", exported["classifier"], "--input", path, "--check")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "onnxruntime  onnx" in proc.stdout and "FAIL" not in proc.stdout
    proc = run_script("deploy/infer.py", "--model-dir", exported["text"], "--input", path)
    assert proc.returncode == 2 and "not images" in proc.stderr


def test_infer_text_model_from_json_lines(exported, tmp_path):
    rows = tmp_path / "tokens.jsonl"
    rows.write_text('{"input_ids": [1, 5, 9], "attention_mask": [1, 1, 1]}\n'
                    '{"input_ids": [2, 4, 6, 8, 10], "attention_mask": [1, 1, 1, 1, 0]}\n')
    proc = run_script("deploy/infer.py", "--model-dir", exported["text"], "--input", rows, "--backend", "mnn"
                      if installed("mnn") else "onnxruntime")
    assert proc.returncode == 0, proc.stderr
    results = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(results) == 2 and all(r["label"] in (0, 1, 2) for r in results)


def test_benchmark_script_prints_a_json_summary(exported):
    proc = run_script("deploy/benchmark.py", "--model-dir", exported["classifier"], "--backends", "onnxruntime",
                      "--iters", "5", "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    row = summary["results"][0]
    assert row["backend"] == "onnxruntime" and 0 < row["p50_ms"] <= row["p99_ms"] and row["peak_rss_mb"] > 0


def test_benchmark_script_times_a_free_size_export_at_the_given_shape(exported):
    assert load_spec(exported["segmenter"]).inputs[0].shape[2:] == [-1, -1]  # free size: example is tiny
    proc = run_script("deploy/benchmark.py", "--model-dir", exported["segmenter"], "--backends", "onnxruntime",
                      "--iters", "3", "--warmup", "1", "--shape", "image=1x3x48x80")
    assert proc.returncode == 0, proc.stderr
    row = json.loads(proc.stdout.strip().splitlines()[-1])["results"][0]
    assert row["shape"] == "1x3x48x80" and row["p50_ms"] > 0
    bad = run_script("deploy/benchmark.py", "--model-dir", exported["segmenter"], "--shape", "image=1x3x48")
    assert bad.returncode != 0 and "does not fit" in bad.stderr


def test_benchmark_takes_explicit_input_shapes(exported):
    from kits.deploy.bench import measure_isolated

    shapes = {"input_ids": [3, 24], "attention_mask": [3, 24]}
    row = measure_isolated(exported["text"], "onnxruntime", iters=3, warmup=1, shapes=shapes)
    assert row.get("error") is None and row["batch"] == 3 and row["p50_ms"] > 0
    spec = Predictor(exported["text"], "onnxruntime").spec
    with pytest.raises(SpecError, match="no input named token_ids"):
        spec.with_example_shapes({"token_ids": [1, 8]})
    with pytest.raises(SpecError, match=r"\[1, 8, 2\] does not fit"):
        spec.with_example_shapes({"input_ids": [1, 8, 2]})


def test_export_records_whether_onednn_runs_the_graph(exported):
    text = load_spec(exported["text"])
    assert text.models["paddle"]["runtime_options"] == {"onednn": True}
    seg = load_spec(exported["segmenter"])  # paddle 3.3's oneDNN executor rejects its interpolation
    assert seg.models["paddle"]["runtime_options"] == {"onednn": False}
    assert any(n.startswith("paddle: oneDNN off by default") for n in seg.notes)
    ids = np.random.default_rng(0).integers(0, 50, size=(2, 12)).astype("int64")
    x = [ids, np.ones_like(ids)][: len(text.inputs)]
    default = Predictor(exported["text"], "paddle").run_raw(x)[0]
    plain = Predictor(exported["text"], "paddle", options={"onednn": False}).run_raw(x)[0]
    assert np.abs(default - plain).max() <= 1e-4


def test_parity_diff_is_scaled_by_the_output_magnitude():
    from kits.deploy.predictor import output_diff

    small, large = np.array([0.5, -0.2]), np.array([9.0, -4.0])
    diff, scaled = output_diff([small + 5e-5, large + 3e-4], [small, large])
    assert diff == pytest.approx(3e-4) and scaled == pytest.approx(max(5e-5, 3e-4 / 9.0))
    # values within [-1, 1] keep the absolute bound
    assert output_diff([small + 2e-4], [small])[1] == pytest.approx(2e-4)
    assert output_diff([np.zeros((0, 4))], [np.zeros((0, 4))]) == (0.0, 0.0)


def test_latency_compare_script_gives_same_round_speedups(exported):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "latency_compare.py"), str(exported["classifier"]),
                           str(exported["segmenter"]), "--backend", "onnxruntime", "--threads", "1", "--rounds", "2",
                           "--iters", "3"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    first, second = (out["models"][str(exported[n])] for n in ("classifier", "segmenter"))
    assert first["speedup_per_round"] == [1.0, 1.0] and first["speedup"] == 1.0
    expected = [round(a / b, 3) for a, b in zip(first["rounds_p50_ms"], second["rounds_p50_ms"])]
    assert second["speedup_per_round"] == expected and len(expected) == 2
    assert second["speedup"] == round(float(np.median(expected)), 3)


def test_latency_compare_script_times_at_the_given_shape(exported, tmp_path):
    import shutil

    other = tmp_path / "segmenter_copy"
    shutil.copytree(exported["segmenter"], other)
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "latency_compare.py"), str(exported["segmenter"]),
                           str(other), "--backend", "onnxruntime", "--threads", "1", "--rounds", "1", "--iters", "2",
                           "--shape", "image=1x3x48x64"], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["input_shapes"] == {"image": [1, 3, 48, 64]}
    assert all(row["p50_ms"] > 0 for row in out["models"].values())
