"""The second detector: PicoDet neck and head on the ImageNet EfficientNet-Lite0 backbone."""

from pathlib import Path

import numpy as np
import paddle
import pytest

from kits.core.config import load_config
from kits.core.pretrained import resolve
from kits.detection.data.transforms import Normalize
from kits.detection.task import DetectionTask, preprocess_ops

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/detection/picodet_efflite0_416_roadsign.yml"


@pytest.fixture(scope="module")
def model():
    cfg = load_config(CONFIG)
    return cfg, DetectionTask().build_model(cfg)


def test_backbone_starts_from_imagenet_weights(model):
    from safetensors.numpy import load_file

    _, net = model
    imagenet = load_file(str(resolve("efficientnet_lite0_imagenet")))
    ours = net.backbone.state_dict()
    shared = [k for k in ours if k in imagenet]
    assert len(shared) > 100
    for key in shared:
        np.testing.assert_array_equal(ours[key].numpy(), imagenet[key])


def test_trains_and_predicts_with_four_classes(model):
    _, net = model
    paddle.seed(0)
    image = paddle.randn([2, 3, 128, 128])
    batch = {"image": image, "gt_bbox": paddle.to_tensor([[[10.0, 12.0, 60.0, 70.0]], [[30.0, 30.0, 90.0, 100.0]]]),
             "gt_class": paddle.to_tensor([[1], [3]], dtype="int32")}
    net.train()
    losses = net(batch)
    assert np.isfinite(float(losses["loss"])) and float(losses["loss"]) > 0
    losses["loss"].backward()
    assert net.backbone.stem.conv.weight.grad is not None  # the backbone is fine-tuned, not frozen
    net.eval()
    out = net({"image": image})
    assert out["cls_scores"][0].shape[-1] == 4


def test_rgb_input_reaches_the_deployed_model(model):
    cfg, net = model
    ops = preprocess_ops(cfg, net)
    assert ops[0] == {"type": "DecodeImage", "to_rgb": True}
    assert ops[2]["mean"] == [127.0, 127.0, 127.0] and ops[2]["std"] == [128.0, 128.0, 128.0]
    bgr = np.zeros((4, 4, 3), np.uint8)
    bgr[..., 0] = 255  # pure blue in BGR
    out = Normalize(mean=[0, 0, 0], std=[1, 1, 1], to_rgb=True)({"image": bgr})["image"]
    assert out[2].max() == 255 and out[0].max() == 0  # blue is the last channel in RGB


def test_deploy_preprocessing_follows_a_keep_ratio_validation_pipeline():
    from types import SimpleNamespace

    import cv2

    from kits.core.config import Config
    from kits.deploy.ops import PREPROCESS, build_pipeline
    from kits.detection.data.transforms import Pad, Resize

    val = [{"type": "Resize", "target_size": [96, 128], "keep_ratio": True, "interp": cv2.INTER_AREA},
           {"type": "Pad", "size": [96, 128], "fill": [10.0, 20.0, 30.0]},
           {"type": "Normalize", "mean": [1.0, 2.0, 3.0], "std": [2.0, 3.0, 4.0]}]
    ops = preprocess_ops(Config({"val_dataset": {"transforms": val}}), SimpleNamespace(input_size=(96, 128)))
    assert [op["type"] for op in ops] == ["DecodeImage", "Resize", "Pad", "Normalize", "HWC2CHW"]
    image = np.random.default_rng(0).integers(0, 255, (60, 50, 3), dtype=np.uint8)
    want = {"image": image.copy()}
    for t in (Resize([96, 128], keep_ratio=True, interp=cv2.INTER_AREA), Pad([96, 128], fill=[10.0, 20.0, 30.0]),
              Normalize([1.0, 2.0, 3.0], [2.0, 3.0, 4.0])):
        want = t(want)
    got = {"image": image, "scale_factor": (1.0, 1.0)}
    for op in build_pipeline(ops[1:], PREPROCESS):  # from a decoded image on
        got = op(got)
    np.testing.assert_allclose(got["image"], want["image"], atol=1e-5)
    np.testing.assert_allclose(got["scale_factor"], want["scale_factor"], rtol=1e-6)
