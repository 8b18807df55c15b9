"""Tool-level errors: one clear line on stderr, exit status 2, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def train(*args, cwd=ROOT):
    return subprocess.run([sys.executable, str(ROOT / "tools/train.py"), *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def assert_clean_error(run, text):
    assert run.returncode == 2, run.stderr
    assert "Traceback" not in run.stderr
    assert text in run.stderr


def test_missing_config_file(tmp_path):
    assert_clean_error(train("-c", tmp_path / "nope.yml"), "config file not found")


def test_bad_yaml_names_the_line(tmp_path):
    cfg = tmp_path / "bad.yml"
    cfg.write_text("kit: detection\ntrainer:\n  epochs: [3\n")
    assert_clean_error(train("-c", cfg), "invalid YAML at line")


@pytest.mark.parametrize("override,text", [("trainer.epochs", "expected KEY=VALUE"),
                                           ("a..b=1", "empty key segment")])
def test_bad_override(tmp_path, override, text):
    cfg = tmp_path / "ok.yml"
    cfg.write_text("kit: detection\n")
    assert_clean_error(train("-c", cfg, "-o", override), text)


def test_unknown_kit_suggests(tmp_path):
    cfg = tmp_path / "k.yml"
    cfg.write_text("kit: detecton\n")
    assert_clean_error(train("-c", cfg), "Did you mean 'detection'?")
