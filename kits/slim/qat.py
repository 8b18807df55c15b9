"""Quantization-aware training with paddle's native ``paddle.quantization.QAT``.

Every ``Conv2D`` and ``Linear`` (the layer types paddle's QAT maps) gets a fake quantizer on its
weight and on its input; everything else stays float. The wrapped model keeps the kits' contract
(train mode ``model(batch)`` -> losses, eval mode -> predictions, ``export_forward`` /
``input_spec``), so the shared Trainer fine-tunes it like any other model. The shipped artifact is
an INT8 QDQ ONNX file written by :mod:`kits.slim.int8_onnx` from the trained quantizer scales.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
import math
from dataclasses import dataclass, field
from typing import Iterator

import paddle

from kits.core.callbacks import Callback
from kits.core.errors import ConfigError, did_you_mean
from kits.core.fast_layers import PADDLE_TYPES, paddle_type

from .base import STRATEGIES, SlimContext, Strategy
from .quanters import ACTIVATION_QUANTIZE, ActivationMinMaxQuanterLayer, WeightAbsMaxQuanter, activation_quanter

log = logging.getLogger(__name__)

QUANT_TYPES = (paddle.nn.Conv2D, paddle.nn.Linear)   # exactly the types paddle's QAT replaces
WEIGHT_QUANTIZE = {"channel_wise_abs_max": True, "abs_max": False}   # name -> per output channel


def quantizable_layers(model) -> dict[str, paddle.nn.Layer]:
    """Dotted name -> layer for every sublayer paddle's QAT would wrap."""
    return {name: layer for name, layer in model.named_sublayers() if paddle_type(layer) in QUANT_TYPES}


def quantized_layers(model) -> dict[str, paddle.nn.Layer]:
    """Dotted name -> wrapped layer (``QuantedConv2D`` / ``QuantedLinear``) of a QAT model."""
    from paddle.nn.quant.format import ConvertibleQuantedLayer

    return {name: layer for name, layer in model.named_sublayers() if isinstance(layer, ConvertibleQuantedLayer)}


@contextlib.contextmanager
def modes_kept(model) -> Iterator[None]:
    """Restore every sublayer's train/eval flag on exit (``train()`` / ``eval()`` set them all)."""
    modes = [(layer, layer.training) for layer in model.sublayers(include_self=True)]
    try:
        yield
    finally:
        for layer, training in modes:
            layer.training = training


def _skipped(name: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatchcase(name, p) or name.startswith(p.rstrip(".*") + ".") for p in patterns)


def int8_exporter(tolerance: float):
    """``ctx.onnx_exporter``: (ctx, out_dir) -> INT8 QDQ ONNX file of the trained ``ctx.model``."""

    def run(ctx: SlimContext, out_dir):
        from .int8_onnx import export_int8_onnx

        wrap = getattr(ctx.task, "export_model", None)  # e.g. segmentation's fixed export size
        traced = wrap(ctx.cfg, ctx.model) if wrap is not None else ctx.model
        return export_int8_onnx(traced, ctx.task.deploy_spec(ctx.cfg, ctx.model), out_dir, tolerance=tolerance,
                                info=ctx.info)

    return run


class FreezeRanges(Callback):
    """QAT schedule: once ``at`` (a fraction) of the fine-tuning steps are done, the input ranges stop
    moving, so the last steps train the weights against the quantization the file will have."""

    name = "qat_freeze_ranges"

    def __init__(self, at: float):
        self.at, self.frozen = at, False

    def on_train_begin(self, state, control, model) -> None:
        if self.frozen:  # resumed after the freeze
            self._freeze(model)

    def on_step_end(self, state, control, model, logs) -> None:
        if not self.frozen and state.step >= math.ceil(self.at * state.total_steps):
            count = self._freeze(model)
            log.info("QAT: input ranges of %d layers frozen at step %d", count, state.step)

    def _freeze(self, model) -> int:
        quanters = [q for q in model.sublayers() if isinstance(q, ActivationMinMaxQuanterLayer)]
        for quanter in quanters:
            quanter.observing = False
        self.frozen = True
        return len(quanters)

    def state_dict(self) -> dict:
        return {"frozen": self.frozen}

    def set_state_dict(self, state: dict) -> None:
        self.frozen = bool(state.get("frozen", False))


@STRATEGIES.register
@dataclass
class QAT(Strategy):
    """Fake-quantize weights and inputs of every Conv2D / Linear, fine-tune, ship INT8 QDQ ONNX.

    weight_quantize: ``channel_wise_abs_max`` (one scale per output channel) or ``abs_max`` (one per
    tensor). activation_quantize: ``moving_average_min_max`` (default: asymmetric uint8 with a
    zero point, the range an exponential moving average of batch minima and maxima with
    ``moving_rate``; what the engines' int8 kernels take) or ``moving_average_abs_max`` (symmetric
    int8 from batch abs maxima, which wastes half the levels on non-negative inputs). skip: glob
    patterns of dotted layer names (``backbone.stem.*``, ``head.cls_out.*``) kept in float, e.g. the
    first conv or output convs; after a ``Distill``, names in the student. freeze_ranges_at: the
    fraction of fine-tuning steps after which the input ranges stop moving (``moving_average_min_max``
    only; None: they move to the end). export_tolerance: the largest relative difference of an INT8
    ONNX layer from its fake-quantized paddle layer (see :func:`kits.slim.int8_onnx.export_int8_onnx`).
    On CPUs without VNNI (AVX2 only), int8 kernels of ONNX Runtime and OpenVINO saturate with 8-bit
    weights; ``weight_bits: 7`` makes them match the trained graph.
    """

    weight_bits: int = 8
    activation_bits: int = 8
    weight_quantize: str = "channel_wise_abs_max"
    activation_quantize: str = "moving_average_min_max"
    moving_rate: float = 0.9
    skip: list = field(default_factory=list)
    freeze_ranges_at: float | None = None
    export_tolerance: float = 0.01

    def __post_init__(self):
        if self.weight_quantize not in WEIGHT_QUANTIZE:
            raise ConfigError(f"QAT.weight_quantize '{self.weight_quantize}' is unknown."
                              f"{did_you_mean(self.weight_quantize, WEIGHT_QUANTIZE)} "
                              f"Valid: {', '.join(WEIGHT_QUANTIZE)}")
        if self.activation_quantize not in ACTIVATION_QUANTIZE:
            raise ConfigError(f"QAT.activation_quantize '{self.activation_quantize}' is unknown."
                              f"{did_you_mean(self.activation_quantize, ACTIVATION_QUANTIZE)} "
                              f"Valid: {', '.join(ACTIVATION_QUANTIZE)}")
        bits = self.weight_bits
        if not isinstance(bits, int) or isinstance(bits, bool) or not 2 <= bits <= 8:
            raise ConfigError(f"QAT.weight_bits must be an integer from 2 to 8 (stored as int8), got {bits!r}")
        if self.activation_bits != 8:
            raise ConfigError(f"QAT.activation_bits must be 8, got {self.activation_bits!r}: the INT8 ONNX "
                              "QuantizeLinear saturates at the 8-bit range, so narrower activations would not match")
        if not isinstance(self.moving_rate, (int, float)) or not 0.0 < self.moving_rate < 1.0:
            raise ConfigError(f"QAT.moving_rate must be in (0, 1), got {self.moving_rate!r}")
        if isinstance(self.skip, str) or not all(isinstance(p, str) and p for p in self.skip):
            raise ConfigError(f"QAT.skip must be a list of layer-name patterns, got {self.skip!r}")
        if self.freeze_ranges_at is not None:
            at = self.freeze_ranges_at
            if isinstance(at, bool) or not isinstance(at, (int, float)) or not 0.0 < at <= 1.0:
                raise ConfigError(f"QAT.freeze_ranges_at must be a fraction in (0, 1] of the fine-tuning steps, "
                                  f"got {at!r}")
            if self.activation_quantize != "moving_average_min_max":
                raise ConfigError("QAT.freeze_ranges_at needs activation_quantize: moving_average_min_max")
        if not self.export_tolerance > 0:
            raise ConfigError(f"QAT.export_tolerance must be positive, got {self.export_tolerance!r}")

    def select(self, model) -> tuple[list[str], list[str]]:
        """(quantized, kept float) dotted layer names; a pattern that matches nothing is an error."""
        names = list(quantizable_layers(model))
        if not names:
            raise ConfigError(f"QAT: {type(model).__name__} has no Conv2D or Linear layer to quantize")
        for pattern in self.skip:
            if not any(_skipped(n, [pattern]) for n in names):
                raise ConfigError(f"QAT.skip pattern '{pattern}' matches no Conv2D/Linear layer of "
                                  f"{type(model).__name__}.{did_you_mean(pattern, names)} "
                                  f"Layers are named like: {', '.join(names[:4])}, ...")
        kept = [n for n in names if _skipped(n, self.skip)]
        return [n for n in names if n not in kept], kept

    def quant_config(self, model, names: list[str]):
        from paddle.quantization import QuantConfig

        weight = WeightAbsMaxQuanter(self.weight_bits, WEIGHT_QUANTIZE[self.weight_quantize])
        activation = activation_quanter(self.activation_quantize, self.moving_rate, self.activation_bits)
        config = QuantConfig(activation=None, weight=None)
        layers = quantizable_layers(model)
        # per layer (not per type), so skipped layers stay plain Conv2D / Linear
        config.add_layer_config([layers[n] for n in names], activation=activation, weight=weight)
        for fast, plain in PADDLE_TYPES.items():  # paddle's QAT wraps by exact type
            if plain in config.default_qat_layer_mapping:
                config.add_qat_layer_mapping(fast, config.default_qat_layer_mapping[plain])
        return config

    def apply(self, ctx: SlimContext) -> None:
        from paddle.quantization import QAT as PaddleQAT

        # inside a training wrapper (a distillation applied before), quantize what it trains
        wrapper = ctx.model if hasattr(ctx.model, "with_weights_model") else None
        model = wrapper.weights_model if wrapper is not None else ctx.model
        quantized, kept = self.select(model)
        with modes_kept(model):  # the caller's float model is left as it was; QAT wraps a copy
            model.train()  # paddle's QAT asserts training mode
            model = PaddleQAT(self.quant_config(model, quantized)).quantize(model, inplace=False)
        ctx.model = wrapper.with_weights_model(model) if wrapper is not None else model
        if self.freeze_ranges_at is not None:
            ctx.callbacks.append(FreezeRanges(self.freeze_ranges_at))
        ctx.needs_training = True
        ctx.precision = "int8"
        ctx.onnx_exporter = int8_exporter(self.export_tolerance)
        ctx.info["qat"] = {"quantized_layers": len(quantized), "float_layers": kept,
                           "weight_quantize": self.weight_quantize, "weight_bits": self.weight_bits}
        log.info("QAT: %d Conv2D/Linear layers fake-quantized, %d kept float", len(quantized), len(kept))
