"""Progress bar, VisualDL scalars and the end-of-training summary (callbacks, main rank only)."""

from __future__ import annotations

import logging
import sys
import time

from .callbacks import Callback

log = logging.getLogger(__name__)


class Progress(Callback):
    """A tqdm bar over all updates with ETA, loss, lr and samples/s; periodic log lines too."""

    name = "progress"

    def __init__(self, log_interval: int = 10, bar: bool = True):
        self.log_interval, self.bar_enabled = log_interval, bar
        self.bar = None

    def on_train_begin(self, state, control, model):
        if self.bar_enabled:
            from tqdm import tqdm

            self.bar = tqdm(total=state.total_steps, initial=state.step, unit="step", dynamic_ncols=True,
                            file=sys.stderr, mininterval=1.0, disable=None)

    def on_step_end(self, state, control, model, logs):
        if self.bar is not None:
            self.bar.set_description(f"epoch {state.epoch + 1}")
            self.bar.set_postfix_str(_format(logs), refresh=False)
            self.bar.update(1)
        if state.step % self.log_interval == 0 or state.step == state.total_steps:
            log.info("step %d/%d epoch %d %s", state.step, state.total_steps, state.epoch + 1, _format(logs))

    def on_evaluate(self, state, control, metrics):
        log.info("eval at step %d: %s", state.step, _format(metrics))

    def on_train_end(self, state, model):
        if self.bar is not None:
            self.bar.close()


def _format(values: dict) -> str:
    parts = []
    for key, value in values.items():
        if isinstance(value, float):
            parts.append(f"{key}={value:.4g}")
        elif isinstance(value, int):
            parts.append(f"{key}={value}")
    return " ".join(parts)


class VisualDL(Callback):
    """Writes train scalars every ``log_interval`` updates and every evaluation to ``<output>/vdl``."""

    name = "visualdl"

    def __init__(self, log_interval: int = 10):
        self.log_interval = log_interval
        self.writer = None

    def on_train_begin(self, state, control, model):
        from visualdl import LogWriter

        self.writer = LogWriter(logdir=f"{state.output_dir}/vdl")

    def on_step_end(self, state, control, model, logs):
        if state.step % self.log_interval == 0 or state.step == state.total_steps:
            for key, value in logs.items():
                if isinstance(value, (int, float)):
                    self.writer.add_scalar(tag=f"train/{key}", step=state.step, value=float(value))

    def on_evaluate(self, state, control, metrics):
        for key, value in metrics.items():
            if isinstance(value, (int, float)):
                self.writer.add_scalar(tag=f"eval/{key}", step=state.step, value=float(value))

    def on_train_end(self, state, model):
        if self.writer is not None:
            self.writer.close()


def summary_table(rows: list[tuple[str, str]]) -> str:
    """A two-column text table."""
    width = max(len(k) for k, _ in rows)
    line = "+" + "-" * (width + 2) + "+" + "-" * 42 + "+"
    body = [f"| {k.ljust(width)} | {v[:40].ljust(40)} |" for k, v in rows]
    return "\n".join([line, *body, line])


class Timer:
    """Wall time and samples counted since ``start``."""

    def __init__(self):
        self.start = time.perf_counter()
        self.samples = 0

    def rate(self) -> float:
        return self.samples / max(time.perf_counter() - self.start, 1e-9)

    def elapsed(self) -> float:
        return time.perf_counter() - self.start
