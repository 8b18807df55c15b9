"""PP-LiteSeg: the model contract on both backbones, ImageNet weights through backbone.pretrained."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from kits.core.errors import ConfigError
from kits.core.pretrained import load_state
from kits.segmentation.models import BACKBONES, MODELS

TINY_STDC = {"type": "STDCNet", "base": 16}


@pytest.mark.parametrize("backbone,aux", [({"type": "EfficientNetLite0"}, [1.0, 0.5]), (TINY_STDC, [])])
def test_contract_train_eval(backbone, aux):
    paddle.seed(0)
    model = MODELS.build({"type": "PPLiteSeg", "num_classes": 4, "backbone": backbone, "aux_weights": aux,
                          "arm_channels": [16, 24, 32], "head_channels": [16, 16, 16], "sppm_channels": 32})
    image = paddle.randn([2, 3, 72, 100])
    model.train()
    label = paddle.randint(0, 4, [2, 72, 100])
    out = model({"image": image, "label": label})
    expected = {"loss", "main_loss", "aux_loss"} if aux else {"loss"}
    assert set(out) == expected and np.isfinite(float(out["loss"]))
    if aux:
        assert float(out["loss"]) == pytest.approx(float(out["main_loss"]) + float(out["aux_loss"]), rel=1e-5)
    out["loss"].backward()
    assert any(p.grad is not None for p in model.backbone.parameters())
    model.eval()
    with paddle.no_grad():
        logits = model({"image": image})["logits"]
        np.testing.assert_array_equal(logits.numpy(), model.export_forward(image).numpy())
    assert logits.shape == [2, 4, 72, 100]


def test_backbone_loads_imagenet_weights():
    net = BACKBONES.build({"type": "EfficientNetLite0", "pretrained": "efficientnet_lite0_imagenet"})
    bundled = load_state("efficientnet_lite0_imagenet")
    own = net.state_dict()
    assert len(own) == 240 and all(np.array_equal(own[k].numpy(), bundled[k]) for k in own)
    model = MODELS.build({"type": "PPLiteSeg", "num_classes": 3,
                          "backbone": {"type": "EfficientNetLite0", "pretrained": "efficientnet_lite0_imagenet"}})
    key = "stem.conv.weight"
    assert np.array_equal(model.backbone.state_dict()[key].numpy(), bundled[key])


def test_stdc_shapes_and_errors():
    net = BACKBONES.build({"type": "STDCNet", "variant": "STDC1"})
    assert net.out_channels == [256, 512, 1024]
    feats = BACKBONES.build(TINY_STDC)(paddle.randn([1, 3, 64, 96]))
    assert [tuple(f.shape[1:]) for f in feats] == [(64, 8, 12), (128, 4, 6), (256, 2, 3)]
    with pytest.raises(ValueError, match="STDC1"):
        BACKBONES.build({"type": "STDCNet", "variant": "STDC3"})
    with pytest.raises(ConfigError, match="at most 2 auxiliary"):
        MODELS.build({"type": "PPLiteSeg", "num_classes": 3, "backbone": TINY_STDC, "aux_weights": [1, 1, 1]})


def test_void_output_adds_a_channel_but_not_a_class():
    model = MODELS.build({"type": "ESPNet", "num_classes": 11, "void_output": True, "p": 1, "q": 1})
    model.eval()
    with paddle.no_grad():
        logits = model({"image": paddle.randn([1, 3, 32, 32])})["logits"]
    assert model.num_classes == 11 and logits.shape[1] == 12


def test_channel_max_training_form_has_reduce_max_values_and_gradient():
    from kits.segmentation.models.pp_liteseg import _channel_max

    data = np.random.default_rng(0).normal(size=(2, 5, 3, 4)).astype("float32")
    grads = []
    for training in (False, True):
        x = paddle.to_tensor(data, stop_gradient=False)
        out = _channel_max(x, training)
        (out * out).sum().backward()
        np.testing.assert_array_equal(out.numpy(), data.max(axis=1, keepdims=True))
        grads.append(x.grad.numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-6)
    assert np.count_nonzero(grads[1]) == 2 * 3 * 4  # one winner per pixel
