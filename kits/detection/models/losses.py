"""GFL box coding helpers and the PicoDet losses (VariFocal / Quality Focal, GIoU, DFL).

Every loss returns per-element values already multiplied by its ``loss_weight``; the head sums
and normalises them.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..registry import LOSSES

EPS = 1e-9


def distribution_to_distance(reg: paddle.Tensor, reg_max: int) -> paddle.Tensor:
    """[..., 4 * (reg_max + 1)] bin logits -> [..., 4] expected distances (in bins = strides)."""
    shape = list(reg.shape[:-1]) + [4, reg_max + 1]
    prob = F.softmax(reg.reshape(shape), axis=-1)
    return (prob * paddle.arange(reg_max + 1, dtype=reg.dtype)).sum(-1)


def distance_to_box(points: paddle.Tensor, dist: paddle.Tensor) -> paddle.Tensor:
    """Centres [..., 2] and (left, top, right, bottom) distances [..., 4] -> xyxy boxes."""
    return paddle.concat([points - dist[..., :2], points + dist[..., 2:]], axis=-1)


def box_to_distance(points: paddle.Tensor, boxes: paddle.Tensor, max_dist: float) -> paddle.Tensor:
    """Inverse of :func:`distance_to_box`, clipped to ``[0, max_dist]``."""
    dist = paddle.concat([points - boxes[..., :2], boxes[..., 2:] - points], axis=-1)
    return dist.clip(0.0, max_dist)


def _wh_area(wh):
    # not .prod(-1): paddle's prod gradient is NaN where a factor is 0 (disjoint boxes)
    wh = wh.clip(min=0)
    return wh[..., 0] * wh[..., 1]


def _area(b):
    return _wh_area(b[..., 2:] - b[..., :2])


def aligned_iou(a: paddle.Tensor, b: paddle.Tensor, giou: bool = False) -> paddle.Tensor:
    """IoU (or GIoU) of matching rows of two [..., 4] xyxy box tensors."""
    lt = paddle.maximum(a[..., :2], b[..., :2])
    rb = paddle.minimum(a[..., 2:], b[..., 2:])
    inter = _wh_area(rb - lt)
    union = _area(a) + _area(b) - inter + EPS
    iou = inter / union
    if not giou:
        return iou
    hull = _wh_area(paddle.maximum(a[..., 2:], b[..., 2:]) - paddle.minimum(a[..., :2], b[..., :2]))
    return iou - (hull - union) / (hull + EPS)


def pairwise_iou(a: paddle.Tensor, b: paddle.Tensor) -> paddle.Tensor:
    """IoU of every box in ``a`` [P, 4] with every box in ``b`` [G, 4] -> [P, G]."""
    return aligned_iou(a.unsqueeze(1), b.unsqueeze(0))


@LOSSES.register()
class VarifocalLoss(nn.Layer):
    """VariFocal loss on logits against IoU-valued soft targets.

    Positives (target > 0) are weighted by their target IoU, negatives by ``alpha * p ** gamma``.
    """

    def __init__(self, alpha: float = 0.75, gamma: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.alpha, self.gamma, self.loss_weight = alpha, gamma, loss_weight

    def forward(self, logits, target):
        prob = F.sigmoid(logits)
        positive = (target > 0).astype(logits.dtype)
        weight = target * positive + self.alpha * (prob - target).abs().pow(self.gamma) * (1 - positive)
        bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        return bce * weight * self.loss_weight


@LOSSES.register()
class QualityFocalLoss(nn.Layer):
    """Quality focal loss (GFL): BCE to the soft target scaled by ``|p - target| ** beta``."""

    def __init__(self, beta: float = 2.0, loss_weight: float = 1.0):
        super().__init__()
        self.beta, self.loss_weight = beta, loss_weight

    def forward(self, logits, target):
        scale = (F.sigmoid(logits) - target).abs().pow(self.beta)
        return F.binary_cross_entropy_with_logits(logits, target, reduction="none") * scale * self.loss_weight


@LOSSES.register()
class GIoULoss(nn.Layer):
    """``1 - GIoU`` of matching [..., 4] xyxy boxes."""

    def __init__(self, loss_weight: float = 2.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target):
        return (1.0 - aligned_iou(pred, target, giou=True)) * self.loss_weight


@LOSSES.register()
class DistributionFocalLoss(nn.Layer):
    """DFL: cross-entropy to the two bins around a continuous target, linearly weighted.

    ``logits`` [..., reg_max + 1], ``target`` [...] in ``[0, reg_max)``; returns [...].
    """

    def __init__(self, loss_weight: float = 0.25):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, logits, target):
        left = target.floor()
        w_right = target - left
        logp = F.log_softmax(logits, axis=-1)
        left_i = left.astype("int64").unsqueeze(-1)
        nll_left = -paddle.take_along_axis(logp, left_i, axis=-1).squeeze(-1)
        nll_right = -paddle.take_along_axis(logp, left_i + 1, axis=-1).squeeze(-1)
        return (nll_left * (1 - w_right) + nll_right * w_right) * self.loss_weight
