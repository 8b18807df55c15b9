"""ncnn on CPU. ncnn has no batch axis: samples run one by one and are stacked again."""

from __future__ import annotations

import numpy as np

from ..errors import DeployError, InputError
from .base import Backend, require


class NcnnBackend(Backend):
    name = "ncnn"

    def __init__(self, spec, fmt, threads=None, device="cpu"):
        super().__init__(spec, fmt, threads, device)
        self.ncnn = ncnn = require("ncnn", "ncnn", "ncnn")
        entry = spec.models[fmt]
        self.blobs_in, self.blobs_out = entry["inputs"], entry["outputs"]
        self.shapes = [list(s) for s in entry["input_shapes"]]
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.num_threads = threads or 1
        opt.use_fp16_packed = opt.use_fp16_storage = opt.use_fp16_arithmetic = False  # fp32 parity
        if self.net.load_param(str(self.file(".param"))) or self.net.load_model(str(self.file(".bin"))):
            raise DeployError(f"ncnn could not load {self.file('.param')}")

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        for array, shape in zip(tensors, self.shapes):
            if list(array.shape[1:]) != shape[1:]:
                raise InputError(f"the ncnn model was converted for inputs of shape {shape[1:]} per sample, "
                                 f"got {list(array.shape[1:])}")
        per_sample = []
        for b in range(tensors[0].shape[0]):
            extractor = self.net.create_extractor()
            # ncnn.Mat borrows the numpy buffer: keep the arrays alive until extraction is done
            arrays = [np.ascontiguousarray(t[b], dtype=np.float32) for t in tensors]
            mats = [self.ncnn.Mat(a) for a in arrays]
            for blob, mat in zip(self.blobs_in, mats):
                extractor.input(blob, mat)
            outs = []
            for blob in self.blobs_out:
                ret, mat = extractor.extract(blob)
                if ret != 0:
                    raise DeployError(f"ncnn failed to compute blob '{blob}' (code {ret})")
                outs.append(np.array(mat))
            per_sample.append(outs)
        return [np.stack([s[i] for s in per_sample]) for i in range(len(self.blobs_out))]
