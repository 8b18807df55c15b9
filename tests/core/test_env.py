import json
import subprocess
import sys
from pathlib import Path

from kits.core.env import problems

ROOT = Path(__file__).resolve().parents[2]


def test_numpy_24_with_paddle_33_is_flagged_with_fix():
    found = problems({"paddle": "3.3.1", "numpy": "2.4.6"}, python=(3, 11))
    assert len(found) == 1 and "pip install numpy==2.3.5" in found[0]
    assert problems({"paddle": "3.3.1", "numpy": "2.3.5"}, python=(3, 11)) == []


def test_old_opencv_and_python_flagged():
    found = problems({"paddle": "3.3.1", "numpy": "2.3.5", "opencv": "4.6.0.66"}, python=(3, 13))
    assert any("opencv-python 4.6.0.66" in p for p in found)
    assert any("Python 3.13 is not supported" in p for p in found)


def test_env_check_tool_reports_json():
    run = subprocess.run([sys.executable, "tools/env_check.py", "--json"], cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    info = json.loads(run.stdout)
    assert info["packages"]["paddle"] and info["packages"]["numpy"]
    assert set(info["cpu_features"]) >= {"avx2", "avx512_vnni"}
    assert run.returncode == (1 if info["problems"] else 0)
