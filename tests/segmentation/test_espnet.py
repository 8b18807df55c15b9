"""ESPNet: the model contract, weight conversion, and parity with the original PyTorch model on CamVid.

The reference argmax maps and sampled logits in tests/fixtures/espnet_camvid_ref.npz were computed
by the original PyTorch implementation with the original weights on 4 CamVid val images.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import paddle
import pytest

from kits.core.errors import ConfigError
from kits.core.pretrained import resolve
from kits.segmentation import pretrained  # noqa: F401  (registers the bundled weights)
from kits.segmentation.models import LOSSES, MODELS, ESPNet

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "espnet_camvid_ref.npz"


def _need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"needs {path} (shared data beside the repository)")
    return path


def miou(pred: np.ndarray, label: np.ndarray, num_classes: int) -> float:
    """Mean IoU over classes present in label or prediction; label values >= num_classes are ignored."""
    keep = label < num_classes
    conf = np.bincount(label[keep].astype(np.int64) * (num_classes + 1) + np.minimum(pred[keep], num_classes),
                       minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)
    tp = np.diag(conf[:, :num_classes])
    union = conf.sum(1) + conf[:, :num_classes].sum(0) - tp
    return float(np.mean(tp[union > 0] / union[union > 0]))


@pytest.mark.parametrize("size,classes", [((64, 96), 5), ((50, 70), 2)])
def test_contract_eval_train_export(size, classes):
    paddle.seed(0)
    model = MODELS.build({"type": "ESPNet", "num_classes": classes, "p": 1, "q": 1})
    image = paddle.randn([2, 3, *size])
    model.eval()
    with paddle.no_grad():
        logits = model({"image": image})["logits"]
        exported = model.export_forward(image)
    assert logits.shape == [2, classes, *size]
    np.testing.assert_array_equal(logits.numpy(), exported.numpy())
    model.train()
    label = paddle.randint(0, classes, [2, *size], dtype="int64")
    label[:, :4] = 255
    out = model({"image": image, "label": label})
    assert set(out) == {"loss"} and out["loss"].shape == [] and np.isfinite(float(out["loss"]))
    out["loss"].backward()
    assert model.encoder.level1.conv.weight.grad is not None


def test_loss_is_pluggable_and_ignores_255():
    logits = paddle.to_tensor(np.random.default_rng(0).normal(size=(1, 3, 2, 2)).astype("float32"))
    label = paddle.to_tensor(np.array([[[0, 255], [2, 255]]], dtype="int64"))
    plain = LOSSES.build({"type": "CrossEntropyLoss"})(logits, label)
    manual = -paddle.nn.functional.log_softmax(logits, axis=1).numpy()[0, [0, 2], [0, 1], [0, 0]].mean()
    assert abs(float(plain) - manual) < 1e-5
    weighted = LOSSES.build({"type": "CrossEntropyLoss", "weight": [1.0, 1.0, 3.0]})(logits, label)
    assert abs(float(weighted) - float(plain)) > 1e-4
    with pytest.raises(ConfigError, match="CrossEntropyLoss"):
        ESPNet(num_classes=3, p=1, q=1, loss={"type": "CrossEntropy"})


def test_bundled_weights_resolve_with_sha256():
    for name in ("espnet_camvid", "espnet_cityscapes", "efficientnet_lite0_imagenet"):
        assert resolve(name).stat().st_size > 1_000_000


@pytest.mark.parametrize("name,torch_file", [
    ("espnet_camvid", "espnet_p_2_q_8_camvid.pth"), ("espnet_cityscapes", "espnet_p_2_q_8_cityscapes.pth")])
def test_conversion_uses_every_tensor(name, torch_file):
    from kits.core.pretrained import load_state
    from kits.core.torch_pickle import load_torch_pickle
    from kits.segmentation.models.espnet import convert_torch_state
    from kits.segmentation.pretrained import PRETRAINED

    state = convert_torch_state(load_torch_pickle(_need(SHARED / "weights" / "seg" / torch_file)))
    own = MODELS.build(PRETRAINED[name]["model"]).state_dict()
    assert set(state) == set(own)
    assert all(tuple(state[k].shape) == tuple(own[k].shape) for k in own)
    bundled = load_state(name)
    assert all(np.array_equal(bundled[k], state[k]) for k in own)


def test_camvid_parity_with_reference():
    import cv2

    from kits.segmentation.pretrained import build_pretrained, normalize

    camvid = _need(SHARED / "datasets" / "camvid")
    ref = np.load(FIXTURE)
    images = [normalize(cv2.imread(str(camvid / name)), "espnet_camvid") for name in ref["names"]]
    model = build_pretrained("espnet_camvid")
    with paddle.no_grad():
        logits = model({"image": paddle.to_tensor(np.stack(images))})["logits"].numpy()
    pred = logits.argmax(1)
    agreement = float((pred == ref["argmax"]).mean())
    assert agreement >= 0.999, agreement
    for i in range(len(images)):
        sampled = logits[i][:, ref["sample_y"][i], ref["sample_x"][i]]
        assert np.abs(sampled - ref["sample_logits"][i]).max() < 1e-3
    labels = np.stack([cv2.imread(str(camvid / n.replace("images/", "labels/").replace(".jpg", ".png")),
                                  cv2.IMREAD_GRAYSCALE) for n in ref["names"]])
    ours, theirs = miou(pred, labels, 11), miou(ref["argmax"], labels, 11)
    assert abs(ours - theirs) < 0.005 and ours > 0.5, (ours, theirs)


def test_export_roundtrip_with_free_size(tmp_path):
    model = ESPNet(num_classes=6, p=1, q=1)
    model.eval()
    static = paddle.jit.to_static(model.export_forward, input_spec=model.input_spec(), full_graph=True)
    paddle.jit.save(static, str(tmp_path / "espnet"))
    loaded = paddle.jit.load(str(tmp_path / "espnet"))
    for size in ((64, 96), (40, 48)):
        image = paddle.randn([1, 3, *size])
        np.testing.assert_allclose(loaded(image).numpy(), model.export_forward(image).numpy(), atol=1e-5)


def test_decoder_width_keeps_the_cityscapes_decoder_for_another_class_count():
    from kits.core.pretrained import load_into

    model = MODELS.build({"type": "ESPNet", "num_classes": 11, "skip_image": False, "decoder_width": 20})
    report = load_into(model, "espnet_cityscapes")
    assert [name for name, _, _ in report.mismatched] == ["up1.weight"]
    assert not report.missing and not report.unexpected
    out = model.export_forward(paddle.randn([1, 3, 64, 96]))
    assert tuple(out.shape) == (1, 11, 64, 96)
    with pytest.raises(ConfigError, match="decoder_width"):
        MODELS.build({"type": "ESPNet", "num_classes": 11, "decoder_width": 0})
