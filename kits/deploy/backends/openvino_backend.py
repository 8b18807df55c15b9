"""OpenVINO on CPU, reading the exported IR (.xml/.bin)."""

from __future__ import annotations

import numpy as np

from .base import Backend, require

# distinct batch sizes compiled with static shapes before falling back to one dynamic compile
MAX_STATIC_SHAPES = 4


class OpenVINOBackend(Backend):
    """Compiles the IR for the exact input shapes it is given when only the batch dim is dynamic.

    A vision model exported with a fixed image size still has a dynamic batch dim; compiled with
    it, OpenVINO keeps the shape arithmetic of reshapes (channel shuffles) in the graph and picks
    shape-agnostic kernels. Compiling once per batch size (a few at most) folds all of it away.
    Models with other dynamic dims (text length) are compiled once, dynamic.
    """

    name = "openvino"

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        self.ov = require("openvino", "openvino", "OpenVINO")
        self.core = self.ov.Core()
        # f32 explicitly: on CPUs with bf16/AMX units OpenVINO would otherwise pick bf16 by default
        self.config = {"INFERENCE_PRECISION_HINT": "f32"}
        if threads:
            self.config["INFERENCE_NUM_THREADS"] = int(threads)
        self.model = self.core.read_model(str(self.file(".xml")))
        self.specialize = all(d is not None and d >= 0 for info in spec.inputs for d in info.shape[1:])
        self._compiled: dict[tuple, tuple] = {}
        self._dynamic = None
        first = tuple(tuple(info.example_shape) for info in spec.inputs) if self.specialize else None
        self._compiled_for(first)  # compile now so load errors surface here, not at the first image

    def _compiled_for(self, shapes: tuple | None):
        if shapes is None or (shapes not in self._compiled and len(self._compiled) >= MAX_STATIC_SHAPES):
            if self._dynamic is None:
                self._dynamic = self._compile(self.model)
            return self._dynamic
        if shapes not in self._compiled:
            model = self.model.clone()
            model.reshape({port.get_any_name(): list(s) for port, s in zip(model.inputs, shapes)})
            self._compiled[shapes] = self._compile(model)
        return self._compiled[shapes]

    def _compile(self, model) -> tuple:
        compiled = self.core.compile_model(model, "CPU", self.config)
        return compiled, compiled.create_infer_request()

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [np.ascontiguousarray(t) for t in tensors]
        shapes = tuple(tuple(t.shape) for t in tensors) if self.specialize else None
        compiled, request = self._compiled_for(shapes)
        results = request.infer(tensors)
        return [np.array(results[port]) for port in compiled.outputs]
