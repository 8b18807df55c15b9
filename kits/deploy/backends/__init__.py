"""The engines the runtime can drive, imported only when chosen (never paddle unless asked for)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass

from ..errors import DeployError, EngineMissingError, did_you_mean


@dataclass(frozen=True)
class BackendInfo:
    module: str                  # module in this package holding the backend class
    cls: str
    package: str                 # the engine's import name
    extra: str                   # the pip extra that installs the engine
    formats: tuple[str, ...]     # exported formats it runs, preferred first


BACKENDS = {
    "paddle": BackendInfo("paddle_backend", "PaddleBackend", "paddle", "train", ("paddle", "paddle-legacy")),
    "onnxruntime": BackendInfo("onnxruntime_backend", "OnnxRuntimeBackend", "onnxruntime", "onnx", ("onnx",)),
    "openvino": BackendInfo("openvino_backend", "OpenVINOBackend", "openvino", "openvino", ("openvino",)),
    "mnn": BackendInfo("mnn_backend", "MNNBackend", "MNN", "mnn", ("mnn",)),
    "ncnn": BackendInfo("ncnn_backend", "NcnnBackend", "ncnn", "ncnn", ("ncnn",)),
}


def backend_info(name: str) -> BackendInfo:
    if name not in BACKENDS:
        raise DeployError(f"unknown backend '{name}'.{did_you_mean(name, BACKENDS)} "
                          f"Valid backends: {', '.join(BACKENDS)}")
    return BACKENDS[name]


def installed(name: str) -> bool:
    """Whether the engine of backend ``name`` can be imported (checked without importing it)."""
    package = backend_info(name).package
    if package in sys.modules:  # None there means an import of it was blocked
        return sys.modules[package] is not None
    return importlib.util.find_spec(package) is not None


def create_backend(name: str, spec, fmt: str, threads=None, device: str = "cpu", options: dict | None = None):
    info = backend_info(name)
    if not installed(name):
        raise EngineMissingError(f"backend '{name}' needs the {info.package} engine, which is not installed; "
                                 f"install it with `pip install -e .[{info.extra}]`")
    module = importlib.import_module(f".{info.module}", __name__)
    cls = getattr(module, info.cls)
    cls.check_options(options or {})
    return cls(spec, fmt, threads=threads, device=device, **(options or {}))
