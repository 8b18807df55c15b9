"""Paddle Inference: CPU (optionally oneDNN), GPU, and TensorRT subgraphs when paddle has them."""

from __future__ import annotations

import os
import warnings

import numpy as np

from ..errors import DeployError
from .base import Backend, require


def cpu_config(model, params, threads: int = 1, onednn: bool = False):
    """A Paddle Inference CPU config for ``model`` (.json or .pdmodel) and ``params`` (.pdiparams)."""
    from paddle import inference

    config = inference.Config(str(model), str(params))
    config.disable_gpu()
    config.set_cpu_math_library_num_threads(threads)
    if onednn:
        config.enable_mkldnn()
    else:
        config.disable_mkldnn()
    config.disable_glog_info()
    return config


def run_predictor(predictor, tensors: list[np.ndarray]) -> list[np.ndarray]:
    """Feed ``tensors`` to the predictor's inputs in order; its outputs in order."""
    for name, array in zip(predictor.get_input_names(), tensors):
        handle = predictor.get_input_handle(name)
        handle.reshape(array.shape)
        handle.copy_from_cpu(np.ascontiguousarray(array))
    predictor.run()
    return [predictor.get_output_handle(name).copy_to_cpu() for name in predictor.get_output_names()]


class PaddleBackend(Backend):
    name = "paddle"
    devices = ("cpu", "gpu", "tensorrt")
    option_names = ("onednn",)

    def __init__(self, spec, fmt, threads=None, device="cpu", onednn: bool | None = None):
        super().__init__(spec, fmt, threads, device)
        if onednn is None:  # export recorded whether this graph runs correctly with oneDNN
            onednn = bool(spec.models[fmt].get("runtime_options", {}).get("onednn", False))
        os.environ.setdefault("GLOG_minloglevel", "2")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "No ccache found", distutils notices
            require("paddle", "train", "PaddlePaddle")
        import paddle
        from paddle import inference

        model, params = self.file(".json", ".pdmodel"), self.file(".pdiparams")
        if device == "cpu":
            config = cpu_config(model, params, threads or 1, onednn)
        else:
            if not paddle.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
                raise DeployError(f"device '{device}' needs paddlepaddle-gpu and a visible CUDA GPU")
            config = inference.Config(str(model), str(params))
            config.enable_use_gpu(256, 0)
            config.disable_glog_info()
            if device == "tensorrt":
                self._enable_tensorrt(config, inference)
        self.predictor = inference.create_predictor(config)

    def _enable_tensorrt(self, config, inference) -> None:
        """TensorRT subgraphs configured from the ``tensorrt`` entry that export wrote into deploy.yml."""
        trt = self.spec.models.get("tensorrt", {}).get("paddle_trt")
        if trt is None:
            raise DeployError("device 'tensorrt' needs the model exported with --format tensorrt "
                              "(deploy.yml has no paddle_trt settings)")
        half = trt["precision"] == "fp16"
        config.enable_tensorrt_engine(workspace_size=trt["workspace_mb"] << 20, max_batch_size=trt["max_batch"],
                                      min_subgraph_size=trt["min_subgraph_size"],
                                      precision_mode=inference.PrecisionType.Half if half
                                      else inference.PrecisionType.Float32,
                                      use_static=False, use_calib_mode=False)
        shapes = trt["shapes"]
        config.set_trt_dynamic_shape_info({k: v["min"] for k, v in shapes.items()},
                                          {k: v["max"] for k, v in shapes.items()},
                                          {k: v["opt"] for k, v in shapes.items()})

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        return run_predictor(self.predictor, tensors)
