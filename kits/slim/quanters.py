"""The fake quantizers QAT puts on weights and layer inputs, in the forms ONNX INT8 files store.

Weights: symmetric int8 (zero point 0), one scale per output channel or per tensor, recomputed
from the weight at every step. Inputs (activations): either paddle's moving-average abs-max
quantizer (symmetric int8) or :class:`ActivationMinMaxQuanterLayer`, asymmetric uint8 with a
zero point, which is what the int8 kernels of ONNX Runtime and OpenVINO take natively.
"""

from __future__ import annotations

import paddle
from paddle import _C_ops
from paddle.quantization.base_quanter import BaseQuanter
from paddle.quantization.factory import QuanterFactory

ROUND_TIES_TO_EVEN = 0   # paddle's round_type 0: the rounding of ONNX QuantizeLinear
UINT8_MAX = 255


def channel_axis(layer) -> int:
    """The output-channel axis of a weight: Conv2D [out, in, kh, kw] -> 0, Linear [in, out] -> 1."""
    return 1 if isinstance(layer, paddle.nn.Linear) else 0


class WeightAbsMaxQuanterLayer(BaseQuanter):
    """Symmetric abs-max fake quantization of a weight, per output channel or per tensor.

    Stateless: the scale is the weight's current abs max, recomputed at every step (the INT8
    export recomputes it the same way from the trained weight).
    """

    def __init__(self, layer, bit_length: int = 8, per_channel: bool = True):
        super().__init__()
        self._bits = bit_length
        self._axis = channel_axis(layer) if per_channel else -1
        self._last_scale = None

    def forward(self, weight):
        if self._axis >= 0:
            out, scale = _C_ops.fake_channel_wise_quantize_dequantize_abs_max(
                weight, self._bits, ROUND_TIES_TO_EVEN, self._axis)
        else:
            out, scale = _C_ops.fake_quantize_dequantize_abs_max(weight, self._bits, ROUND_TIES_TO_EVEN)
        self._last_scale = scale
        return out

    def scales(self):
        return self._last_scale

    def zero_points(self):
        return None if self._last_scale is None else paddle.zeros_like(self._last_scale)

    def quant_axis(self):
        return self._axis

    def bit_length(self):
        return self._bits


class WeightAbsMaxQuanter(QuanterFactory):
    """Factory of :class:`WeightAbsMaxQuanterLayer` for ``paddle.quantization.QuantConfig``."""

    def __init__(self, bit_length: int = 8, per_channel: bool = True):
        super().__init__(bit_length=bit_length, per_channel=per_channel)

    def _get_class(self):
        return WeightAbsMaxQuanterLayer


class ActivationMinMaxQuanterLayer(BaseQuanter):
    """Asymmetric uint8 fake quantization of an input with moving-average minimum and maximum.

    In training mode each batch's min / max update the range (the first batch sets it, later ones
    move it by ``1 - moving_rate``); eval mode only applies it. The range always contains 0, so
    zero padding and ReLU zeros stay exact. ``step = (max - min) / 255``, ``zero_point =
    round(-min / step)``, and ``x -> (clip(round(x / step) + zero_point, 0, 255) - zero_point) * step``
    with ties rounded to even: ONNX ``QuantizeLinear`` + ``DequantizeLinear`` to uint8. The
    gradient passes straight through inside the range and is zero where the value was clipped.
    """

    def __init__(self, layer, moving_rate: float = 0.9, bit_length: int = 8):
        super().__init__()
        self._rate = float(moving_rate)
        self._bits = bit_length
        self.observing = True   # False: the range is frozen (a QAT schedule), train mode only applies it
        # buffers, not python floats: checkpoints carry them and no step waits for a device sync
        self.register_buffer("_min", paddle.zeros([1], "float32"))
        self.register_buffer("_max", paddle.zeros([1], "float32"))
        self.register_buffer("_batches", paddle.zeros([1], "float32"))

    def _observe(self, x) -> None:
        with paddle.no_grad():
            lo, hi = x.min().reshape([1]), x.max().reshape([1])
            first = self._batches == 0
            keep = paddle.where(first, paddle.zeros_like(self._min), paddle.full_like(self._min, self._rate))
            self._min.set_value(keep * self._min + (1 - keep) * lo)
            self._max.set_value(keep * self._max + (1 - keep) * hi)
            self._batches.set_value(self._batches + 1)

    def qparams(self):
        """(step, zero point) as float32 tensors of shape [1]; the zero point is an integer in [0, 255]."""
        lo = paddle.minimum(self._min, paddle.zeros_like(self._min))
        hi = paddle.maximum(self._max, paddle.zeros_like(self._max))
        span = hi - lo
        step = paddle.where(span > 0, span / UINT8_MAX, paddle.ones_like(span))
        zero_point = paddle.clip(paddle.round(-lo / step), 0, UINT8_MAX)
        return step, zero_point

    def forward(self, x):
        if self.training and self.observing:
            self._observe(x)
        step, zero_point = self.qparams()
        q = paddle.clip(paddle.round(x / step) + zero_point, 0, UINT8_MAX)
        y = (q - zero_point) * step
        inside = paddle.clip(x, (0 - zero_point) * step, (UINT8_MAX - zero_point) * step)
        # exactly y (t - t == 0), with the gradient of the clip: `inside + (y - inside).detach()`
        # is off by an ulp now and then, which a later rounding can turn into a whole step
        return y.detach() + (inside - inside.detach())

    def scales(self):
        return self.qparams()[0]

    def zero_points(self):
        return self.qparams()[1]

    def quant_axis(self):
        return -1

    def bit_length(self):
        return self._bits


class ActivationMinMaxQuanter(QuanterFactory):
    """Factory of :class:`ActivationMinMaxQuanterLayer` for ``paddle.quantization.QuantConfig``."""

    def __init__(self, moving_rate: float = 0.9, bit_length: int = 8):
        super().__init__(moving_rate=moving_rate, bit_length=bit_length)

    def _get_class(self):
        return ActivationMinMaxQuanterLayer


def _abs_max(moving_rate: float, bit_length: int):
    from paddle.quantization.quanters import FakeQuanterWithAbsMaxObserver

    return FakeQuanterWithAbsMaxObserver(moving_rate=moving_rate, bit_length=bit_length)


ACTIVATION_QUANTIZE = {"moving_average_min_max": ActivationMinMaxQuanter, "moving_average_abs_max": _abs_max}


def activation_quanter(name: str, moving_rate: float, bit_length: int):
    """The quanter factory called ``name`` in :data:`ACTIVATION_QUANTIZE`."""
    return ACTIVATION_QUANTIZE[name](moving_rate=moving_rate, bit_length=bit_length)
