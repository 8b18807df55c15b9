"""Environment report: library versions, CPU features, GPU, and known-bad combinations with fixes."""

from __future__ import annotations

import importlib.metadata as md
import platform
import sys
from pathlib import Path

PACKAGES = {  # distribution name -> label
    "paddlepaddle": "paddle", "paddlepaddle-gpu": "paddle-gpu", "paddleslim": "paddleslim",
    "numpy": "numpy", "opencv-python-headless": "opencv-headless", "opencv-python": "opencv",
    "onnxruntime": "onnxruntime", "openvino": "openvino", "paddle2onnx": "paddle2onnx",
    "MNN": "mnn", "ncnn": "ncnn", "visualdl": "visualdl", "tokenizers": "tokenizers",
}
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")


def versions() -> dict[str, str | None]:
    found = {}
    for dist, label in PACKAGES.items():
        try:
            found[label] = md.version(dist)
        except md.PackageNotFoundError:
            found[label] = None
    return found


def _major_minor(text: str | None) -> tuple[int, int] | None:
    if not text:
        return None
    parts = text.split(".")
    try:
        return int(parts[0]), int(parts[1])
    except (IndexError, ValueError):
        return None


def problems(v: dict[str, str | None], python: tuple[int, int] = sys.version_info[:2]) -> list[str]:
    """Known-bad combinations, each with the command that fixes it."""
    found = []
    paddle = _major_minor(v.get("paddle") or v.get("paddle-gpu"))
    numpy = _major_minor(v.get("numpy"))
    if paddle and paddle[0] >= 3 and numpy and numpy >= (2, 4):
        found.append(f"numpy {v['numpy']} with paddle {v.get('paddle') or v.get('paddle-gpu')}: paddle.flops "
                     "and parts of paddleslim fail on numpy 2.4. Fix: pip install numpy==2.3.5")
    if v.get("opencv") and numpy and numpy[0] >= 2 and (_major_minor(v["opencv"]) or (0, 0)) < (4, 10):
        found.append(f"opencv-python {v['opencv']} was built for numpy 1 and shadows opencv-python-headless. "
                     "Fix: pip uninstall -y opencv-python && pip install --force-reinstall opencv-python-headless==4.14.0.94")
    if not (3, 10) <= python <= (3, 12):
        found.append(f"Python {python[0]}.{python[1]} is not supported; use Python 3.10-3.12 (3.11 is tested)")
    if v.get("paddleslim") and not paddle:
        found.append("paddleslim is installed without paddlepaddle. Fix: pip install -e .[train]")
    return found


def cpu_features() -> dict[str, bool]:
    text = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").is_file() else ""
    flags = set()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    return {f: f in flags for f in CPU_FLAGS}


def gpu_info() -> str:
    try:
        import paddle
    except ImportError:
        return "unknown (paddle not installed)"
    if not paddle.is_compiled_with_cuda():
        return "none (CPU build of paddle)"
    count = paddle.device.cuda.device_count()
    if not count:
        return "none visible (CUDA build of paddle)"
    return ", ".join(paddle.device.cuda.get_device_name(i) for i in range(count))


def report() -> dict:
    import os

    v = versions()
    return {"python": platform.python_version(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
            "cpu_features": cpu_features(), "gpu": gpu_info(), "packages": v, "problems": problems(v)}
