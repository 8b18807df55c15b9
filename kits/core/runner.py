"""Entry points shared by every kit's api: train, dry-run and evaluate from a config."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterable

from .config import Config, load_config
from .data import to_tensors
from .task import Task

log = logging.getLogger(__name__)


def as_config(config: str | os.PathLike | Config | dict, overrides: Iterable[str] = ()) -> Config:
    """A Config from a path (with ``-o`` overrides) or from an in-memory dict."""
    if isinstance(config, (str, os.PathLike)):
        return load_config(config, overrides)
    from .config import apply_overrides

    cfg = config if isinstance(config, Config) else Config(config, path="<dict>")
    return apply_overrides(cfg, overrides)


def dry_run(cfg: Config, task: Task) -> dict:
    """Validate, build everything and push one batch through the model; no update is made."""
    from .trainer import Trainer

    cfg = Config(dict(cfg), path=cfg.path, origins=cfg.origins)
    cfg["trainer"] = {**cfg.get("trainer", {}), "num_workers": 0}  # data errors surface here, not in a worker
    trainer = Trainer(cfg, task)
    batch = to_tensors(next(iter(trainer.train_loader)))
    losses = trainer._forward_loss(batch)
    params = sum(int(p.size) for p in trainer.net.parameters())
    report = {"model": type(trainer.net).__name__, "params": params,
              "train_samples": len(trainer.train_set),
              "val_samples": len(trainer.val_set) if trainer.val_set is not None else 0,
              "total_steps": trainer.total_steps,
              "first_batch_losses": {k: round(float(v), 6) for k, v in losses.items()}}
    log.info("dry run OK: %s", report)
    return report


def train(cfg: Config, task: Task, resume: str | bool | None = None, callbacks=()) -> dict:
    """Train from ``cfg``; ``resume`` is a checkpoint path or True for the newest in the output dir."""
    from .trainer import Trainer

    trainer = Trainer(cfg, task, callbacks=list(callbacks))
    if resume:
        trainer.resume(resume)
    return trainer.train()


def load_model(cfg: Config, task: Task, weights: str | os.PathLike | None = None):
    """The validated config's model in eval mode with ``weights`` (strict) or else the config's
    ``pretrained`` (mismatched heads skipped)."""
    from .pretrained import load_into

    task.validate(cfg)
    model = task.build_model(cfg)
    source = weights or cfg.get("pretrained")
    if source:
        load_into(model, str(source), strict=bool(weights))
    model.eval()
    return model


def evaluate(cfg: Config, task: Task, weights: str | os.PathLike | None = None,
             report_dir: str | os.PathLike | None = None) -> dict:
    """Evaluate ``weights`` (a file or registered name; default: the config's ``pretrained``).

    Only the model and the validation set are built, so no training data is needed. A metric with
    ``write_report(dir)`` (plots, overlays) writes it to ``report_dir`` (default
    ``<trainer.output_dir>/eval``).
    """
    from .data import build_loader
    from .errors import ConfigError
    from .schema import validate_trainer
    from .trainer import evaluate_model, select_device

    source = weights or cfg.get("pretrained")
    if not source:
        raise ConfigError("nothing to evaluate: pass weights (-o weights=FILE) or set 'pretrained'")
    tc = validate_trainer(cfg)
    select_device(tc.device)
    net = load_model(cfg, task, weights)
    val_set = task.build_dataset(cfg, "val")
    if val_set is None:
        raise ConfigError(f"{cfg.path}: evaluation needs a 'val_dataset' section")
    loader = build_loader(val_set, None, tc.eval_batch_size or tc.batch_size, task.collate_for(val_set),
                          tc.num_workers)
    metric = task.build_metric(cfg, val_set)
    if metric is None:
        raise ConfigError(f"the '{task.name}' task defines no metric")
    metrics = evaluate_model(net, loader, metric)
    log.info("evaluation of %s: %s", source, metrics)
    if hasattr(metric, "write_report"):
        out = Path(report_dir) if report_dir else Path(tc.output_dir) / "eval"
        metric.write_report(out)
        log.info("evaluation report written to %s", out)
    return metrics


def run_train(config, task_for, overrides: Iterable[str] = (), resume=None, dry_run_only: bool = False) -> dict:
    """What every kit's ``api.train`` does: config from a path or dict, the kit's task for it, then
    a dry run or training. ``task_for(cfg)`` returns the Task."""
    cfg = as_config(config, overrides)
    task = task_for(cfg)
    return dry_run(cfg, task) if dry_run_only else train(cfg, task, resume=resume)


def latest_weights(output_dir: str | os.PathLike) -> Path | None:
    """``best_model`` if present, else ``final_model`` in a training output directory."""
    for name in ("best_model.safetensors", "final_model.safetensors"):
        path = Path(output_dir) / name
        if path.is_file():
            return path
    return None
