"""ONNX Runtime: CPU, CUDA and TensorRT execution providers."""

from __future__ import annotations

import numpy as np

from ..errors import EngineMissingError
from .base import Backend, require

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "gpu": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    devices = tuple(PROVIDERS)

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        ort = require("onnxruntime", "onnx", "ONNX Runtime")
        wanted = PROVIDERS[device][0]
        if wanted not in ort.get_available_providers():
            raise EngineMissingError(f"this onnxruntime has no {wanted} (it has "
                                     f"{', '.join(ort.get_available_providers())}); device '{device}' needs "
                                     "onnxruntime-gpu built with it")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # paddle2onnx graphs carry unused initializers ORT warns about
        if threads:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(self.file(".onnx")), options, providers=PROVIDERS[device])
        self.inputs = [i.name for i in self.session.get_inputs()]

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.inputs, tensors)))
