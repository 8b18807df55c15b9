"""The fast training layers give paddle's results: outputs, input and parameter gradients."""

import numpy as np
import paddle
import paddle.nn as nn
import pytest

from kits.core import fast_layers as fl


def _run(layer, x, grad):
    x.clear_gradient()
    for p in layer.parameters():
        p.clear_gradient()
    out = layer(x)
    out.backward(grad)
    return [out.numpy(), x.grad.numpy()] + [p.grad.numpy() for p in layer.parameters()]


@pytest.mark.parametrize("make", [lambda m: m.Linear(16, 8), lambda m: m.LayerNorm(16, epsilon=1e-5)],
                         ids=["linear", "layernorm"])
def test_training_step_matches_paddle(make):
    paddle.seed(3)
    fast, ref = make(fl), make(nn)
    assert list(fast.state_dict()) == list(ref.state_dict())
    for p in fast.parameters():  # LayerNorm starts at ones / zeros: make the weights matter
        p.set_value(paddle.randn(p.shape))
    ref.set_state_dict(fast.state_dict())
    x = paddle.randn([3, 5, 16]) * 4 + 2
    x.stop_gradient = False
    grad = paddle.randn([3, 5, fast.weight.shape[-1]])
    got, want = _run(fast, x, grad), _run(ref, x, grad)
    assert len(got) == len(want) == 4
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


def test_eval_mode_takes_paddles_path():
    layer = fl.LayerNorm(8)
    layer.eval()
    x = paddle.randn([2, 8])
    np.testing.assert_array_equal(layer(x).numpy(), nn.functional.layer_norm(x, 8, layer.weight, layer.bias,
                                                                              layer._epsilon).numpy())


def test_dropout_keeps_the_rate_scales_and_follows_paddle_seed():
    layer = fl.Dropout(0.25)
    paddle.seed(7)
    a = layer(paddle.ones([400, 100])).numpy()
    paddle.seed(7)
    b = layer(paddle.ones([400, 100])).numpy()
    np.testing.assert_array_equal(a, b)
    assert abs((a > 0).mean() - 0.75) < 0.01
    np.testing.assert_allclose(np.unique(a), [0.0, 1 / 0.75], rtol=1e-6)
    x = paddle.ones([50, 4])
    x.stop_gradient = False
    out = layer(x)
    out.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), out.numpy())  # gradient is the same mask
    layer.eval()
    np.testing.assert_array_equal(layer(paddle.ones([3, 3])).numpy(), np.ones([3, 3]))


def test_dropout_mask_of_any_size_keeps_the_expectation():
    layer = fl.Dropout(0.1)
    paddle.seed(11)
    out = layer(paddle.ones([7, 13, 1001])).numpy()  # 91091 elements: not a multiple of the 4 words per draw
    assert out.shape == (7, 13, 1001)
    assert abs((out == 0).mean() - 0.1) < 0.005
    assert abs(out.mean() - 1.0) < 0.01  # kept values scaled by the inverse kept share
