"""Pruning sensitivity: how a metric moves when one channel group at a time is pruned.

Each prunable group (see ``kits.slim.prune``) is pruned alone at every ratio with PaddleSlim's
``prune_var`` on the traced model, ``evaluate_fn`` scores the model, and PaddleSlim's plan
``restore`` puts the original weights (and depthwise ``groups``) back before the next step, so
every measurement starts from the unpruned model. PaddleSlim's own ``FilterPruner.sensitive``
is not used: it fixes the ratios to 0.1..0.9, stores a relative loss instead of the metric, and
on 2.6.0 writes a status pickle to ``sen_file`` on every step (``open(None)`` fails without one).
"""

from __future__ import annotations

import fnmatch
import json
import math
import time
from pathlib import Path
from typing import Callable, Sequence

from kits.core.errors import ConfigError, did_you_mean

from .prune import CRITERIA, PruneSession, _eval_mode

DEFAULT_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.5)


def sensitivity(model, evaluate_fn: Callable, ratios: Sequence[float] = DEFAULT_RATIOS, criterion: str = "l1_norm",
                params: Sequence[str] | None = None, trace_size: int = 64) -> dict:
    """Metric of ``evaluate_fn(model)`` with each prunable group pruned alone at each ratio.

    Args:
        model: a kit model (``input_spec()`` plus ``export_forward`` or ``train_logits``).
        evaluate_fn: ``model -> number`` (higher or lower is better: the table just records it).
        ratios: fractions of a group's output channels to remove, each in (0, 1).
        criterion: ``l1_norm`` or ``fpgm``, which channels go first.
        params: fnmatch patterns over the groups' master parameter names; None = every group.

    Returns ``{'criterion', 'ratios', 'baseline', 'groups': {master: {'channels', 'metrics'}},
    'seconds'}`` where ``metrics[i]`` belongs to ``ratios[i]``. The model is left unpruned.
    """
    ratios = _check_ratios(ratios)
    if criterion not in CRITERIA:
        raise ConfigError(f"unknown criterion '{criterion}'.{did_you_mean(criterion, CRITERIA)} "
                          f"Valid criteria: {', '.join(CRITERIA)}")
    start = time.perf_counter()
    with _eval_mode(model):
        session = PruneSession(model, criterion, skip=(), trace_size=trace_size)
    groups = _select(session, params)
    training = model.training
    baseline = _score(evaluate_fn, model)
    table = {}
    for master in groups:
        metrics = []
        for ratio in ratios:
            plan = session.prune({master: ratio})
            try:
                metrics.append(_score(evaluate_fn, model))
            finally:
                session.restore(plan)
        table[master] = {"channels": session.groups[master], "metrics": metrics}
    model.train() if training else model.eval()
    return {"criterion": criterion, "ratios": ratios, "baseline": baseline, "groups": table,
            "seconds": round(time.perf_counter() - start, 2)}


def _check_ratios(ratios: Sequence[float]) -> list:
    out = []
    for r in ratios:
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
            raise ConfigError(f"sensitivity ratios must be numbers in (0, 1), got {r!r}")
        out.append(float(r))
    if not out:
        raise ConfigError("sensitivity needs at least one ratio")
    return sorted(set(out))


def _select(session: PruneSession, params: Sequence[str] | None) -> list:
    names = list(session.groups)
    if not names:
        raise ConfigError(f"{type(session.model).__name__} has no prunable channel group to analyse")
    if params is None:
        return names
    if isinstance(params, str):
        params = [params]
    chosen = []
    for pattern in params:
        hits = [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if not hits:
            raise ConfigError(f"sensitivity params pattern '{pattern}' matches no prunable group."
                              f"{did_you_mean(pattern, names)} Groups: {', '.join(names[:8])}"
                              f"{' ...' if len(names) > 8 else ''}")
        chosen += [h for h in hits if h not in chosen]
    return chosen


def _score(evaluate_fn: Callable, model) -> float:
    value = evaluate_fn(model)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise TypeError(f"evaluate_fn must return a number, got {type(value).__name__}: {value!r}") from None


# ---- reports ---------------------------------------------------------------------------------------

def write_sensitivity(result: dict, out_dir) -> dict:
    """Write ``sensitivity.json``, ``sensitivity.md`` (table) and ``sensitivity.png`` (metric vs ratio per
    group) into ``out_dir``; returns ``{'json', 'markdown', 'plot'}`` paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "sensitivity.json", "markdown": out / "sensitivity.md", "plot": out / "sensitivity.png"}
    paths["json"].write_text(json.dumps(result, indent=2, allow_nan=True) + "\n", encoding="utf-8")
    paths["markdown"].write_text(markdown_table(result), encoding="utf-8")
    _plot(result, paths["plot"])
    return paths


def _fmt(value: float) -> str:
    return "nan" if math.isnan(value) else f"{value:.4g}"


def markdown_table(result: dict) -> str:
    ratios = result["ratios"]
    head = "| group | channels | " + " | ".join(f"ratio {r:g}" for r in ratios) + " |"
    rule = "|---|---:|" + "---:|" * len(ratios)
    rows = [f"| `{name}` | {g['channels']} | " + " | ".join(_fmt(m) for m in g["metrics"]) + " |"
            for name, g in result["groups"].items()]
    title = (f"# Pruning sensitivity ({result['criterion']})\n\n"
             f"Metric of the unpruned model: {_fmt(result['baseline'])}. Each row prunes one group alone.\n\n")
    return title + "\n".join([head, rule, *rows]) + "\n"


def _plot(result: dict, path: Path) -> None:
    # Figure + Agg canvas directly: no pyplot, so no global backend switch for the host process
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    xs = [0.0] + list(result["ratios"])
    fig = Figure(figsize=(8, 5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    for i, (name, group) in enumerate(result["groups"].items()):
        style = ("-", "--", ":", "-.")[i // 10 % 4]  # the colour cycle repeats after 10 lines
        ax.plot(xs, [result["baseline"]] + group["metrics"], style, marker="o", markersize=3, linewidth=1, label=name)
    ax.set_xlabel("pruned ratio of the group's channels")
    ax.set_ylabel("metric")
    ax.set_title(f"Pruning sensitivity ({result['criterion']}), one group at a time")
    ax.grid(True, alpha=0.3)
    if len(result["groups"]) <= 40:
        ax.legend(fontsize=6, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1 + len(result["groups"]) // 20)
    fig.savefig(path, bbox_inches="tight")
