"""Every shipped segmentation config validates, builds and runs one batch (tools/train.py --dry-run)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kits.core.config import load_config
from kits.segmentation.task import SegmentationTask

ROOT = Path(__file__).resolve().parents[2]
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
CONFIGS = sorted((ROOT / "configs" / "segmentation").glob("*.yml"))


def test_configs_are_shipped():
    names = {p.name for p in CONFIGS}
    assert {"espnet_camvid.yml", "espnet_cityscapes_camvid.yml", "litesegefflite0_camvid.yml"} <= names


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_config_validates(path):
    cfg = load_config(path)
    assert cfg["kit"] == "segmentation"
    SegmentationTask().validate(cfg)


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_dry_run(path, tmp_path):
    if not (SHARED / "datasets" / "camvid").is_dir():
        pytest.skip(f"needs {SHARED / 'datasets' / 'camvid'} (CamVid is research-only and not shipped)")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "tools/train.py", "-c", str(path), "--dry-run", "-o",
                           "trainer.batch_size=1", f"trainer.output_dir={tmp_path}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert report["train_samples"] == 367 and report["val_samples"] == 101
    assert 0 < report["first_batch_losses"]["loss"] < 50


def test_validation_names_the_source_of_a_bad_key():
    from kits.core.errors import ConfigError

    path = ROOT / "configs" / "segmentation" / "espnet_camvid.yml"
    with pytest.raises(ConfigError, match=r"^-o model.test_config.flips=true: unknown key .*Did you mean 'flip'"):
        SegmentationTask().validate(load_config(path, ["model.test_config.flips=true"]))
    with pytest.raises(ConfigError, match="'val_dataset.mode' is set from the section name"):
        SegmentationTask().validate(load_config(path, ["val_dataset.mode=train"]))
    with pytest.raises(ConfigError, match="unknown key 'train_dataset.label_mapping'.*'label_map'"):
        SegmentationTask().validate(load_config(path, ["train_dataset.label_mapping={1: 2}"]))
    with pytest.raises(ConfigError, match="Did you mean 'OhemCrossEntropyLoss'"):
        SegmentationTask().validate(load_config(path, ["model.loss.type=OhemCrossEntropy"]))
