"""Optimizers and learning-rate schedules, built from the ``optimizer`` / ``lr_scheduler`` sections.

Schedules are stepped once per optimizer update; lengths given in epochs are converted to updates
by the trainer, so every schedule works the same for epoch- and iteration-based training.
"""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import paddle

from .registry import Registry

OPTIMIZERS = Registry("optimizer")
SCHEDULERS = Registry("lr_scheduler")


def param_groups(model: paddle.nn.Layer, weight_decay: float) -> list[dict]:
    """Two groups: weights that decay, and biases / norm scales (1-D tensors) that must not."""
    decay, no_decay = [], []
    for param in model.parameters():
        if param.stop_gradient:
            continue
        (no_decay if param.ndim <= 1 else decay).append(param)
    groups = [{"params": decay, "weight_decay": weight_decay}]
    if no_decay:
        groups.append({"params": no_decay, "weight_decay": 0.0})
    return [g for g in groups if g["params"]]


@OPTIMIZERS.register
def SGD(model, lr, weight_decay: float = 0.0, grad_clip=None):
    return paddle.optimizer.SGD(lr, parameters=param_groups(model, weight_decay), grad_clip=grad_clip)


@OPTIMIZERS.register
def Momentum(model, lr, momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
             grad_clip=None):
    return paddle.optimizer.Momentum(lr, momentum=momentum, use_nesterov=nesterov,
                                     parameters=param_groups(model, weight_decay), grad_clip=grad_clip)


@OPTIMIZERS.register
def Adam(model, lr, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
         weight_decay: float = 0.0, grad_clip=None):
    """Adam with L2 regularisation (use AdamW for decoupled weight decay)."""
    return paddle.optimizer.Adam(lr, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                 parameters=param_groups(model, weight_decay), grad_clip=grad_clip)


@OPTIMIZERS.register
def AdamW(model, lr, beta1: float = 0.9, beta2: float = 0.999, epsilon: float = 1e-8,
          weight_decay: float = 0.01, grad_clip=None):
    return paddle.optimizer.AdamW(lr, beta1=beta1, beta2=beta2, epsilon=epsilon,
                                  parameters=param_groups(model, weight_decay), grad_clip=grad_clip)


class _Lambda(paddle.optimizer.lr.LRScheduler):
    """``base_lr * factor(step)`` with the factor from a plain function of the update count."""

    def __init__(self, base_lr: float, factor):
        self._factor = factor
        super().__init__(learning_rate=base_lr)

    def get_lr(self) -> float:
        return self.base_lr * self._factor(self.last_epoch)


def _with_warmup(base: float, total: int, warmup: int, start_factor: float, main) -> _Lambda:
    """Linear warmup over ``warmup`` updates, then ``main(progress in [0, 1])``."""
    warmup = min(max(int(warmup), 0), max(total - 1, 0))

    def factor(step: int) -> float:
        if step < warmup:
            return start_factor + (1.0 - start_factor) * step / warmup
        span = max(total - warmup, 1)
        return main(min((step - warmup) / span, 1.0))

    return _Lambda(base, factor)


@SCHEDULERS.register
def Constant(base_lr, total_steps, warmup_steps: int = 0, warmup_start_factor: float = 0.1):
    return _with_warmup(base_lr, total_steps, warmup_steps, warmup_start_factor, lambda p: 1.0)


@SCHEDULERS.register
def Cosine(base_lr, total_steps, min_lr_ratio: float = 0.0, warmup_steps: int = 0,
           warmup_start_factor: float = 0.1):
    return _with_warmup(base_lr, total_steps, warmup_steps, warmup_start_factor,
                        lambda p: min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * p)))


@SCHEDULERS.register
def Polynomial(base_lr, total_steps, power: float = 0.9, end_lr_ratio: float = 0.0,
               warmup_steps: int = 0, warmup_start_factor: float = 0.1):
    return _with_warmup(base_lr, total_steps, warmup_steps, warmup_start_factor,
                        lambda p: end_lr_ratio + (1 - end_lr_ratio) * (1 - p) ** power)


@SCHEDULERS.register
def Piecewise(base_lr, total_steps, milestones: Sequence[float] = (0.67, 0.89), gamma: float = 0.1,
              warmup_steps: int = 0, warmup_start_factor: float = 0.1):
    """Multiply by ``gamma`` at each milestone, given as a fraction of training (e.g. 0.67)."""
    marks = sorted(float(m) for m in milestones)
    return _with_warmup(base_lr, total_steps, warmup_steps, warmup_start_factor,
                        lambda p: gamma ** sum(p >= m for m in marks))


@SCHEDULERS.register
def OneCycle(base_lr, total_steps, pct_start: float = 0.3, div_factor: float = 25.0,
             final_div_factor: float = 1e4, warmup_steps: int = 0, warmup_start_factor: float = 0.1):
    """Cosine rise from base/div to base over ``pct_start``, then cosine fall to base/div/final_div."""
    low, end = 1.0 / div_factor, 1.0 / (div_factor * final_div_factor)

    def main(p: float) -> float:
        if p < pct_start:
            return low + (1 - low) * 0.5 * (1 - math.cos(math.pi * p / pct_start))
        q = (p - pct_start) / max(1 - pct_start, 1e-8)
        return end + (1 - end) * 0.5 * (1 + math.cos(math.pi * q))

    return _with_warmup(base_lr, total_steps, warmup_steps, warmup_start_factor, main)


def build_scheduler(cfg: Mapping[str, Any] | None, base_lr: float, total_steps: int,
                    steps_per_epoch: int) -> paddle.optimizer.lr.LRScheduler:
    """Build from ``{type, warmup_epochs|warmup_steps, ...}``; warmup epochs become updates."""
    cfg = dict(cfg or {"type": "Constant"})
    if "warmup_epochs" in cfg:
        cfg["warmup_steps"] = int(round(cfg.pop("warmup_epochs") * steps_per_epoch))
    return SCHEDULERS.build(cfg, base_lr=base_lr, total_steps=total_steps)


def build_optimizer(cfg: Mapping[str, Any], model, scheduler, clip_grad_norm: float | None = None):
    """Build from ``{type, lr, ...}``; ``lr`` is the base rate the scheduler scales."""
    cfg = dict(cfg)
    cfg.pop("lr", None)
    clip = paddle.nn.ClipGradByGlobalNorm(clip_grad_norm) if clip_grad_norm else None
    return OPTIMIZERS.build(cfg, model=model, lr=scheduler, grad_clip=clip)
