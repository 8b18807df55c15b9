"""Sensitivity-guided pruning ratios (kits.slim.allocate) and Prune's sensitivity mode on a tiny real model."""

import importlib
import json

import numpy as np
import pytest

from kits.core.errors import ConfigError
from kits.slim import allocate

TABLE = {"ratios": [0.25, 0.5, 0.75], "baseline": 0.8,
         "groups": {"a": [0.8, 0.78, 0.70],     # robust
                    "b": [0.7, 0.5, 0.3],       # fragile
                    "c": [0.79, 0.81, 0.6]}}    # noisy: better at 0.5 than at 0.25


def test_drop_curve_never_shrinks_or_goes_negative():
    assert allocate.drop_curve(0.8, [0.81, 0.7, 0.75]) == pytest.approx([0.0, 0.0, 0.1, 0.1])


def test_ratio_for_loss_interpolates_and_caps():
    drops = allocate.drop_curve(0.8, TABLE["groups"]["a"])  # 0, 0, 0.02, 0.10
    assert allocate.ratio_for_loss(TABLE["ratios"], drops, 0.01) == pytest.approx(0.375)
    assert allocate.ratio_for_loss(TABLE["ratios"], drops, 0.06) == pytest.approx(0.625)
    assert allocate.ratio_for_loss(TABLE["ratios"], drops, 0.5) == 0.75  # never beyond the measured ratios
    fragile = allocate.drop_curve(0.8, TABLE["groups"]["b"])  # 0, 0.1, ...
    assert allocate.ratio_for_loss(TABLE["ratios"], fragile, 0.05) == pytest.approx(0.125)


def test_ratios_by_loss_prunes_robust_groups_more_and_skips_unlisted():
    ratios = allocate.ratios_by_loss(TABLE, 0.05, ["a", "b", "c", "d"])
    assert ratios["a"] > ratios["c"] > ratios["b"] > 0
    assert "d" not in ratios
    # the noisy group's better score at 0.5 does not count: its drop stays 0.01 up to 0.5
    assert ratios["c"] == pytest.approx(0.5 + 0.25 * (0.05 - 0.01) / (0.2 - 0.01))


def test_search_loss_meets_a_flops_target():
    shares = {"a": 0.4, "b": 0.4, "c": 0.2}   # FLOPs removed per unit ratio, a linear stand-in for paddle.flops

    def reduction(ratios):
        return sum(shares[g] * r for g, r in ratios.items())

    ratios, loss, trace = allocate.search_loss(TABLE, ["a", "b", "c"], reduction, 0.3, 0.005)
    assert abs(reduction(ratios) - 0.3) <= 0.005 and 0 < loss < 0.5
    assert ratios["a"] > ratios["b"] and len(trace) > 2
    with pytest.raises(ConfigError, match="out of reach with the sensitivity table: its 3 groups .* remove 75.0%"):
        allocate.search_loss(TABLE, ["a", "b", "c"], reduction, 0.8, 0.005)
    with pytest.raises(ConfigError, match="lists none of the model's prunable groups"):
        allocate.search_loss(TABLE, ["x", "y"], reduction, 0.3, 0.005)


def _write(tmp_path, criterion="l1_norm", **changes):
    table = {"criterion": criterion, "ratios": TABLE["ratios"], "baseline": TABLE["baseline"],
             "groups": {n: {"channels": 8, "metrics": m} for n, m in TABLE["groups"].items()}, **changes}
    path = tmp_path / "sensitivity.json"
    path.write_text(json.dumps(table))
    return path


def test_load_table_errors(tmp_path):
    with pytest.raises(ConfigError, match="no file .*--sensitivity --criterion fpgm"):
        allocate.load_table(tmp_path / "missing.json", "fpgm")
    with pytest.raises(ConfigError, match="measured with criterion 'l1_norm', the recipe prunes with 'fpgm'"):
        allocate.load_table(_write(tmp_path), "fpgm")
    with pytest.raises(ConfigError, match="group 'a' .* has 1 metrics for 3 ratios"):
        allocate.load_table(_write(tmp_path, groups={"a": {"metrics": [0.5]}}), "l1_norm")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="is not a sensitivity table"):
        allocate.load_table(tmp_path / "bad.json", "l1_norm")
    assert allocate.load_table(_write(tmp_path), "l1_norm")["groups"]["b"] == [0.7, 0.5, 0.3]


paddle = pytest.importorskip("paddle")
pytest.importorskip("paddleslim")


def test_prune_with_sensitivity_table(tmp_path):
    from kits.segmentation.registry import MODELS
    from kits.slim.base import STRATEGIES, SlimContext
    from kits.slim.sensitivity import sensitivity, write_sensitivity

    importlib.import_module("kits.segmentation.models")
    paddle.seed(0)
    model = MODELS.build({"type": "ESPNet", "num_classes": 3, "p": 1, "q": 1})
    model.eval()
    image = paddle.to_tensor(np.random.default_rng(3).normal(size=(2, 3, 32, 32)).astype(np.float32))
    with paddle.no_grad():
        reference = model.export_forward(image).argmax(1)

    def agreement(m):  # share of pixels whose class matches the unpruned model
        with paddle.no_grad():
            return float((m.export_forward(image).argmax(1) == reference).astype("float32").mean())

    result = sensitivity(model, agreement, ratios=(0.25, 0.5, 0.75), params=["encoder.*"])
    path = write_sensitivity(result, tmp_path)["json"]
    ctx = SlimContext(cfg=None, task=None, model=model, out_dir=None)
    with pytest.raises(ConfigError, match="no file .*--sensitivity --criterion l1_norm"):
        STRATEGIES.build({"type": "Prune", "flops_reduction": 0.15, "sensitivity": str(tmp_path / "no.json")}).apply(ctx)
    STRATEGIES.build({"type": "Prune", "flops_reduction": 0.15, "sensitivity": str(path)}).apply(ctx)
    info = ctx.info["prune"]
    assert abs(info["flops_reduction"] - 0.15) <= 0.02
    assert set(info["ratios"]) <= set(result["groups"])
    unlisted = [m for m in info["channels"] if m not in result["groups"]]
    assert unlisted and all(info["channels"][m][0] == info["channels"][m][1] for m in unlisted)  # stay whole
    assert info["search"][0]["flops_reduction"] >= 0.15 and "tolerated_drop" in info["search"][-1]
    # a group whose drop is no larger than another's at every ratio is pruned at least as far
    curves = {g: allocate.drop_curve(result["baseline"], v["metrics"]) for g, v in result["groups"].items()}
    pairs = [(g, h) for g in curves for h in curves if g != h and curves[g] != curves[h]
             and all(x <= y for x, y in zip(curves[g], curves[h]))]
    assert pairs and all(info["ratios"].get(g, 0) >= info["ratios"].get(h, 0) - 1e-4 for g, h in pairs)
    assert len(set(info["ratios"].values())) > 1  # not one uniform ratio


def test_prune_sensitivity_recipe_errors(tmp_path):
    from kits.slim.base import STRATEGIES

    with pytest.raises(ConfigError, match="Prune.sensitivity is the path of a sensitivity.json used with "
                                          "flops_reduction; got .* with ratio"):
        STRATEGIES.build({"type": "Prune", "ratio": 0.3, "sensitivity": str(_write(tmp_path))})
    with pytest.raises(ConfigError, match="Prune.sensitivity is the path"):
        STRATEGIES.build({"type": "Prune", "flops_reduction": 0.3, "sensitivity": {"samples": 8}})
