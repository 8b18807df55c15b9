"""``compress()``: one recipe applied to one model, judged on the exported artifact.

baseline export -> model-stage strategies -> fine-tuning (shared Trainer) -> export ->
artifact-stage strategies -> deployed accuracy and latency of baseline and compressed in the
target engines -> report (JSON + Markdown) and the decision which model ships.
"""

from __future__ import annotations

import copy
import json
import logging
import shutil
from pathlib import Path

from kits.core import runner
from kits.core.config import Config, apply_overrides
from kits.core.errors import KitsError

from .base import SlimContext
from .recipe import Recipe, load_recipe
from .report import judge, latency_shapes, measure_artifact, other_engines, write_report

log = logging.getLogger(__name__)


class CompressionError(KitsError, RuntimeError):
    """The compressed model is broken (e.g. its deployed accuracy collapsed)."""


def compress(config, recipe, task_for, weights=None, overrides=(), recipe_overrides=(), output=None) -> dict:
    """Compress the config's model (``weights`` or its ``pretrained``) with ``recipe``.

    Writes ``baseline/``, ``compressed/`` (each an exported model with deploy.yml), ``ship/`` (the
    one to deploy) and ``report.json`` / ``report.md`` under ``output``; returns the report.
    """
    cfg = runner.as_config(config, overrides)
    rec = recipe if isinstance(recipe, Recipe) else load_recipe(recipe, recipe_overrides)
    task = task_for(cfg)
    out = Path(output or Path(cfg["trainer"]["output_dir"]) / "compress" / rec.name)
    out.mkdir(parents=True, exist_ok=True)
    model = runner.load_model(cfg, task, weights)
    formats = _formats(rec)
    baseline_dir = _export(model, task, cfg, out / "baseline", formats)
    ctx = SlimContext(cfg=_finetune_cfg(cfg, rec, out), task=task, model=model, out_dir=out,
                      baseline=copy.deepcopy(model))
    _carry_built_files(cfg, ctx.cfg)
    simulated = _run_model_stage(ctx, rec)
    compressed_dir = _export_compressed(ctx, rec, formats, out / "compressed")
    base = measure_artifact(baseline_dir, ctx.baseline, task, cfg, rec.report)
    # quantizers hide their layers from paddle.flops; only pruning changes the count
    flops = None if "prune" in ctx.info else base["flops"]
    rows = {"baseline": base, "compressed": measure_artifact(compressed_dir, ctx.model, task, cfg, rec.report, flops)}
    report = judge(rec, rows, simulated, ctx, {"baseline": baseline_dir, "compressed": compressed_dir},
                   latency_shapes(rec.report, baseline_dir, task, cfg))
    if collapsed(report, rec.report.max_deploy_gap):
        report["other_engines_accuracy"] = other_engines(compressed_dir, ctx.model, task, cfg, rec.report,
                                                         report["metric"])
    _ship(out, report)
    write_report(report, out)
    check_collapse(report, rec.report.max_deploy_gap, out / "report.md")
    return report


def collapsed(report: dict, max_gap: float) -> bool:
    gap = report.get("deploy_gap")
    return gap is not None and gap > max_gap


def check_collapse(report: dict, max_gap: float, where) -> None:
    """Fail loudly when the deployed file scores far from the graph it was trained as; name what the
    same file scores in the report's other engines (close to the training graph there: the target
    engine runs the file wrongly, not the compression)."""
    if not collapsed(report, max_gap):
        return
    others = "".join(f"; in {engine} the same file scores {acc:.4f}"
                     for engine, acc in (report.get("other_engines_accuracy") or {}).items() if acc is not None)
    raise CompressionError(f"deployed accuracy {report['compressed']['accuracy']:.4f} in {report['target_engine']} "
                           f"differs from the training-graph accuracy {report['training_graph_accuracy']:.4f} by "
                           f"{report['deploy_gap']:.4f} (> max_deploy_gap {max_gap}){others}; see {where}")


def _formats(rec: Recipe) -> list[str]:
    from kits.deploy.backends import backend_info

    fmts = ["onnx"] + [backend_info(b).formats[0] for b in rec.report.backends]
    return list(dict.fromkeys(f for f in fmts if f != "paddle"))


def _finetune_cfg(cfg: Config, rec: Recipe, out: Path) -> Config:
    """The model config for fine-tuning: the recipe's overrides, its own output dir, no re-loading of
    ``pretrained`` over the compressed weights."""
    tuned = Config(copy.deepcopy(dict(cfg)), path=cfg.path, origins=dict(cfg.origins))
    texts = [f"{k}={json.dumps(v)}" for k, v in rec.finetune.items()]
    tuned = apply_overrides(tuned, texts + [f"trainer.output_dir={json.dumps(str(out / 'finetune'))}"])
    tuned.pop("pretrained", None)
    return tuned


def _carry_built_files(cfg: Config, tuned: Config) -> None:
    """Copy the files the training run built for its datasets (a text kit's ``vocab.txt`` /
    ``labels.txt``) into the fine-tuning output dir, where the compressed model's datasets and
    export read them back; without them a model trained on a built vocabulary cannot be compressed.

    A built vocabulary is also pinned as ``train_dataset.tokenizer.vocab``: fine-tuning would
    otherwise learn a new one, whose token ids need not be the ones the weights were trained on."""
    from kits.core.schema import validate_trainer

    source, target = Path(validate_trainer(cfg).output_dir), Path(validate_trainer(tuned).output_dir)
    if not source.is_dir() or source.resolve() == target.resolve():
        return
    target.mkdir(parents=True, exist_ok=True)
    for path in source.glob("*.txt"):
        shutil.copy2(path, target / path.name)
    tokenizer = tuned.get_path("train_dataset.tokenizer")
    if isinstance(tokenizer, dict) and tokenizer.get("vocab") is None and (target / "vocab.txt").is_file():
        tokenizer["vocab"] = str(target / "vocab.txt")


def _export(model, task, cfg, directory: Path, formats: list[str]) -> Path:
    from kits.export import export

    spec = task.deploy_spec(cfg, model)
    export(task.export_model(cfg, model), spec, directory, formats)
    _copy_assets(spec, directory)
    return directory


def _copy_assets(spec: dict, directory: Path) -> None:
    """Files the runtime reads beside the model (a text model's vocabulary), named by the spec."""
    for name, source in (spec.get("assets") or {}).items():
        if Path(source).resolve() != (directory / name).resolve():
            shutil.copyfile(source, directory / name)


def _run_model_stage(ctx: SlimContext, rec: Recipe) -> float | None:
    """Apply the model-stage strategies, fine-tune if asked; returns the training-graph accuracy."""
    from kits.core.trainer import Trainer

    model_steps = [s for s in rec.strategies if s.stage == "model"]
    for step in rec.strategies:
        step.apply(ctx)
    if ctx.needs_training:
        trainer = Trainer(ctx.cfg, ctx.task, callbacks=ctx.callbacks, model=ctx.model)
        ctx.info["finetune"] = trainer.train()
        with trainer._eval_weights():  # EMA weights when the config turns EMA on
            state = {k: v.clone() for k, v in ctx.model.state_dict().items()}
        ctx.model.set_state_dict(state)
    for step in model_steps:
        step.after_training(ctx)
    ctx.model.eval()
    metric_name = _metric_name(ctx, rec)
    from .deployed import score, val_loader

    dataset, loader = val_loader(ctx.task, ctx.cfg, _eval_batch(ctx.cfg), rec.report.eval_samples)
    metrics = score(ctx.model, ctx.task, ctx.cfg, dataset, loader)
    ctx.info["training_graph_metrics"] = metrics
    return metrics.get(metric_name)


def _metric_name(ctx: SlimContext, rec: Recipe) -> str | None:
    return rec.report.metric or ctx.cfg.get_path("trainer.best_metric")


def _eval_batch(cfg: Config) -> int:
    tc = cfg.get("trainer") or {}
    return int(tc.get("eval_batch_size") or tc.get("batch_size") or 1)


def _export_compressed(ctx: SlimContext, rec: Recipe, formats: list[str], directory: Path) -> Path:
    from kits.export import export, export_from_onnx

    artifact_steps = [s for s in rec.strategies if s.stage == "artifact"]
    if ctx.onnx_exporter is None and not artifact_steps:
        return _export(ctx.model, ctx.task, ctx.cfg, directory, formats)
    directory.mkdir(parents=True, exist_ok=True)
    work = directory / "work"
    if ctx.onnx_exporter is not None:
        onnx_file = ctx.onnx_exporter(ctx, work)
    else:
        traced = ctx.task.export_model(ctx.cfg, ctx.model)
        onnx_file = export(traced, ctx.task.deploy_spec(ctx.cfg, ctx.model), work, ["onnx"])["onnx"]
    for step in artifact_steps:
        onnx_file = step.quantize_artifact(ctx, Path(onnx_file), work)
    spec = ctx.task.deploy_spec(ctx.cfg, ctx.model)
    export_from_onnx(onnx_file, ctx.task.export_model(ctx.cfg, ctx.model), spec, directory, formats,
                     precision=ctx.precision)
    _copy_assets(spec, directory)
    shutil.rmtree(work, ignore_errors=True)
    return directory


def _ship(out: Path, report: dict) -> None:
    """Copy the model that won (``report['shipped']``) to ``out/ship``."""
    target = out / "ship"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(out / report["shipped"], target)


def analyze_sensitivity(config, task_for, weights=None, overrides=(), ratios=(0.1, 0.2, 0.3, 0.4, 0.5),
                        criterion: str = "l1_norm", samples: int | None = 32, metric: str | None = None,
                        output=None, params=None) -> dict:
    """Prune each channel group (or those matching ``params`` patterns) alone at each ratio and score the
    config's val set (first ``samples``); writes ``sensitivity.json`` / ``.md`` / ``.png`` under ``output``."""
    from .deployed import score, val_loader
    from .sensitivity import sensitivity, write_sensitivity

    cfg = runner.as_config(config, overrides)
    task = task_for(cfg)
    model = runner.load_model(cfg, task, weights)
    dataset, loader = val_loader(task, cfg, _eval_batch(cfg), samples)
    name = metric or cfg.get_path("trainer.best_metric")

    def evaluate(net) -> float:
        metrics = score(net, task, cfg, dataset, loader)
        return metrics[name] if name else next(iter(metrics.values()))

    result = sensitivity(model, evaluate, ratios=ratios, criterion=criterion, params=params)
    result["metric"] = name
    out = Path(output or Path(cfg["trainer"]["output_dir"]) / "sensitivity")
    write_sensitivity(result, out)
    return result
