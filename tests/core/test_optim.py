import math

import paddle
import pytest
from tiny import TinyNet

from kits.core.optim import OPTIMIZERS, SCHEDULERS, build_optimizer, build_scheduler, param_groups


def lrs(cfg, total=100, steps_per_epoch=10, base=1.0):
    sched = build_scheduler(cfg, base, total, steps_per_epoch)
    values = []
    for _ in range(total):
        values.append(sched())
        sched.step()
    return values


def test_no_weight_decay_on_bias_and_norm():
    net = TinyNet()
    decay, no_decay = param_groups(net, 0.05)
    assert decay["weight_decay"] == 0.05 and no_decay["weight_decay"] == 0.0
    assert {p.name for p in decay["params"]} == {net.fc1.weight.name, net.fc2.weight.name}
    assert net.norm.weight.name in {p.name for p in no_decay["params"]}


@pytest.mark.parametrize("name", OPTIMIZERS.names())
def test_every_optimizer_steps(name):
    paddle.seed(0)
    net = TinyNet(dropout=0.0)
    opt = build_optimizer({"type": name, "lr": 0.1}, net, 0.1, clip_grad_norm=1.0)
    x, y = paddle.randn([16, 8]), paddle.randint(0, 3, [16])
    losses = []
    for _ in range(5):
        loss = paddle.nn.functional.cross_entropy(net.export_forward(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        losses.append(float(loss))
    assert losses[-1] < losses[0]


def test_warmup_is_linear_then_cosine():
    v = lrs({"type": "Cosine", "warmup_epochs": 1, "warmup_start_factor": 0.1})
    assert v[0] == pytest.approx(0.1) and v[5] == pytest.approx(0.55) and v[10] == pytest.approx(1.0)
    assert v[55] == pytest.approx(0.5 * (1 + math.cos(math.pi * 45 / 90)))
    assert v[-1] < 0.001


def test_piecewise_polynomial_onecycle_constant():
    p = lrs({"type": "Piecewise", "milestones": [0.5, 0.8], "gamma": 0.1})
    assert (p[49], p[50], p[80]) == pytest.approx((1.0, 0.1, 0.01))
    poly = lrs({"type": "Polynomial", "power": 1.0})
    assert poly[50] == pytest.approx(0.5)
    one = lrs({"type": "OneCycle", "pct_start": 0.3, "div_factor": 10})
    assert one[0] == pytest.approx(0.1) and one[30] == pytest.approx(1.0) and one[-1] < 0.01
    assert set(lrs({"type": "Constant"})) == {1.0}
    assert set(SCHEDULERS.names()) >= {"Cosine", "Piecewise", "Polynomial", "OneCycle", "Constant"}
