"""OpenVINO on CPU, reading the exported IR (.xml/.bin)."""

from __future__ import annotations

import numpy as np

from .base import Backend, require


class OpenVINOBackend(Backend):
    """Compiles the IR for its example input shape when only the batch dim is dynamic.

    A vision model exported with a fixed image size still has a dynamic batch dim; compiled with
    it, OpenVINO keeps the shape arithmetic of reshapes (channel shuffles) in the graph and picks
    shape-agnostic kernels. Compiled for the example shape (batch 1, the edge-camera case) all of
    it folds away. The first input of another shape replaces it with one dynamic compile, which
    then serves every shape: one compiled model is alive at a time. Models with other dynamic dims
    (text length) are compiled dynamic from the start.
    """

    name = "openvino"

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        ov = require("openvino", "openvino", "OpenVINO")
        self.core = ov.Core()
        # f32 explicitly: on CPUs with bf16/AMX units OpenVINO would otherwise pick bf16 by default
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.xml = str(self.file(".xml"))
        fixed = all(d is not None and d >= 0 for info in spec.inputs for d in info.shape[1:])
        # the shapes the compiled model is specialised to; None once it is dynamic
        self.static_shapes = tuple(tuple(info.example_shape) for info in spec.inputs) if fixed else None
        self._compile()  # now, so load errors surface here rather than at the first input

    def _compile(self) -> None:
        model = self.core.read_model(self.xml)
        if self.static_shapes is not None:
            model.reshape({port.get_any_name(): list(s) for port, s in zip(model.inputs, self.static_shapes)})
        self.request = self.compiled = None  # release the previous compiled model first
        self.compiled = self.core.compile_model(model, "CPU", self.config)
        self.request = self.compiled.create_infer_request()

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [np.ascontiguousarray(t) for t in tensors]
        if self.static_shapes is not None and tuple(tuple(t.shape) for t in tensors) != self.static_shapes:
            self.static_shapes = None
            self._compile()
        results = self.request.infer(tensors)
        return [np.array(results[port]) for port in self.compiled.outputs]
