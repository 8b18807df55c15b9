"""Per-group pruning ratios from a sensitivity table: prune most where the metric suffers least.

A sensitivity table (``kits.slim.sensitivity``, ``tools/compress.py --sensitivity``) holds the
metric with each channel group pruned alone at a few ratios. For a tolerated metric drop ``loss``,
each group takes the largest ratio whose measured drop stays within ``loss`` (linear between the
measured points; a drop is never taken as shrinking at a larger ratio, so noise cannot raise a
ratio). A FLOPs target is then met by bisection over ``loss``, the method of PaddleSlim's
sensitive pruning (``get_ratios_by_loss``), with the table our own format. Groups the table does
not list stay whole. Metrics are taken as higher-is-better (mAP, mIoU, accuracy, F1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable, Mapping

from kits.core.errors import ConfigError

SEARCH_STEPS = 20


def load_table(path, criterion: str) -> dict:
    """Read ``sensitivity.json``; it must have been measured with the pruning ``criterion``."""
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"Prune.sensitivity: no file '{file}'. Write one with python tools/compress.py -c CONFIG "
                          f"-o weights=FILE --sensitivity --criterion {criterion} (it lands in "
                          f"OUTPUT_DIR/sensitivity/sensitivity.json)")
    try:
        table = json.loads(file.read_text(encoding="utf-8"))
        groups, ratios, baseline = table["groups"], table["ratios"], float(table["baseline"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"Prune.sensitivity: '{file}' is not a sensitivity table ({type(exc).__name__}: {exc})")
    if table.get("criterion") != criterion:
        raise ConfigError(f"Prune.sensitivity: '{file}' was measured with criterion '{table.get('criterion')}', "
                          f"the recipe prunes with '{criterion}'; they choose different channels")
    for name, group in groups.items():
        if len(group.get("metrics", ())) != len(ratios):
            raise ConfigError(f"Prune.sensitivity: group '{name}' in '{file}' has {len(group.get('metrics', ()))} "
                              f"metrics for {len(ratios)} ratios")
    return {"ratios": [float(r) for r in ratios], "baseline": baseline,
            "groups": {n: [float(m) for m in g["metrics"]] for n, g in groups.items()}}


def drop_curve(baseline: float, metrics: list) -> list:
    """Metric drops at ratio 0 and each measured ratio, non-decreasing and never negative."""
    drops, worst = [0.0], 0.0
    for m in metrics:
        worst = max(worst, baseline - m)
        drops.append(worst)
    return drops


def ratio_for_loss(ratios: list, drops: list, loss: float) -> float:
    """Largest ratio whose interpolated drop is within ``loss`` (``drops[0]`` belongs to ratio 0)."""
    xs = [0.0] + list(ratios)
    for i in range(1, len(xs)):
        if drops[i] > loss:
            share = (loss - drops[i - 1]) / (drops[i] - drops[i - 1])
            return xs[i - 1] + share * (xs[i] - xs[i - 1])
    return xs[-1]


def ratios_by_loss(table: dict, loss: float, groups) -> dict:
    """``{group: ratio}`` for the groups of ``groups`` that the table lists (those it omits stay whole)."""
    out = {}
    for name in groups:
        if name in table["groups"]:
            drops = drop_curve(table["baseline"], table["groups"][name])
            ratio = ratio_for_loss(table["ratios"], drops, loss)
            if ratio > 0:
                out[name] = ratio
    return out


def search_loss(table: dict, groups, reduction: Callable[[Mapping[str, float]], float], target: float,
                tolerance: float) -> tuple[dict, float, list]:
    """Smallest tolerated drop whose ratios remove ``target`` of the FLOPs (``reduction(ratios)``).

    Returns the ratios, the tolerated drop and the search trace ``[(loss, reduction), ...]``.
    """
    usable = [g for g in groups if g in table["groups"]]
    if not usable:
        raise ConfigError(f"Prune.sensitivity: the table lists none of the model's prunable groups "
                          f"({', '.join(list(groups)[:4])} ...): measured on another model?")
    top_loss = max(drop_curve(table["baseline"], table["groups"][g])[-1] for g in usable) + 1e-9
    top = reduction(ratios_by_loss(table, top_loss, usable))
    if top + tolerance < target:
        raise ConfigError(f"Prune.flops_reduction {target} is out of reach with the sensitivity table: its "
                          f"{len(usable)} groups at their largest measured ratio ({table['ratios'][-1]}) remove "
                          f"{100 * top:.1f}% of the FLOPs. Measure larger ratios (--ratios ... 0.7 0.8) or more "
                          f"groups.")
    low, high, trace = 0.0, top_loss, [(round(top_loss, 5), round(top, 4))]
    best = (top_loss, top)
    for _ in range(SEARCH_STEPS):
        mid = (low + high) / 2
        got = reduction(ratios_by_loss(table, mid, usable))
        trace.append((round(mid, 5), round(got, 4)))
        # the closest reduction that is not short of the target by more than the tolerance
        if got >= target - tolerance and abs(got - target) < abs(best[1] - target):
            best = (mid, got)
        if abs(got - target) <= tolerance:
            break
        low, high = (mid, high) if got < target else (low, mid)
    return ratios_by_loss(table, best[0], usable), best[0], trace
