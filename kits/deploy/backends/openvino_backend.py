"""OpenVINO on CPU, reading the exported IR (.xml/.bin)."""

from __future__ import annotations

import numpy as np

from .base import Backend, require


class OpenVINOBackend(Backend):
    name = "openvino"

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        ov = require("openvino", "openvino", "OpenVINO")
        # f32 explicitly: on CPUs with bf16/AMX units OpenVINO would otherwise pick bf16 by default
        config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = ov.Core().compile_model(str(self.file(".xml")), "CPU", config)
        self.request = self.compiled.create_infer_request()

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        results = self.request.infer([np.ascontiguousarray(t) for t in tensors])
        return [np.array(results[port]) for port in self.compiled.outputs]
