import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("GLOG_minloglevel", "2")


@pytest.fixture
def shared_dir():
    """The read-only data/weights folder beside the repository; tests skip without it."""
    if not SHARED.is_dir():
        pytest.skip(f"needs {SHARED} (datasets and weights beside the repository)")
    return SHARED
