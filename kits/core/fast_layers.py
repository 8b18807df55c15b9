"""Drop-in ``nn.Linear`` / ``nn.Dropout`` / ``nn.LayerNorm`` whose eager CPU training step is faster.

Same parameters and state-dict keys as paddle's layers, and the same results; only the kernels
differ, and only while training in eager mode on CPU (evaluation, export, GPU and static graphs
take paddle's own path). Measured on the MiniLM fine-tuning step (``benchmarks/nlp.py``), paddle's
CPU kernels spent most of the non-matmul time in three places:

- ``x @ W + b``: the bias gradient is a row reduction, and both the broadcast-add gradient and
  ``addmm``'s own gradient run it as a slow generic sum (5.7 ms for a 1344 x 1536 gradient, where
  a ones-vector matmul takes 0.2 ms); here the forward is ``addmm`` on 2-D rows and the backward
  three matmuls.
- dropout draws one ``mt19937`` number per element in a scalar loop; numpy's SFC64 fills the
  same Bernoulli mask from 16-bit words several times faster (the drop rate is rounded to a
  multiple of 1/65536, and the kept values scaled by the exact inverse of the kept share). Its
  seed is drawn from paddle's generator, so ``paddle.seed`` and the checkpointed RNG state
  still make runs repeatable.
- the LayerNorm gradient kernel; here it is a few elementwise ops, with the row sums as
  matrix-vector products.

Paddle's type-keyed tables (QAT's layer mapping, ``paddle.flops``' counters) match exact types, so
code that consults them asks :func:`paddle_type` first.
"""

from __future__ import annotations

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer


def _fast_path(layer: nn.Layer, x) -> bool:
    return layer.training and paddle.in_dynamic_mode() and x.place.is_cpu_place()


class Linear(nn.Linear):
    """``nn.Linear``; training on CPU runs on the flattened rows with its own gradient."""

    def forward(self, x):
        if self.bias is None or not _fast_path(self, x):
            return super().forward(x)
        shape = x.shape
        out = _LinearFn.apply(x.reshape([-1, shape[-1]]), self.weight, self.bias)
        return out.reshape([*shape[:-1], self.weight.shape[1]])


class _LinearFn(PyLayer):
    @staticmethod
    def forward(ctx, x, weight, bias):
        ctx.save_for_backward(x, weight)
        return paddle.addmm(bias, x, weight)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        return paddle.matmul(grad, weight, transpose_y=True), paddle.matmul(x, grad, transpose_x=True), _sum_rows(grad)


_WORDS = 1 << 16


class Dropout(nn.Dropout):
    """``nn.Dropout`` (upscale in train); training on CPU draws the mask with numpy."""

    def forward(self, x):
        if self.p == 0 or self.mode != "upscale_in_train" or self.axis is not None or not _fast_path(self, x):
            return super().forward(x)
        dropped = round(self.p * _WORDS)  # of every 65536 16-bit words
        if dropped >= _WORDS:
            return x * 0.0
        seed = int(paddle.randint(0, 2**31 - 1, [1]).item())
        size = int(np.prod(x.shape))
        words = np.random.SFC64(seed).random_raw(-(-size // 4)).view(np.uint16)[:size].reshape(x.shape)
        mask = np.multiply(words >= dropped, np.float32(_WORDS / (_WORDS - dropped)), dtype=np.float32)
        return x * paddle.to_tensor(mask, dtype=x.dtype, place=x.place)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` over the last axis; training on CPU uses its own gradient."""

    def forward(self, x):
        if (len(self._normalized_shape) != 1 or self.weight is None or self.bias is None
                or not _fast_path(self, x)):
            return super().forward(x)
        return _LayerNormFn.apply(x, self.weight, self.bias, self._epsilon)


def _sum_rows(rows):
    """Column sums of a 2-D tensor, as one matrix-vector product (paddle's reduction is slow here)."""
    return paddle.matmul(paddle.ones([1, rows.shape[0]], dtype=rows.dtype), rows).reshape([rows.shape[1]])


def _row_mean(x, ones):
    return paddle.matmul(x, ones)  # ones: [H, 1] filled with 1/H


class _LayerNormFn(PyLayer):
    @staticmethod
    def forward(ctx, x, weight, bias, eps):
        ctx.save_for_backward(x, weight)
        ctx.eps = eps
        return F.layer_norm(x, x.shape[-1], weight, bias, eps)

    @staticmethod
    def backward(ctx, grad):
        x, weight = ctx.saved_tensor()
        width = x.shape[-1]
        x2, g2 = x.reshape([-1, width]), grad.reshape([-1, width])
        mean_of = paddle.full([width, 1], 1.0 / width, dtype=x.dtype)
        centered = x2 - _row_mean(x2, mean_of)
        rstd = paddle.rsqrt(_row_mean(centered * centered, mean_of) + ctx.eps)
        xhat = centered * rstd
        gh = g2 * weight
        grad_x = (gh - _row_mean(gh, mean_of) - xhat * _row_mean(gh * xhat, mean_of)) * rstd
        return grad_x.reshape(x.shape), _sum_rows(g2 * xhat), _sum_rows(g2)


PADDLE_TYPES = {Linear: nn.Linear, Dropout: nn.Dropout, LayerNorm: nn.LayerNorm}


def paddle_type(layer: nn.Layer) -> type:
    """The paddle layer type ``layer`` stands for: its own type unless it is one of these layers."""
    return PADDLE_TYPES.get(type(layer), type(layer))
