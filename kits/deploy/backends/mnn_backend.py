"""MNN on CPU through its Module API (fp32 'high' precision)."""

from __future__ import annotations

import numpy as np

from .base import Backend, quiet_fds, require


class MNNBackend(Backend):
    name = "mnn"

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        with quiet_fds():  # MNN prints a CPU-feature banner on import
            self.mnn = mnn = require("MNN", "mnn", "MNN")
            runtime = mnn.nn.create_runtime_manager(({"backend": "CPU", "numThread": threads or 1,
                                                      "precision": "high"},))
            self.module = mnn.nn.load_module_from_file(str(self.file(".mnn")), [i.name for i in spec.inputs],
                                                       list(spec.outputs), runtime_manager=runtime)
        expr = mnn.expr
        # MNN narrows int64 inputs to int32; feed what the converted graph declares
        self.types = [(np.int32, expr.int) if v.dtype == expr.int else (np.float32, expr.float)
                      for v in self.module.get_info()["inputs"]]

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        expr = self.mnn.expr
        feeds = []
        for array, (np_type, mnn_type) in zip(tensors, self.types):
            array = np.ascontiguousarray(array, dtype=np_type)
            feeds.append(expr.const(array, list(array.shape), expr.NCHW, mnn_type))
        outputs = self.module.forward(feeds)
        return [np.array(expr.convert(out, expr.NCHW).read()) for out in outputs]
