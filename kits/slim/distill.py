"""Knowledge distillation: the student learns from a frozen teacher during fine-tuning.

Pairs name a sublayer of the student and one of the teacher; their outputs are captured with
forward hooks and compared with KL divergence at a temperature (softmax logits), binary cross-entropy
against the teacher's sigmoid (independent per-class logits, e.g. detectors) or mean squared error
(features, through a learned 1x1 adapter when the channel counts differ). The teacher defaults to
the uncompressed model, which is what a prune -> distill recipe wants.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.errors import ConfigError, did_you_mean

from .base import STRATEGIES, SlimContext, Strategy

LOSSES = ("kl", "bce", "mse")
PAIR_KEYS = ("student", "teacher", "loss", "weight", "temperature", "axis")


@STRATEGIES.register
@dataclass
class Distill(Strategy):
    """pairs: ``[{student: head.cls_out.0, teacher: head.cls_out.0, loss: kl, temperature: 2, axis: 1,
    weight: 1}, {student: neck, loss: mse}]`` (``teacher`` defaults to the student's name).
    teacher: ``{config: FILE, weights: FILE}``; absent, the model before compression teaches."""

    pairs: list = field(default_factory=list)
    teacher: dict | None = None

    def __post_init__(self):
        if not self.pairs:
            raise ConfigError("Distill.pairs needs at least one {student: LAYER, loss: kl|mse} entry")
        self.pairs = [_check_pair(i, p) for i, p in enumerate(self.pairs)]
        if self.teacher is not None and set(self.teacher) - {"config", "weights"}:
            bad = sorted(set(self.teacher) - {"config", "weights"})[0]
            raise ConfigError(f"Distill.teacher has no key '{bad}'.{did_you_mean(bad, ['config', 'weights'])}")

    def apply(self, ctx: SlimContext) -> None:
        teacher = self._teacher(ctx)
        ctx.model = DistillModel(ctx.model, teacher, self.pairs)
        ctx.needs_training = True

    def after_training(self, ctx: SlimContext) -> None:
        if isinstance(ctx.model, DistillModel):
            ctx.info["distill"] = {"last_losses": ctx.model.last_losses}
            ctx.model = ctx.model.release()

    def _teacher(self, ctx: SlimContext):
        if self.teacher is None:
            if ctx.baseline is None:
                raise ConfigError("Distill has no teacher: name one with teacher: {config, weights}")
            return ctx.baseline
        from kits.core import runner

        cfg = runner.as_config(self.teacher["config"])
        return runner.load_model(cfg, ctx.task, self.teacher.get("weights"))


def _check_pair(index: int, pair) -> dict:
    where = f"Distill.pairs[{index}]"
    if not isinstance(pair, dict) or "student" not in pair:
        raise ConfigError(f"{where} must be a mapping with at least 'student' (a sublayer name)")
    for key in pair:
        if key not in PAIR_KEYS:
            raise ConfigError(f"{where} has no key '{key}'.{did_you_mean(key, PAIR_KEYS)} Valid: {', '.join(PAIR_KEYS)}")
    out = {"teacher": pair["student"], "loss": "mse", "weight": 1.0, "temperature": 1.0, "axis": 1, **pair}
    if out["loss"] not in LOSSES:
        raise ConfigError(f"{where}.loss '{out['loss']}' is unknown.{did_you_mean(out['loss'], LOSSES)} "
                          f"Valid: {', '.join(LOSSES)}")
    if float(out["temperature"]) <= 0:
        raise ConfigError(f"{where}.temperature must be > 0, got {out['temperature']}")
    return out


def _flat(value) -> list:
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flat(v)]
    if isinstance(value, dict):
        return [t for k in sorted(value) for t in _flat(value[k])]
    return [value] if isinstance(value, paddle.Tensor) else []


def _sublayer(model, name: str, who: str):
    layers = dict(model.named_sublayers())
    if name not in layers:
        raise ConfigError(f"Distill: the {who} has no sublayer '{name}'.{did_you_mean(name, layers)}")
    return layers[name]


def _adapter(student_channels: int, teacher_channels: int, ndim: int) -> nn.Layer:
    if student_channels == teacher_channels:
        return nn.Identity()
    if ndim == 4:
        return nn.Conv2D(student_channels, teacher_channels, 1)
    return nn.Linear(student_channels, teacher_channels)


class DistillModel(nn.Layer):
    """The student plus distillation losses in train mode; the plain student in eval mode.

    The teacher is held outside the layer tree, so it is neither trained nor saved.
    """

    def __init__(self, student, teacher, pairs: list[dict]):
        super().__init__()
        self.student = student
        object.__setattr__(self, "_teacher", teacher)
        teacher.eval()
        for p in teacher.parameters():
            p.stop_gradient = True
        self.pairs = pairs
        self._seen: dict = {}
        self._hooks = [_sublayer(student, p["student"], "student").register_forward_post_hook(self._catch(("s", i)))
                       for i, p in enumerate(pairs)]
        self._hooks += [_sublayer(teacher, p["teacher"], "teacher").register_forward_post_hook(self._catch(("t", i)))
                        for i, p in enumerate(pairs)]
        self.adapters = nn.LayerList([self._adapters(i) for i in range(len(pairs))])
        self.last_losses: dict = {}
        self._forward_through = [a for a in ("export_forward", "input_spec", "eval_outputs", "num_classes",
                                             "input_size", "head") if hasattr(student, a)]

    def _catch(self, key):
        def hook(layer, inputs, output):
            self._seen[key] = _flat(output)
        return hook

    def _adapters(self, index: int) -> nn.LayerList:
        """One adapter per output tensor of the pair's sublayer (a pruned neck's levels can differ in
        width); sizes come from one probe forward of both models on example inputs."""
        if self.pairs[index]["loss"] != "mse":
            return nn.LayerList()
        s, t = self._probe()
        return nn.LayerList([_adapter(int(s_out.shape[1]), int(t_out.shape[1]), s_out.ndim)
                             for s_out, t_out in zip(s[index], t[index])])

    def _probe(self):
        if not hasattr(self, "_probed"):
            inputs = [paddle.zeros([1 if d is None or d < 0 else d for d in spec.shape][:1] +
                                   [32 if d is None or d < 0 else d for d in spec.shape][1:], spec.dtype)
                      for spec in self.student.input_spec()]
            was = self.student.training
            self.student.eval()
            with paddle.no_grad():
                self.student.export_forward(*inputs)
                self._teacher.export_forward(*inputs)
            self.student.train(was)
            n = len(self.pairs)
            object.__setattr__(self, "_probed", ([self._seen[("s", i)] for i in range(n)],
                                                 [self._seen[("t", i)] for i in range(n)]))
        return self._probed

    @property
    def weights_model(self):
        """What the Trainer writes as best/final weights: the student alone (adapters are training aids)."""
        return self.student

    def with_weights_model(self, student) -> "DistillModel":
        """The same distillation around another student (e.g. its fake-quantized copy), before training."""
        self.release()
        return DistillModel(student, self._teacher, self.pairs)

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            if name != "student" and name in self.__dict__.get("_forward_through", ()):
                return getattr(self.student, name)
            raise

    def forward(self, batch):
        if not self.training:
            return self.student(batch)
        losses = dict(self.student(batch))
        inputs = [batch[spec.name] for spec in self.student.input_spec()]
        with paddle.no_grad():
            self._teacher.export_forward(*inputs)
        total = 0.0
        for i, pair in enumerate(self.pairs):
            loss = sum(self._pair_loss(i, j, pair, s, t)
                       for j, (s, t) in enumerate(zip(self._seen[("s", i)], self._seen[("t", i)])))
            losses[f"distill_{i}"] = loss
            total = total + loss
        losses["loss"] = losses["loss"] + total
        self.last_losses = {k: float(v) for k, v in losses.items() if k.startswith("distill")}
        return losses

    def _pair_loss(self, index: int, output: int, pair: dict, s, t):
        t = t.detach()
        if pair["loss"] == "kl":
            temp, axis = float(pair["temperature"]), int(pair["axis"])
            log_p = F.log_softmax(s / temp, axis=axis)
            q = F.softmax(t / temp, axis=axis)
            kl = (q * (paddle.log(paddle.clip(q, min=1e-12)) - log_p)).sum(axis=axis).mean()
            return float(pair["weight"]) * kl * temp * temp
        if pair["loss"] == "bce":
            temp = float(pair["temperature"])
            soft = F.sigmoid(t / temp)
            return float(pair["weight"]) * F.binary_cross_entropy_with_logits(s / temp, soft) * temp * temp
        s = self.adapters[index][output](s)
        return float(pair["weight"]) * F.mse_loss(s, t)

    def release(self):
        """Remove the hooks and return the trained student."""
        for hook in self._hooks:
            hook.remove()
        return self.student
