"""Importing ``kits`` points paddle's bundled MKL at its AVX2 kernels on AMD CPUs."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CPUINFO = Path("/proc/cpuinfo")


def mkl_setting(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "MKL_DEBUG_CPU_TYPE"}
    code = "import os, kits; print(os.environ.get('MKL_DEBUG_CPU_TYPE', 'unset'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), **env})
    return out.stdout.strip()


@pytest.mark.skipif(not CPUINFO.is_file(), reason="needs Linux /proc/cpuinfo")
def test_mkl_code_path_follows_the_cpu_vendor():
    amd = "AuthenticAMD" in CPUINFO.read_text(errors="ignore")
    assert mkl_setting() == ("5" if amd else "unset")


def test_a_user_setting_is_kept():
    assert mkl_setting(MKL_DEBUG_CPU_TYPE="2") == "2"
