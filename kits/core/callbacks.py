"""Callbacks observe training and signal through ``Control``; they never rewire the trainer.

Events: ``on_train_begin``, ``on_step_end``, ``on_epoch_end``, ``on_evaluate``, ``on_train_end``.
Signals: ``control.should_evaluate``, ``control.should_save`` (with tags such as ``best``) and
``control.should_stop``. A callback with state implements ``state_dict`` / ``set_state_dict``;
the trainer stores it in checkpoints, so a resumed run continues exactly.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass, field
from typing import Iterator


log = logging.getLogger(__name__)


@dataclass
class TrainState:
    """Where training is; read by callbacks, written only by the trainer."""

    step: int = 0                 # optimizer updates done
    epoch: int = 0                # current epoch (0-based)
    batch_in_epoch: int = 0       # batches of the current epoch done
    steps_per_epoch: int = 1
    total_steps: int = 1
    by_epoch: bool = True
    is_main: bool = True
    output_dir: str = "output"
    last_logs: dict = field(default_factory=dict)


@dataclass
class Control:
    should_evaluate: bool = False
    should_save: bool = False
    should_stop: bool = False
    stop_reason: str = ""
    save_tags: set = field(default_factory=set)

    def save(self, tag: str = "") -> None:
        self.should_save = True
        if tag:
            self.save_tags.add(tag)

    def stop(self, reason: str) -> None:
        self.should_stop, self.stop_reason = True, reason


class Callback:
    """Base class: every hook is optional."""

    name = "callback"

    def on_train_begin(self, state: TrainState, control: Control, model) -> None: ...
    def on_step_end(self, state: TrainState, control: Control, model, logs: dict) -> None: ...
    def on_epoch_end(self, state: TrainState, control: Control, model) -> None: ...
    def on_evaluate(self, state: TrainState, control: Control, metrics: dict) -> None: ...
    def on_train_end(self, state: TrainState, model) -> None: ...

    def state_dict(self) -> dict:
        return {}

    def set_state_dict(self, state: dict) -> None: ...

    @contextlib.contextmanager
    def eval_weights(self, model) -> Iterator[None]:
        """Weights to evaluate and export with (EMA swaps its average in here)."""
        yield


class Schedule(Callback):
    """Asks for evaluation and saving every N epochs (or iterations) and at the end."""

    name = "schedule"

    def __init__(self, eval_interval: int, save_interval: int, can_evaluate: bool):
        self.eval_interval, self.save_interval, self.can_evaluate = eval_interval, save_interval, can_evaluate

    def _due(self, count: int, interval: int, last: bool) -> bool:
        return last or count % interval == 0

    def on_step_end(self, state, control, model, logs):
        if state.by_epoch:
            return
        last = state.step >= state.total_steps
        if self._due(state.step, self.save_interval, last):
            control.save("periodic")
        if self.can_evaluate and self._due(state.step, self.eval_interval, last):
            control.should_evaluate = True

    def on_epoch_end(self, state, control, model):
        if not state.by_epoch:
            return
        last = state.step >= state.total_steps
        if self._due(state.epoch + 1, self.save_interval, last):
            control.save("periodic")
        if self.can_evaluate and self._due(state.epoch + 1, self.eval_interval, last):
            control.should_evaluate = True


class BestTracker(Callback):
    """Tracks the best value of one metric; signals a ``best`` save and early stopping."""

    name = "best"

    def __init__(self, metric: str | None, mode: str = "max", patience: int | None = None):
        self.metric, self.mode, self.patience = metric, mode, patience
        self.best: float | None = None
        self.best_step = -1
        self.bad_evals = 0

    def on_evaluate(self, state, control, metrics):
        key = self.metric or next(iter(metrics), None)
        if key is None:
            return
        if key not in metrics:
            raise KeyError(f"trainer.best_metric '{key}' is not among the metrics {sorted(metrics)}")
        self.metric = key
        value = float(metrics[key])
        better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if better and math.isfinite(value):
            self.best, self.best_step, self.bad_evals = value, state.step, 0
            control.save("best")
        else:
            self.bad_evals += 1
            if self.patience and self.bad_evals >= self.patience:
                control.stop(f"early stopping: {key} did not improve for {self.bad_evals} evaluations "
                             f"(best {self.best:.4f} at step {self.best_step})")

    def state_dict(self):
        return {"metric": self.metric, "best": self.best, "best_step": self.best_step, "bad_evals": self.bad_evals}

    def set_state_dict(self, state):
        self.metric = state.get("metric", self.metric)
        self.best, self.best_step, self.bad_evals = state["best"], state["best_step"], state["bad_evals"]


class EMA(Callback):
    """Exponential moving average of the weights, used for evaluation and export.

    The decay ramps up as ``min(decay, (1 + n) / (10 + n))`` so that early, poor weights fade fast.
    The average stays on the training device (no host copies per step).
    """

    name = "ema"

    def __init__(self, decay: float = 0.9998):
        self.decay = decay
        self.updates = 0
        self.shadow: dict = {}

    def on_train_begin(self, state, control, model):
        if not self.shadow:
            self.shadow = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def on_step_end(self, state, control, model, logs):
        import paddle

        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        with paddle.no_grad():
            for key, value in model.state_dict().items():
                if value.dtype in (paddle.float32, paddle.float64, paddle.float16, paddle.bfloat16):
                    self.shadow[key] = d * self.shadow[key] + (1 - d) * value.detach()
                else:
                    self.shadow[key] = value.detach().clone()

    def state_dict(self):
        return {"updates": self.updates, **{f"w/{k}": v for k, v in self.shadow.items()}}

    def set_state_dict(self, state):
        import paddle

        self.updates = int(state["updates"])
        self.shadow = {k[2:]: paddle.to_tensor(v) for k, v in state.items() if k.startswith("w/")}

    @contextlib.contextmanager
    def eval_weights(self, model):
        backup = {k: v.detach().clone() for k, v in model.state_dict().items()}
        _assign(model, self.shadow)
        try:
            yield
        finally:
            _assign(model, backup)


def _assign(model, arrays: dict) -> None:
    import paddle

    for key, value in model.state_dict().items():
        if key in arrays:
            value.set_value(paddle.to_tensor(arrays[key]).astype(value.dtype))
