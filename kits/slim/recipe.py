"""Compression recipes: YAML files under ``configs/slim/`` validated into typed objects.

    strategies:                    # run in this order; model-stage ones before export
      - {type: Prune, criterion: fpgm, flops_reduction: 0.3}
      - {type: QAT}
    finetune:                      # overrides of the model config for the fine-tuning run
      trainer.epochs: 4
      optimizer.lr: 1.0e-4
    report: {backends: [onnxruntime, openvino], threads: 2}

A recipe is loaded with the same safe loader as model configs (``_base_`` works), so recipes are
shared by every kit.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kits.core.config import Config, load_config
from kits.core.errors import ConfigError, did_you_mean
from kits.core.schema import to_dataclass

from .base import STRATEGIES, Strategy

RECIPE_KEYS = ("strategies", "finetune", "report")


@dataclass
class ReportConfig:
    """How the compressed artifact is judged.

    backends: engines the artifact is measured in; the first is the target engine that decides
    which model ships: the compressed one ships when it is at least ``min_speedup`` times as fast
    as FP32 there and loses at most ``max_accuracy_drop``. max_deploy_gap: the largest allowed
    difference between the accuracy of the deployed artifact and of the training graph before the
    run fails (collapse guard). input_shapes: the input shapes latency is measured at, batch
    included (e.g. ``{input_ids: [1, 128], ...}`` for a text model; default: the export's example,
    except free-size image inputs, timed at the size of the first validation image as deployed).
    """

    backends: list = field(default_factory=lambda: ["onnxruntime", "openvino"])
    threads: int = 2
    rounds: int = 5
    iters: int = 30
    eval_samples: int | None = None
    metric: str | None = None
    max_deploy_gap: float = 0.02
    min_speedup: float = 1.05
    max_accuracy_drop: float = 0.01
    keep_faster: bool = True
    input_shapes: dict | None = None


@dataclass
class Recipe:
    name: str
    strategies: list[Strategy]
    finetune: dict[str, Any]
    report: ReportConfig
    path: str

    def describe(self) -> list[dict]:
        return [s.describe() for s in self.strategies]


def load_recipe(path: str | os.PathLike, overrides=()) -> Recipe:
    """Read and validate a recipe file; every error names the file and the key."""
    cfg = load_config(path, overrides)
    for key in cfg:
        if key not in RECIPE_KEYS:
            raise ConfigError(f"{cfg.origin(key)}: unknown recipe key '{key}'.{did_you_mean(key, RECIPE_KEYS)} "
                              f"Valid keys: {', '.join(RECIPE_KEYS)}")
    entries = cfg.get("strategies")
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{cfg.path}: a recipe needs a non-empty 'strategies' list")
    strategies = [_build(cfg, i, entry) for i, entry in enumerate(entries)]
    _check_order(cfg, strategies)
    finetune = cfg.get("finetune") or {}
    if not isinstance(finetune, dict):
        raise ConfigError(f"{cfg.origin('finetune')}: 'finetune' must map dotted config keys to values")
    report = to_dataclass(ReportConfig, cfg.get("report"), cfg, "report")
    _check_report(cfg, report)
    return Recipe(Path(path).stem, strategies, _flatten(finetune), report, str(path))


def _check_report(cfg: Config, report: ReportConfig) -> None:
    from kits.deploy.backends import backend_info

    if not report.backends:
        raise ConfigError(f"{cfg.origin('report.backends')}: 'report.backends' needs at least one engine")
    for name in report.backends:
        try:
            backend_info(name)
        except Exception as exc:
            raise ConfigError(f"{cfg.origin('report.backends')}: {exc}") from None
    for key in ("threads", "rounds", "iters"):
        if getattr(report, key) < 1:
            raise ConfigError(f"{cfg.origin('report.' + key)}: 'report.{key}' must be >= 1")
    if report.max_deploy_gap < 0:
        raise ConfigError(f"{cfg.origin('report.max_deploy_gap')}: 'report.max_deploy_gap' must be >= 0")


def _build(cfg: Config, index: int, entry: Any) -> Strategy:
    where = f"{cfg.origin('strategies')}: strategies[{index}]"
    if not isinstance(entry, dict) or "type" not in entry:
        raise ConfigError(f"{where} must be a mapping with a 'type' (one of {', '.join(STRATEGIES.names())})")
    try:
        return STRATEGIES.build(entry)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_order(cfg: Config, strategies: list[Strategy]) -> None:
    """Artifact-stage steps work on the exported file, so they come after every model-stage step."""
    seen_artifact = None
    for s in strategies:
        if s.stage == "artifact":
            seen_artifact = s
        elif seen_artifact is not None:
            raise ConfigError(f"{cfg.path}: {type(s).__name__} changes the model, so it must come before "
                              f"{type(seen_artifact).__name__}, which works on the exported file")
    names = [type(s).__name__ for s in strategies]
    for name in set(names):
        if names.count(name) > 1:
            raise ConfigError(f"{cfg.path}: strategy {name} appears {names.count(name)} times; list it once")


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    """``{trainer: {epochs: 4}}`` and ``{trainer.epochs: 4}`` both become ``{'trainer.epochs': 4}``."""
    flat = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value and "type" not in value:
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat
