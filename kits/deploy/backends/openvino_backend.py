"""OpenVINO on CPU, reading the exported IR (.xml/.bin)."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from .base import Backend, require

MAX_COMPILED = 4  # static compiles kept alive at once (least recently used dropped first)


class OpenVINOBackend(Backend):
    """Compiles the IR for its input shapes (static) or once with dynamic shapes.

    A fixed-size FP32 image model is compiled for its example shape (batch 1, the edge-camera
    case): OpenVINO then folds the shape arithmetic of reshapes (channel shuffles) away and picks
    shape-specific kernels; the first input of another shape replaces it with one dynamic compile,
    which then serves every shape. INT8 image models are compiled for each input shape they see
    (the last ``MAX_COMPILED`` kept; 0.2-0.5 s per new shape for ESPNet): OpenVINO 2026.4's INT8
    transformations miscompute some graphs compiled with dynamic spatial dims (ESPNet after
    quantization-aware training: 42% of pixels agree with ONNX Runtime, 99.8% static). Free-size
    FP32 image models and models with integer inputs (text) are compiled dynamic from the start.
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
        images = all("float" in info.dtype for info in spec.inputs)
        fixed = all(d is not None and d >= 0 for info in spec.inputs for d in info.shape[1:])
        self.int8 = spec.models.get(fmt, {}).get("precision") == "int8"
        self.per_shape = images and (fixed or self.int8)
        self._compiled: OrderedDict = OrderedDict()  # input shapes (None: dynamic) -> (compiled, request)
        # now, so load errors surface here rather than at the first input
        self._select(tuple(tuple(info.example_shape) for info in spec.inputs) if self.per_shape else None)

    @property
    def static_shapes(self):
        """The input shapes of the compiled model in use; None when it is compiled dynamic."""
        return next(reversed(self._compiled))

    def _select(self, shapes) -> None:
        if shapes in self._compiled:
            self._compiled.move_to_end(shapes)
            return
        if shapes is not None and self._compiled and not self.int8:
            self.per_shape, shapes = False, None  # another shape: one dynamic compile serves them all
            self._compiled.clear()
        model = self.core.read_model(self.xml)
        if shapes is not None:
            model.reshape({port.get_any_name(): list(s) for port, s in zip(model.inputs, shapes)})
        if len(self._compiled) >= MAX_COMPILED:
            self._compiled.popitem(last=False)  # release before compiling the next
        compiled = self.core.compile_model(model, "CPU", self.config)
        self._compiled[shapes] = (compiled, compiled.create_infer_request())

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        tensors = [np.ascontiguousarray(t) for t in tensors]
        if self.per_shape:
            self._select(tuple(tuple(t.shape) for t in tensors))
        compiled, request = self._compiled[self.static_shapes]
        results = request.infer(tensors)
        return [np.array(results[port]) for port in compiled.outputs]
