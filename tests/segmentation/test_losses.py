"""Each segmentation loss against a numpy hand computation, ignore_index normalisation included."""

from __future__ import annotations

import numpy as np
import paddle
import pytest

from kits.core.errors import ConfigError
from kits.segmentation.models import LOSSES, MODELS


def _data(seed=0, n=2, c=4, h=5, w=6, ignore_share=0.3):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, c, h, w)).astype("float32") * 2
    label = rng.integers(0, c, (n, h, w))
    label[rng.random((n, h, w)) < ignore_share] = 255
    return logits, label


def _log_softmax(logits):
    z = logits - logits.max(1, keepdims=True)
    return z - np.log(np.exp(z).sum(1, keepdims=True))


def _nll(logits, label):
    """Per-pixel -log p(true class) for valid pixels, as a flat array, with their classes."""
    logp = _log_softmax(logits.astype(np.float64))
    n, h, w = np.nonzero(label != 255)
    cls = label[n, h, w]
    return -logp[n, cls, h, w], cls


def _run(cfg, logits, label):
    return float(LOSSES.build(cfg)(paddle.to_tensor(logits), paddle.to_tensor(label)))


def test_cross_entropy_means_over_valid_pixels_only():
    logits, label = _data()
    nll, cls = _nll(logits, label)
    assert abs(_run({"type": "CrossEntropyLoss"}, logits, label) - nll.mean()) < 1e-5
    assert abs(nll.sum() / label.size - nll.mean()) > 0.1  # a mean over all pixels would be far off
    # paddle 3.3.1 (CPU) agrees: its mean with ignore_index divides by the valid pixels too
    paddle_mean = float(paddle.nn.functional.cross_entropy(paddle.to_tensor(logits), paddle.to_tensor(label),
                                                           ignore_index=255, axis=1))
    assert abs(paddle_mean - nll.mean()) < 1e-5
    weight = np.array([1.0, 2.0, 0.5, 3.0])
    expected = (weight[cls] * nll).sum() / weight[cls].sum()
    assert abs(_run({"type": "CrossEntropyLoss", "weight": weight.tolist()}, logits, label) - expected) < 1e-5
    all_void = np.full_like(label, 255)
    assert _run({"type": "CrossEntropyLoss"}, logits, all_void) == 0.0


def test_cross_entropy_resizes_logits_and_checks_weights():
    logits, label = _data(h=4, w=4)
    big = np.repeat(np.repeat(label, 2, axis=1), 2, axis=2)
    value = _run({"type": "CrossEntropyLoss"}, logits, big)
    assert np.isfinite(value) and value > 0
    with pytest.raises(ConfigError, match="weight has 2 entries"):
        _run({"type": "CrossEntropyLoss", "weight": [1, 2]}, logits, label)


def test_ohem_keeps_hard_pixels():
    logits, label = _data(seed=1, h=8, w=8)
    nll, _ = _nll(logits, label)
    prob = np.exp(-nll)
    # min_kept below the count of hard pixels: exactly the pixels with p < thresh count
    thresh = 0.6
    assert (prob < thresh).sum() > 5
    expected = nll[prob <= thresh].mean()
    got = _run({"type": "OhemCrossEntropyLoss", "thresh": thresh, "min_kept": 5}, logits, label)
    assert abs(got - expected) < 1e-5
    # min_kept above that count: the threshold rises to the min_kept-th smallest probability
    k = int((prob < 0.05).sum()) + 10
    kth = np.sort(prob)[k - 1]
    expected = nll[prob <= max(0.05, kth)].mean()
    got = _run({"type": "OhemCrossEntropyLoss", "thresh": 0.05, "min_kept": k}, logits, label)
    assert abs(got - expected) < 1e-5
    # more min_kept than valid pixels: plain cross-entropy
    got = _run({"type": "OhemCrossEntropyLoss", "min_kept": 10 ** 6}, logits, label)
    assert abs(got - nll.mean()) < 1e-5


def test_dice_loss():
    logits, label = _data(seed=2)
    z = np.exp(logits - logits.max(1, keepdims=True))
    prob = z / z.sum(1, keepdims=True)
    valid = (label != 255)[:, None]
    onehot = np.stack([(label == c) for c in range(4)], 1) & valid
    p = prob * valid
    inter = (p * onehot).sum((0, 2, 3))
    dice = (2 * inter + 1.0) / (p.sum((0, 2, 3)) + onehot.sum((0, 2, 3)) + 1.0)
    assert abs(_run({"type": "DiceLoss"}, logits, label) - (1 - dice.mean())) < 1e-5
    perfect = np.where(np.arange(4)[None, :, None, None] == np.where(label == 255, 0, label)[:, None], 50.0, -50.0)
    assert _run({"type": "DiceLoss", "smooth": 0.0}, perfect.astype("float32"), label) < 1e-5


def test_mixed_loss_sums_with_coefficients():
    logits, label = _data(seed=3)
    ce = _run({"type": "CrossEntropyLoss"}, logits, label)
    dice = _run({"type": "DiceLoss"}, logits, label)
    mixed = _run({"type": "MixedLoss", "losses": [{"type": "CrossEntropyLoss"}, {"type": "DiceLoss"}],
                  "coef": [0.7, 2.0]}, logits, label)
    assert abs(mixed - (0.7 * ce + 2.0 * dice)) < 1e-5
    with pytest.raises(ConfigError, match="2 losses but 1 coefficients"):
        LOSSES.build({"type": "MixedLoss", "losses": [{"type": "DiceLoss"}, {"type": "DiceLoss"}], "coef": [1]})


def test_models_use_the_configured_loss():
    paddle.seed(0)
    logits_model = MODELS.build({"type": "ESPNet", "num_classes": 3, "p": 1, "q": 1,
                                 "loss": {"type": "DiceLoss", "smooth": 1.0}})
    logits_model.train()
    image = paddle.randn([1, 3, 32, 32])
    label = paddle.randint(0, 3, [1, 32, 32])
    out = logits_model({"image": image, "label": label})
    logits_model.eval()
    with paddle.no_grad():
        logits = logits_model.export_forward(image)
    logits_model.train()
    # BN in train mode changes the logits, so compare against the loss of the train-mode logits
    train_logits = logits_model.export_forward(image)
    assert abs(float(out["loss"]) - float(LOSSES.build({"type": "DiceLoss"})(train_logits, label))) < 1e-5
    assert logits.shape == [1, 3, 32, 32]
