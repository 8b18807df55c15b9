"""The asymmetric uint8 input quantizer of QAT: its range, its values (as ONNX computes them) and its gradient."""

from __future__ import annotations

import numpy as np
import pytest

paddle = pytest.importorskip("paddle")

from kits.slim.quanters import ActivationMinMaxQuanterLayer  # noqa: E402


def onnx_uint8_qdq(x: np.ndarray, step: float, zero_point: int) -> np.ndarray:
    """QuantizeLinear + DequantizeLinear to uint8 as the ONNX spec writes them (ties to even)."""
    q = np.clip(np.rint(x / np.float32(step)) + zero_point, 0, 255)
    return ((q - zero_point) * np.float32(step)).astype(np.float32)


def test_range_starts_at_the_first_batch_then_moves_by_the_rate():
    quanter = ActivationMinMaxQuanterLayer(None, moving_rate=0.9)
    quanter.train()
    quanter(paddle.to_tensor(np.array([-1.0, 3.0], np.float32)))
    assert quanter._min.numpy()[0] == pytest.approx(-1.0) and quanter._max.numpy()[0] == pytest.approx(3.0)
    quanter(paddle.to_tensor(np.array([-2.0, 13.0], np.float32)))
    assert quanter._min.numpy()[0] == pytest.approx(-1.1) and quanter._max.numpy()[0] == pytest.approx(4.0)
    quanter.eval()
    quanter(paddle.to_tensor(np.array([-50.0, 50.0], np.float32)))  # eval mode only applies the range
    assert quanter._max.numpy()[0] == pytest.approx(4.0) and quanter._batches.numpy()[0] == 2


def test_range_always_holds_zero():
    quanter = ActivationMinMaxQuanterLayer(None)
    quanter.train()
    quanter(paddle.to_tensor(np.array([0.5, 2.0], np.float32)))   # all positive: min becomes 0
    step, zero_point = (t.numpy()[0] for t in quanter.qparams())
    assert zero_point == 0 and step == pytest.approx(2.0 / 255)
    y = quanter(paddle.to_tensor(np.zeros(3, np.float32))).numpy()
    assert (y == 0).all()


def test_values_are_what_onnx_quantize_dequantize_computes():
    rng = np.random.default_rng(0)
    quanter = ActivationMinMaxQuanterLayer(None)
    quanter.train()
    quanter(paddle.to_tensor(rng.normal(0.5, 2.0, 4000).astype(np.float32)))
    quanter.eval()
    step, zero_point = (t.numpy()[0] for t in quanter.qparams())
    assert 0 < zero_point < 255
    x = np.concatenate([rng.normal(0.5, 3.0, 4000), (np.arange(-300, 300) + 0.5) * step]).astype(np.float32)
    y = quanter(paddle.to_tensor(x)).numpy()
    np.testing.assert_array_equal(y, onnx_uint8_qdq(x, step, int(zero_point)))
    assert len(np.unique(y)) <= 256


def test_gradient_passes_inside_the_range_only():
    quanter = ActivationMinMaxQuanterLayer(None)
    quanter.train()
    quanter(paddle.to_tensor(np.array([-1.0, 1.0], np.float32)))
    quanter.eval()
    x = paddle.to_tensor(np.array([-3.0, -0.5, 0.2, 0.9, 2.5], np.float32), stop_gradient=False)
    quanter(x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [0, 1, 1, 1, 0])
