"""Measuring baseline and compressed artifacts the way they ship, and deciding which one ships."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


def model_flops(model) -> int | None:
    """``paddle.flops`` of one ``export_forward`` on the model's example input (image models with one
    input); paddle counts a convolution's multiply-accumulates."""
    import contextlib
    import io

    import paddle
    import paddle.nn as nn

    specs = list(model.input_spec())
    if len(specs) != 1 or "float" not in str(specs[0].dtype):
        return None
    shape = [1 if d is None or d < 0 else int(d) for d in specs[0].shape]
    if any(d == 1 for d in shape[2:]):
        return None  # a free spatial size: no single figure

    class _Graph(nn.Layer):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner.export_forward(x)

    was = model.training
    model.eval()
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # paddle.flops prints a table regardless
            return int(paddle.flops(_Graph(model), shape, print_detail=False))
    except Exception as exc:  # quantized wrappers and custom layers may not be countable
        log.info("FLOPs not counted: %s", exc)
        return None
    finally:
        model.train(was)


def measure_artifact(model_dir: Path, model, task, cfg, rep, flops: int | None = None) -> dict:
    """Accuracy of the exported model in the target engine, size, parameters and FLOPs (counted on
    ``model`` unless given)."""
    from kits.deploy import load_spec

    from .deployed import EngineModel, score, val_loader

    spec = load_spec(model_dir)
    onnx_files = spec.files("onnx") if "onnx" in spec.models else []
    dataset, loader = val_loader(task, cfg, 1, rep.eval_samples)  # batch 1: images of any size, as deployed
    engine = EngineModel(model_dir, rep.backends[0], model, threads=rep.threads)
    metrics = score(engine, task, cfg, dataset, loader)
    return {"dir": str(model_dir), "precision": spec.models["onnx"]["precision"] if onnx_files else None,
            "size_mb": round(sum(p.stat().st_size for p in onnx_files) / 2 ** 20, 3),
            "params": int(sum(int(p.size) for p in model.parameters())),
            "flops": model_flops(model) if flops is None else flops, "metrics": metrics, "accuracy_engine": rep.backends[0]}


def other_engines(model_dir: Path, model, task, cfg, rep, metric: str) -> dict:
    """``metric`` of the exported model in each of the report's engines but the target one."""
    from .deployed import EngineModel, score, val_loader

    dataset, loader = val_loader(task, cfg, 1, rep.eval_samples)
    return {b: score(EngineModel(model_dir, b, model, threads=rep.threads), task, cfg, dataset, loader).get(metric)
            for b in rep.backends[1:]}


def timing_shapes(spec, batch: dict) -> dict | None:
    """Free-size image inputs at the size of a validation image as deployed (padded like the spec's
    preprocessing), batch 1: the export's example is a small tracing shape, and a segmentation
    network timed at 64x64 says little about its speed at 480x360. None when no input is free."""
    multiple = max([op.get("multiple_of") or 1 for op in spec.preprocess if op.get("type") == "Pad"] or [1])
    shapes = {}
    for info in spec.inputs:
        if info.name in batch and "float" in info.dtype and any(d < 0 for d in info.shape[1:]):
            seen = np.shape(batch[info.name])
            size = [-(-int(d) // multiple) * multiple for d in seen[2:]]
            shapes[info.name] = [1, info.shape[1] if info.shape[1] > 0 else int(seen[1]), *size]
    return shapes or None


def latency_shapes(rep, model_dir: Path, task, cfg) -> dict | None:
    """The input shapes latency is measured at: ``rep.input_shapes``, else :func:`timing_shapes` of
    the first validation sample (None: the export's example shapes)."""
    if rep.input_shapes:
        return rep.input_shapes
    from kits.deploy import load_spec

    from .deployed import val_loader

    _, loader = val_loader(task, cfg, 1, 1)
    return timing_shapes(load_spec(model_dir), next(iter(loader)))


def judge(rec, rows: dict, simulated: float | None, ctx, dirs: dict, shapes: dict | None = None) -> dict:
    """Latency in every engine (alternating rounds, inputs of ``shapes``), accuracy deltas, and which
    model ships."""
    from kits.deploy.bench import compare_latency

    metric = rec.report.metric or ctx.cfg.get_path("trainer.best_metric") or next(iter(rows["baseline"]["metrics"]))
    for row in rows.values():
        row["accuracy"] = row["metrics"].get(metric)
    latency = {b: compare_latency(dirs, b, rec.report.threads, rec.report.rounds, rec.report.iters, shapes=shapes)
               for b in rec.report.backends}
    for name, row in rows.items():
        row["latency_p50_ms"] = {b: latency[b][name].get("p50_ms") for b in latency}
    target = rec.report.backends[0]
    speeds = {b: paired_speedup(latency[b]) for b in latency}
    speedup = speeds[target]["median"]
    faster = speedup is not None and speedup >= rec.report.min_speedup
    drop = _drop(rows)
    accurate = drop is None or drop <= rec.report.max_accuracy_drop
    shipped = "compressed" if (faster and accurate) or not rec.report.keep_faster else "baseline"
    report = {
        "recipe": rec.path, "strategies": rec.describe(), "metric": metric, "target_engine": target,
        "baseline": rows["baseline"], "compressed": rows["compressed"], "latency_rounds": latency,
        "latency_input_shapes": shapes,
        "speedup": {b: speed["median"] for b, speed in speeds.items()},
        "speedup_rounds": speeds,
        "accuracy_drop": drop, "training_graph_accuracy": simulated,
        "deploy_gap": None if simulated is None or rows["compressed"]["accuracy"] is None
        else round(abs(rows["compressed"]["accuracy"] - simulated), 6),
        "shipped": shipped, "info": ctx.info, "notes": list(ctx.notes),
    }
    if not faster:
        report["notes"].append(f"the compressed model is not faster than FP32 in {target} (speedup {speedup}, "
                               f"needed {rec.report.min_speedup}); shipping the {shipped} model")
    if not accurate:
        report["notes"].append(f"the compressed model loses {drop:.4f} {metric} (allowed "
                               f"{rec.report.max_accuracy_drop}); shipping the {shipped} model")
    for note in report["notes"]:
        log.warning(note)
    return report


def paired_speedup(latency: dict) -> dict:
    """The compressed model's speedup over the baseline: median of the same-round ratios."""
    from kits.deploy.bench import same_round_speedup

    return same_round_speedup(latency.get("baseline", {}), latency.get("compressed", {}))


def _drop(rows: dict) -> float | None:
    base, comp = rows["baseline"]["accuracy"], rows["compressed"]["accuracy"]
    return None if base is None or comp is None else round(base - comp, 6)


def write_report(report: dict, out_dir: Path) -> tuple[Path, Path]:
    out = Path(out_dir)
    json_path, md_path = out / "report.json", out / "report.md"
    json_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    md_path.write_text(markdown(report), encoding="utf-8")
    return json_path, md_path


def markdown(report: dict) -> str:
    engines = list(report["latency_rounds"])
    head = ["model", "precision", "params", "FLOPs", "size MB", f"{report['metric']} ({report['target_engine']})"]
    head += [f"{e} p50 ms" for e in engines]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in ("baseline", "compressed"):
        row = report[name]
        cells = [name, str(row["precision"]), f"{row['params']:,}", f"{row['flops']:,}" if row["flops"] else "-",
                 str(row["size_mb"]), _fmt(row["accuracy"])]
        cells += [_fmt(row["latency_p50_ms"].get(e)) for e in engines]
        lines.append("| " + " | ".join(cells) + " |")
    shapes = report.get("latency_input_shapes")
    at = ", ".join(f"{k} {'x'.join(map(str, v))}" for k, v in shapes.items()) if shapes else "the export's example"
    lines += ["", f"Speedup (baseline / compressed p50, median over alternating rounds; inputs: {at}): "
              f"{report['speedup']}"]
    lines += [f"- {e} per round: {', '.join(map(str, r['per_round']))}"
              for e, r in report.get("speedup_rounds", {}).items()]
    lines += [f"Accuracy drop: {_fmt(report['accuracy_drop'])}; training-graph accuracy "
              f"{_fmt(report['training_graph_accuracy'])}, deployed-vs-training gap {_fmt(report['deploy_gap'])}",
              f"Shipped: **{report['shipped']}**"]
    lines += [f"- {n}" for n in report["notes"]]
    return "\n".join(lines) + "\n"


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.4f}" if isinstance(value, float) else str(value)
