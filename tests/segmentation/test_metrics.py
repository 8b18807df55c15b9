"""Confusion-matrix metrics against a hand-made matrix; full-size evaluation; test-time inference."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from kits.core.errors import ConfigError
from kits.segmentation.metrics import SegMetric, confusion_matrix, scores
from kits.segmentation.models import MODELS
from kits.segmentation.models.base import InferenceConfig, SegModel


def test_confusion_matrix_by_hand():
    label = np.array([[0, 0, 1, 1], [2, 2, 255, 1]])
    pred = np.array([[0, 1, 1, 1], [2, 5, 0, 0]])  # 5 is no class: a miss in the last column
    conf = confusion_matrix(pred, label, 3)
    expected = np.array([[1, 1, 0, 0],
                         [1, 2, 0, 0],
                         [0, 0, 1, 1]])
    assert np.array_equal(conf, expected)


def test_scores_by_hand():
    conf = np.array([[1, 1, 0, 0],
                     [1, 2, 0, 0],
                     [0, 0, 1, 1]])
    s = scores(conf, ["a", "b", "c"])
    # IoU: a = 1 / (2 + 2 - 1), b = 2 / (3 + 3 - 2), c = 1 / (2 + 1 - 1)
    iou = [1 / 3, 2 / 4, 1 / 2]
    assert s["IoU/a"] == pytest.approx(iou[0]) and s["IoU/c"] == pytest.approx(iou[2])
    assert s["mIoU"] == pytest.approx(np.mean(iou))
    assert s["Acc"] == pytest.approx(4 / 7)
    assert s["mAcc"] == pytest.approx(np.mean([1 / 2, 2 / 3, 1 / 2]))
    dice = [2 * 1 / (2 + 2), 2 * 2 / (3 + 3), 2 * 1 / (2 + 1)]
    assert s["mDice"] == pytest.approx(np.mean(dice))
    pe = (2 * 2 + 3 * 3 + 2 * 1) / 49
    assert s["Kappa"] == pytest.approx((4 / 7 - pe) / (1 - pe))


def test_absent_classes_do_not_count():
    conf = np.zeros((3, 4), np.int64)
    conf[0, 0], conf[1, 1] = 5, 3
    s = scores(conf, ["a", "b", "c"])
    assert s["mIoU"] == 1.0 and "IoU/c" not in s


class _Data:
    num_classes, ignore_index, class_names = 3, 255, ["a", "b", "c"]


def test_metric_resizes_logits_to_the_label():
    label = np.zeros((1, 8, 8), np.int64)
    label[0, :, 4:] = 1
    label[0, 0, 0] = 255
    logits = np.zeros((1, 3, 4, 4), np.float32)
    logits[0, 0, :, :2], logits[0, 1, :, 2:] = 5, 5
    metric = SegMetric(_Data())
    metric.update({"logits": paddle.to_tensor(logits)},
                  {"label": paddle.to_tensor(label), "index": paddle.to_tensor([0])})
    result = metric.compute()
    assert result["mIoU"] == 1.0 and metric.conf.sum() == 63
    # ragged batches come as lists
    metric.reset()
    metric.update({"logits": [paddle.to_tensor(logits[0])]}, {"label": [paddle.to_tensor(label[0])],
                                                              "index": paddle.to_tensor([0])})
    assert metric.compute()["Acc"] == 1.0 and len(metric.samples) == 1


class _Pointwise(SegModel):
    """A 1x1-conv model: its logits at a pixel depend on that pixel only."""

    def __init__(self, test_config=None):
        super().__init__(3, test_config=test_config)
        self.conv = paddle.nn.Conv2D(3, 3, 1)

    def export_forward(self, image):
        return self.conv(image)


def test_sliding_window_and_flip_match_plain_inference_of_a_pointwise_model():
    paddle.seed(0)
    plain = _Pointwise()
    image = paddle.randn([2, 3, 37, 53])
    plain.eval()
    with paddle.no_grad():
        ref = paddle.nn.functional.log_softmax(plain({"image": image})["logits"], axis=1).numpy()
        for tc in ({"slide": {"crop_size": [16, 20], "stride": [10, 12]}}, {"flip": True},
                   {"flip": True, "slide": {"crop_size": 24, "stride": 24}}):
            model = _Pointwise(tc)
            model.set_state_dict(plain.state_dict())
            model.eval()
            np.testing.assert_allclose(model({"image": image})["logits"].numpy(), ref, atol=1e-5)
        multi = _Pointwise({"scales": [0.5, 1.0, 1.5]})
        multi.set_state_dict(plain.state_dict())
        multi.eval()
        assert multi({"image": image})["logits"].shape == [2, 3, 37, 53]


def test_test_config_is_validated():
    with pytest.raises(ConfigError, match="unknown key 'model.test_config.flips'.*'flip'"):
        InferenceConfig.parse({"flips": True})
    with pytest.raises(ConfigError, match="stride.*must not exceed crop_size"):
        InferenceConfig.parse({"slide": {"crop_size": [8, 8], "stride": [9, 8]}})
    with pytest.raises(ConfigError, match="scales"):
        InferenceConfig.parse({"scales": [0, 1]})
    with pytest.raises(ConfigError, match="test_config"):
        MODELS.build({"type": "ESPNet", "num_classes": 3, "p": 1, "q": 1, "test_config": {"slide": {"crop": 4}}})
