"""benchmarks/qat_calibration.py on the tiny road-sign detector: ranges set by calibration alone,
nothing else changed, one metric per input quantizer."""

import sys
from pathlib import Path

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from benchmarks import qat_calibration as bench  # noqa: E402

sys.path.insert(0, str(Path(__file__).parent))
from slim_tiny import tiny_detection_cfg  # noqa: E402


def test_calibration_sets_input_ranges_and_changes_no_weight(tmp_path):
    from kits.detection.task import DetectionTask
    from kits.slim.base import SlimContext
    from kits.slim.qat import QAT, quantized_layers

    cfg, task = tiny_detection_cfg(tmp_path), DetectionTask()
    ctx = SlimContext(cfg=cfg, task=task, model=task.build_model(cfg), out_dir=None)
    QAT(weight_bits=7).apply(ctx)
    before = {k: v.numpy().copy() for k, v in ctx.model.state_dict().items() if "quanter" not in k}
    model = bench.calibrated(ctx.model, task, cfg, samples=6, batch_size=4)
    assert not model.training
    quanters = [layer.activation_quanter for layer in quantized_layers(model).values()]
    assert all(float(q._batches.numpy()[0]) == 2 for q in quanters)   # 6 images in batches of 4
    assert all(float(q.qparams()[0].numpy()[0]) < 1.0 for q in quanters)  # a real range, not the empty one
    after = model.state_dict()
    assert all(np.array_equal(before[k], after[k].numpy()) for k in before)


def test_one_metric_per_input_quantizer(tmp_path):
    result = bench.run(tiny_detection_cfg(tmp_path), None, samples=4, batch_size=2, skip=["backbone.stem.*"])
    assert result["metric"] == "mAP" and 0.0 <= result["float"] <= 1.0
    assert set(result["fake_quantized"]) == {"moving_average_min_max", "moving_average_min_max +skip",
                                             "moving_average_abs_max", "moving_average_abs_max +skip"}
    assert all(0.0 <= v <= 1.0 for v in result["fake_quantized"].values())
