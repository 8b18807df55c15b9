"""The one training loop every kit uses.

The model owns its loss (``model(batch)`` returns ``{'loss': ..., ...}`` in train mode) and the
task adapter supplies datasets and metrics, so nothing here depends on what is being trained.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import numpy as np
import paddle

from . import checkpoint as ckpt
from .callbacks import EMA, BestTracker, Callback, Control, Schedule, TrainState
from .config import Config
from .data import EpochBatchSampler, build_loader, to_tensors
from .errors import CheckpointError, ConfigError, TrainingError
from .monitor import Progress, Timer, VisualDL, summary_table
from .optim import build_optimizer, build_scheduler
from .pretrained import load_into, save_state
from .schema import validate_trainer
from .task import Task

log = logging.getLogger(__name__)


def select_device(name: str) -> str:
    """``auto`` picks the GPU when paddle was built with CUDA and one is visible."""
    has_gpu = paddle.is_compiled_with_cuda() and paddle.device.cuda.device_count() > 0
    if name == "gpu" and not has_gpu:
        raise ConfigError("trainer.device is 'gpu' but no CUDA GPU is available to paddle; use auto or cpu")
    device = "gpu" if name == "gpu" or (name == "auto" and has_gpu) else "cpu"
    paddle.set_device(device)
    return device


def check_writable(directory: str) -> Path:
    path = Path(directory)
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / ".write_test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"output directory '{directory}' is not writable: {exc.strerror or exc}") from None
    return path


class Trainer:
    """Train, evaluate and checkpoint a model described by a validated config."""

    def __init__(self, cfg: Config, task: Task, callbacks: list[Callback] = (), model=None):
        task.validate(cfg)
        self.cfg, self.task, self.tc = cfg, task, validate_trainer(cfg)
        self.rank, self.world = paddle.distributed.get_rank(), paddle.distributed.get_world_size()
        self.is_main = self.rank == 0
        self.out = check_writable(self.tc.output_dir) if self.is_main else Path(self.tc.output_dir)
        self.device = select_device(self.tc.device)
        if self.world > 1:
            paddle.distributed.init_parallel_env()
        paddle.seed(self.tc.seed)
        np.random.seed(self.tc.seed)
        self.net = model if model is not None else task.build_model(cfg)
        self._load_pretrained()
        self._build_data()
        self._build_optim()
        self.model = paddle.DataParallel(self.net) if self.world > 1 else self.net
        self.callbacks = self._default_callbacks() + list(callbacks)
        self.state = TrainState(steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
                                by_epoch=self.tc.epochs is not None, is_main=self.is_main,
                                output_dir=str(self.out))

    # -- building ---------------------------------------------------------------------------
    def _load_pretrained(self) -> None:
        source = self.cfg.get("pretrained")
        if source:
            load_into(self.net, source)  # logs what was loaded and skipped

    def _build_data(self) -> None:
        tc = self.tc
        self.train_set = self.task.build_dataset(self.cfg, "train")
        self.val_set = self.task.build_dataset(self.cfg, "val")
        self._check_class_counts()
        self.sampler = EpochBatchSampler(len(self.train_set), tc.batch_size, shuffle=True, drop_last=True,
                                         seed=tc.seed, rank=self.rank, world_size=self.world,
                                         order_fn=getattr(self.train_set, "batch_order", None))
        if len(self.sampler) < tc.grad_accum:
            raise ConfigError(f"the training set ({len(self.train_set)} samples) is smaller than one update "
                              f"(batch_size {tc.batch_size} x grad_accum {tc.grad_accum} x {self.world} ranks)")
        self.train_loader = build_loader(self.train_set, self.sampler, tc.batch_size,
                                         self.task.collate_for(self.train_set), tc.num_workers)
        self.val_loader = None
        if self.val_set is not None:
            self.val_loader = build_loader(self.val_set, None, tc.eval_batch_size or tc.batch_size,
                                           self.task.collate_for(self.val_set), tc.num_workers)
        self.steps_per_epoch = len(self.sampler) // tc.grad_accum
        self.total_steps = tc.iters if tc.iters is not None else tc.epochs * self.steps_per_epoch

    def _check_class_counts(self) -> None:
        model_n = getattr(self.net, "num_classes", None)
        for name, ds in (("train_dataset", self.train_set), ("val_dataset", self.val_set)):
            data_n = getattr(ds, "num_classes", None)
            if model_n is not None and data_n is not None and model_n != data_n:
                raise ConfigError(f"{self.cfg.origin(name)}: {name} has {data_n} classes but the model has "
                                  f"{model_n}; set model.num_classes: {data_n}")

    def _build_optim(self) -> None:
        base_lr = float(self.cfg["optimizer"]["lr"])
        self.scheduler = build_scheduler(self.cfg.get("lr_scheduler"), base_lr, self.total_steps,
                                         self.steps_per_epoch)
        self.optimizer = build_optimizer(self.cfg["optimizer"], self.net, self.scheduler, self.tc.clip_grad_norm)
        self.amp = bool(self.tc.amp and self.device == "gpu")
        if self.tc.amp and not self.amp and self.is_main:
            log.warning("trainer.amp is on but the device is CPU: training in float32")
        self.scaler = paddle.amp.GradScaler(init_loss_scaling=2.0 ** 15) if self.amp else None

    def _default_callbacks(self) -> list[Callback]:
        tc = self.tc
        cbs: list[Callback] = [Schedule(tc.eval_interval, tc.save_interval, self.val_loader is not None),
                               BestTracker(tc.best_metric, tc.best_mode, tc.early_stop_patience)]
        if tc.ema:
            cbs.append(EMA(tc.ema_decay))
        if self.is_main:
            cbs.append(Progress(tc.log_interval, tc.progress))
            if tc.visualdl:
                cbs.append(VisualDL(tc.log_interval))
        return cbs

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoints"

    def save(self, tags: set[str] = frozenset()) -> Path | None:
        if not self.is_main:
            return None
        epoch, batch = self.state.epoch, self.state.batch_in_epoch
        if batch >= self.steps_per_epoch:  # saved at an epoch's end: resume at the next one
            epoch, batch = epoch + 1, 0
        position = {"step": self.state.step, "epoch": epoch, "batch_in_epoch": batch}
        extra = {"scaler": self.scaler.state_dict() if self.scaler else None}
        path = ckpt.save_checkpoint(self.ckpt_dir / ckpt.checkpoint_name(self.state.step), model=self.net,
                                    optimizer=self.optimizer, scheduler=self.scheduler, position=position,
                                    callbacks={cb.name: cb.state_dict() for cb in self.callbacks}, extra=extra)
        if "best" in tags:
            self.export_weights(self.out / "best_model.safetensors")
        ckpt.prune(self.ckpt_dir, self.tc.keep_last)
        return path

    def export_weights(self, path: Path) -> Path:
        """Write the evaluation weights (EMA when on) as a plain safetensors weight file.

        A training wrapper (e.g. distillation) names the model its config builds as ``weights_model``:
        only that one is written, so the file loads like any weights of the config."""
        model = getattr(self.net, "weights_model", self.net)
        with self._eval_weights():
            state = {k: v.numpy() for k, v in model.state_dict().items()}
        # a model may describe its weights (e.g. channel-pruned layers) for whoever loads them
        metadata = {**getattr(model, "weights_metadata", {}), "step": str(self.state.step)}
        return save_state(state, path, metadata=metadata)

    def resume(self, source: str | os.PathLike | bool = True) -> Path:
        """Continue from a checkpoint file, or from the newest valid one in the output dir (``True``)."""
        if source is True or source == "auto":
            found = ckpt.latest_valid(self.ckpt_dir)
            if found is None:
                raise CheckpointError(f"--resume: no valid checkpoint in {self.ckpt_dir}")
            path, tensors, state = found
        else:
            path = Path(source)
            tensors, state = ckpt.read_checkpoint(path)
        load_into(self.net, ckpt.section(tensors, "model/"), strict=True)
        ckpt.restore_optimizer(self.optimizer, self.net, ckpt.section(tensors, "optim/"), state["optimizer"])
        if state["scheduler"] is not None:
            self.scheduler.set_state_dict(state["scheduler"])
        for cb in self.callbacks:
            if cb.name in state["callbacks"]:
                cb.set_state_dict({**state["callbacks"][cb.name], **ckpt.section(tensors, f"cb/{cb.name}/")})
        if self.scaler and state["extra"].get("scaler"):
            self.scaler.load_state_dict(state["extra"]["scaler"])
        pos = state["position"]
        self.state.step, self.state.epoch, self.state.batch_in_epoch = pos["step"], pos["epoch"], pos["batch_in_epoch"]
        ckpt.set_rng_state(state["rng"])
        if self.is_main:
            log.info("resumed from %s at step %d (epoch %d)", path, self.state.step, self.state.epoch + 1)
        return path

    # -- the loop ---------------------------------------------------------------------------
    def _emit(self, event: str, *args) -> Control:
        control = Control()
        for cb in self.callbacks:
            getattr(cb, event)(self.state, control, *args)
        return control

    def _eval_weights(self):
        import contextlib

        stack = contextlib.ExitStack()
        for cb in self.callbacks:
            stack.enter_context(cb.eval_weights(self.net))
        return stack

    def _forward_loss(self, batch: dict) -> dict:
        with paddle.amp.auto_cast(enable=self.amp, level="O1"):
            losses = self.model(batch)
        if not isinstance(losses, dict) or "loss" not in losses:
            raise TrainingError(f"{type(self.net).__name__}.forward must return a dict with a 'loss' entry in "
                                f"train mode, got {type(losses).__name__}")
        return losses

    def _update(self, micro_batches: list[dict]) -> dict:
        """One optimizer update over ``grad_accum`` micro-batches; returns the averaged logs."""
        logs: dict[str, float] = {}
        for batch in micro_batches:
            losses = self._forward_loss(batch)
            value = float(losses["loss"])
            if not math.isfinite(value):
                self._stop_on_nan(value, losses)
            loss = losses["loss"] / len(micro_batches)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            for key, val in losses.items():
                logs[key] = logs.get(key, 0.0) + float(val) / len(micro_batches)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.optimizer.clear_grad()
        logs["lr"] = float(self.optimizer.get_lr())
        self.scheduler.step()
        return logs

    def _stop_on_nan(self, value: float, losses: dict) -> None:
        last = ckpt.list_checkpoints(self.ckpt_dir)
        parts = ", ".join(f"{k}={float(v):.4g}" for k, v in losses.items())
        raise TrainingError(
            f"loss became {value} at step {self.state.step + 1} ({parts}). Training stopped; "
            f"the last good checkpoint is {last[-1] if last else 'none (no checkpoint was saved yet)'}. "
            "Lower optimizer.lr, add trainer.clip_grad_norm or check the data for bad labels.")

    def _handle(self, control: Control) -> bool:
        """Act on signals; returns True when training must stop."""
        if control.should_evaluate:
            metrics = self.evaluate()
            more = self._emit("on_evaluate", metrics)
            control.save_tags |= more.save_tags
            control.should_save |= more.should_save
            if more.should_stop:
                control.stop(more.stop_reason)
        if control.should_save:
            self.save(control.save_tags)
        if control.should_stop and self.is_main:
            log.info(control.stop_reason)
        return control.should_stop

    def train(self) -> dict:
        """Run until ``total_steps`` updates (or a stop signal); returns the summary dict."""
        self.model.train()
        self._emit("on_train_begin", self.net)
        timer, accum, stopped = Timer(), self.tc.grad_accum, False
        while self.state.step < self.total_steps and not stopped:
            self.sampler.set_epoch(self.state.epoch, self.state.batch_in_epoch * accum)
            micro: list[dict] = []
            for batch in self.train_loader:
                micro.append(to_tensors(batch))
                if len(micro) < accum:
                    continue
                logs = self._update(micro)
                timer.samples += self.tc.batch_size * accum * self.world
                micro = []
                self.state.step += 1
                self.state.batch_in_epoch += 1
                logs["samples_per_s"] = timer.rate()
                self.state.last_logs = logs
                stopped = self._handle(self._emit("on_step_end", self.net, logs))
                if stopped or self.state.step >= self.total_steps or self.state.batch_in_epoch >= self.steps_per_epoch:
                    break
            if self.state.batch_in_epoch >= self.steps_per_epoch:
                stopped = self._handle(self._emit("on_epoch_end", self.net)) or stopped
                self.state.epoch += 1
                self.state.batch_in_epoch = 0
        return self._finish(timer)

    def _finish(self, timer: Timer) -> dict:
        for cb in self.callbacks:
            cb.on_train_end(self.state, self.net)
        best = next(cb for cb in self.callbacks if isinstance(cb, BestTracker))
        summary = {"steps": self.state.step, "epochs": round(self.state.step / self.steps_per_epoch, 2),
                   "seconds": round(timer.elapsed(), 1), "samples_per_s": round(timer.rate(), 2),
                   "best_metric": best.metric, "best_value": best.best, "best_step": best.best_step,
                   "output_dir": str(self.out)}
        if self.is_main:
            self.export_weights(self.out / "final_model.safetensors")
            (self.out / "config.yml").write_text(self.cfg.to_yaml(), encoding="utf-8")
            log.info("training finished\n%s", summary_table([(k, str(v)) for k, v in summary.items()]))
        return summary

    def evaluate(self) -> dict[str, float]:
        """Run the task metric over the validation set with the evaluation weights."""
        if self.val_loader is None:
            return {}
        metric = self.task.build_metric(self.cfg, self.val_set)
        if metric is None:
            return {}
        with self._eval_weights():
            return evaluate_model(self.net, self.val_loader, metric)


@paddle.no_grad()
def evaluate_model(net, loader, metric) -> dict[str, float]:
    """One pass of ``metric`` over ``loader`` in eval mode; restores the previous mode."""
    was_training = net.training
    metric.reset()
    net.eval()
    try:
        for batch in loader:
            batch = to_tensors(batch)
            metric.update(net(batch), batch)
    finally:
        if was_training:
            net.train()
    return {k: float(v) for k, v in metric.compute().items()}
