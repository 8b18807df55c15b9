"""EfficientNet-Lite backbone: feature strides, TF-same padding, conversion, and ImageNet parity.

tests/fixtures/efficientnet_lite0_ref.npz holds the logits of the original PyTorch model with the
original weights on two sample images shipped by matplotlib and scikit-learn.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import paddle
import paddle.nn.functional as F
import pytest

from kits.core.backbones import EfficientNetLite
from kits.core.pretrained import load_into

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "efficientnet_lite0_ref.npz"


def test_feature_strides_and_channels_on_odd_sizes():
    model = EfficientNetLite(out_strides=(4, 8, 16, 32))
    model.eval()
    assert model.out_channels == [24, 40, 112, 320]
    with paddle.no_grad():
        feats = model(paddle.randn([1, 3, 225, 161]))
    for feat, stride, channels in zip(feats, (4, 8, 16, 32), model.out_channels):
        assert feat.shape == [1, channels, math.ceil(225 / stride), math.ceil(161 / stride)]


@pytest.mark.parametrize("size,kernel", [(224, 3), (225, 5), (17, 5)])
def test_strided_conv_pads_like_tensorflow(size, kernel):
    """TF 'SAME': total padding max((ceil(n/s)-1)*s + k - n, 0), the odd pixel at the bottom/right."""
    model = EfficientNetLite()
    conv = model.blocks[3].dw.conv if kernel == 5 else model.blocks[1].dw.conv
    x = paddle.randn([1, conv.weight.shape[0], size, size])
    total = max((math.ceil(size / 2) - 1) * 2 + kernel - size, 0)
    before, after = total // 2, total - total // 2
    manual = F.conv2d(F.pad(x, [before, after, before, after]), conv.weight, stride=2, groups=conv._groups)
    np.testing.assert_allclose(conv(x).numpy(), manual.numpy(), atol=1e-5)


def test_classify_needs_head():
    with pytest.raises(RuntimeError, match="num_classes"):
        EfficientNetLite().classify(paddle.zeros([1, 3, 32, 32]))
    with pytest.raises(ValueError, match="out_strides"):
        EfficientNetLite(out_strides=(2,))


def test_conversion_uses_every_tensor():
    from kits.core.backbones.efficientnet_lite import convert_torch_state
    from kits.core.torch_pickle import load_torch_pickle

    path = SHARED / "weights" / "imagenet" / "efficientnet-lite0-57934424.pth"
    if not path.is_file():
        pytest.skip(f"needs {path} (shared weights beside the repository)")
    state = convert_torch_state(load_torch_pickle(path))
    own = EfficientNetLite(num_classes=1000).state_dict()
    assert set(state) == set(own)
    assert all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)


def _sample_images() -> list[np.ndarray]:
    import cv2

    paths = []
    samples = (("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"), ("sklearn", "datasets/images/flower.jpg"))
    for module, rel in samples:
        try:
            root = Path(__import__(module).__file__).parent
        except ImportError:
            pytest.skip(f"needs {module} for its sample image")
        if not (root / rel).is_file():
            pytest.skip(f"{module} ships no {rel}")
        paths.append(root / rel)
    batch = []
    for path in paths:
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        scale = 256 / min(img.shape[:2])
        img = cv2.resize(img, (round(img.shape[1] * scale), round(img.shape[0] * scale)))
        top, left = (img.shape[0] - 224) // 2, (img.shape[1] - 224) // 2
        img = img[top:top + 224, left:left + 224].astype(np.float32)
        batch.append(((img - 127.0) / 128.0).transpose(2, 0, 1))
    return batch


def test_lite0_imagenet_matches_reference():
    ref = np.load(FIXTURE)
    images = _sample_images()
    model = EfficientNetLite(num_classes=1000)
    report = load_into(model, "efficientnet_lite0_imagenet", strict=True)
    assert len(report.loaded) == len(model.state_dict())
    model.eval()
    with paddle.no_grad():
        logits = model.classify(paddle.to_tensor(np.stack(images))).numpy()
    assert np.abs(logits - ref["logits"]).max() < 1e-3
    np.testing.assert_array_equal(np.argsort(-logits, 1)[:, :5], ref["top5"])
    assert ref["top5"][1, 0] == 985  # the flower photo is a daisy
