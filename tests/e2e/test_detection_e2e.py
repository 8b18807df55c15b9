"""Tiny end to end: fine-tune -> evaluate -> export -> deployed inference agrees with the kit."""

from pathlib import Path

import numpy as np
import pytest

from kits import detection as det
from kits.core.config import load_config
from kits.core.runner import latest_weights
from kits.deploy import Predictor

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/detection/picodet_s_416_roadsign_mini.yml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("det_e2e")
    cfg = load_config(CONFIG, [f"trainer.output_dir={out}", "trainer.epochs=null", "trainer.iters=2",
                               "trainer.batch_size=2", "trainer.num_workers=0", "trainer.progress=false",
                               "trainer.visualdl=false", f"train_dataset.root={ROOT}/data/roadsign_mini",
                               f"val_dataset.root={ROOT}/data/roadsign_mini", f"val_dataset.list={_short_list(out)}"])
    summary = det.train(cfg)
    return cfg, out, summary


def _short_list(out: Path) -> Path:
    lines = (ROOT / "data/roadsign_mini/valid.txt").read_text().splitlines()[:4]
    path = out / "valid4.txt"
    path.write_text("\n".join(" ".join(str(ROOT / "data/roadsign_mini" / p) for p in line.split()) for line in lines) + "\n")
    return path


def test_train_writes_weights_and_metrics(trained):
    cfg, out, summary = trained
    assert summary["steps"] == 2 and summary["best_metric"] == "mAP"
    metrics = det.evaluate(cfg, weights=latest_weights(out), report_dir=out / "eval")
    assert {"mAP", "AP50", "AP75", "VOC_mAP50"} <= set(metrics) and 0.0 <= metrics["mAP"] <= 1.0
    import cv2

    curve = cv2.imread(str(out / "eval" / "pr_curve.png"))
    assert curve is not None and curve.shape[0] > 100
    overlays = sorted((out / "eval").glob("overlay_*.jpg"))
    assert len(overlays) == 4 and all(cv2.imread(str(p)) is not None for p in overlays)


def test_export_and_runtime_match_the_kit(trained):
    cfg, out, _ = trained
    weights = latest_weights(out)
    result = det.export(cfg, weights, formats=("onnx",), output=out / "export")
    assert result.parity["onnxruntime"] <= 1e-4
    image = ROOT / "data/roadsign_mini/JPEGImages/road5.jpg"
    deployed = Predictor(out / "export", backend="onnxruntime").predict(str(image))["boxes"]
    model = det.load_model(cfg, weights)
    ours = det.predict(model, [image], score_threshold=0.025)[0]
    assert deployed.shape == ours.shape
    np.testing.assert_array_equal(deployed[:, 0], ours[:, 0])
    np.testing.assert_allclose(deployed[:, 1:], ours[:, 1:], atol=1e-3)
