"""Importing ``kits`` points paddle's bundled MKL at its AVX2 kernels on AMD CPUs and turns off eager strided views."""

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


def stride_flag(**env) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "FLAGS_use_stride_kernel"}
    code = "import kits, paddle; print(paddle.get_flags(['FLAGS_use_stride_kernel'])['FLAGS_use_stride_kernel'])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), "GLOG_minloglevel": "2", **env})
    return out.stdout.strip().splitlines()[-1]


def test_eager_views_are_contiguous_unless_the_user_says_otherwise():
    assert stride_flag() == "False"
    assert stride_flag(FLAGS_use_stride_kernel="1") == "True"


def test_views_are_turned_off_when_paddle_was_imported_first():
    clean = {k: v for k, v in os.environ.items() if k != "FLAGS_use_stride_kernel"}
    code = ("import paddle; before = paddle.get_flags(['FLAGS_use_stride_kernel'])['FLAGS_use_stride_kernel']; "
            "import kits; print(before, paddle.get_flags(['FLAGS_use_stride_kernel'])['FLAGS_use_stride_kernel'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT,
                         env={**clean, "PYTHONPATH": str(ROOT), "GLOG_minloglevel": "2"})
    assert out.stdout.strip().splitlines()[-1] == "True False"
