"""Recipes validate like every config: unknown keys and types are clear errors naming the file."""

from pathlib import Path

import pytest

from kits.core.errors import ConfigError
from kits.slim import STRATEGIES, load_recipe

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted((ROOT / "configs/slim").glob("*.yml"))


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_every_shipped_recipe_loads(path):
    recipe = load_recipe(path)
    assert recipe.strategies and recipe.name == path.stem
    assert all(type(s).__name__ in STRATEGIES for s in recipe.strategies)


def write(tmp_path, text: str) -> Path:
    path = tmp_path / "recipe.yml"
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, message", [
    ("strategies: [{type: PTQQ}]", "Did you mean 'PTQ'"),
    ("strategies: [{type: PTQ, calib_sample: 8}]", "Did you mean 'calib_samples'"),
    ("strategies: [{type: PTQ, algo: mes}]", "Did you mean 'mse'"),
    ("strategies: [{type: PTQ, quantizer: nncf, algo: entropy}]", "'entropy' is not offered by quantizer nncf"),
    ("strategies: [{type: PTQ}]\nreprot: {}", "Did you mean 'report'"),
    ("strategies: []", "non-empty 'strategies'"),
    ("strategies: [{type: PTQ}]\nreport: {backends: [onnxruntme]}", "Did you mean 'onnxruntime'"),
    ("strategies: [{type: PTQ}]\nreport: {threads: two}", "'report.threads' must be int"),
    ("strategies: [{type: PTQ}, {type: Distill, pairs: [{student: head}]}]", "must come before PTQ"),
    ("strategies: [{type: Distill, pairs: [{student: head, loss: l2}]}]", "Did you mean 'kl'"),
    ("strategies: [{type: Distill, pairs: [{studnet: head}]}]", "at least 'student'"),
])
def test_bad_recipes_name_the_problem(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_recipe(path)
    assert message in str(err.value)
    assert str(path) in str(err.value) or "PTQ" in str(err.value) or "Distill" in str(err.value)


def test_finetune_overrides_are_flattened(tmp_path):
    path = write(tmp_path, "strategies: [{type: PTQ}]\nfinetune: {trainer: {epochs: 3}, optimizer.lr: 1.0e-4}")
    recipe = load_recipe(path, ["report.threads=1"])
    assert recipe.finetune == {"trainer.epochs": 3, "optimizer.lr": 1e-4}
    assert recipe.report.threads == 1


def test_speedup_is_the_median_of_same_round_ratios():
    from kits.slim.report import paired_speedup

    # the host is slow in rounds 2 and 3 and for the last compressed run: the ratio of the two
    # models' medians (10.4 / 10.6 = 0.98) mixes slow and fast runs, the same-round ratios do not
    latency = {"baseline": {"rounds_p50_ms": [10.0, 14.0, 14.0, 10.0, 10.4]},
               "compressed": {"rounds_p50_ms": [8.0, 10.8, 10.6, 8.2, 11.0]}}
    out = paired_speedup(latency)
    assert out["per_round"] == [1.25, 1.296, 1.321, 1.22, 0.945]
    assert out["median"] == 1.25
    assert paired_speedup({"baseline": {"error": "failed"}, "compressed": {"rounds_p50_ms": [1.0]}}) == \
        {"median": None, "per_round": []}
