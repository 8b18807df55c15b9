"""SimOTA label assignment (YOLOX / PP-PicoDet), vectorised over prior points and boxes."""

from __future__ import annotations

import paddle
import paddle.nn.functional as F

from ..registry import ASSIGNERS
from .losses import pairwise_iou

_OUTSIDE = 1e5  # cost added to candidates outside the box-and-centre region
_INVALID = 1e8  # cost of points that are no candidate at all


@ASSIGNERS.register()
class SimOTAAssigner:
    """Assign prior points to ground-truth boxes for one image.

    Candidates are points inside a gt box or within ``center_radius * stride`` of its centre. The
    cost of a (point, gt) pair is ``cls_weight * cls_cost + iou_weight * -log(IoU)`` plus a large
    penalty unless the point is both inside the box and near its centre. The cls cost is the
    binary cross-entropy of the predicted scores against the gt class one-hot scaled by the IoU.
    Each gt takes its ``k`` cheapest points, ``k`` being the sum of its ``candidate_topk`` best
    IoUs (at least 1); a point claimed by several gts goes to its cheapest one.
    """

    def __init__(self, center_radius: float = 2.5, candidate_topk: int = 10, iou_weight: float = 6.0,
                 cls_weight: float = 1.0):
        self.center_radius = center_radius
        self.candidate_topk = candidate_topk
        self.iou_weight = iou_weight
        self.cls_weight = cls_weight

    @paddle.no_grad()
    def __call__(self, scores, boxes, points, strides, gt_boxes, gt_labels):
        """Args: scores [P, C] probabilities, boxes [P, 4] decoded xyxy, points [P, 2] centres,
        strides [P], gt_boxes [G, 4] xyxy, gt_labels [G] int.

        Returns ``(positive [P] bool, gt_index [P] int64)``; ``gt_index`` is 0 where not positive.
        """
        num_points, num_gt = scores.shape[0], gt_boxes.shape[0]
        if num_gt == 0:
            return paddle.zeros([num_points], "bool"), paddle.zeros([num_points], "int64")
        in_box, in_centre = self._geometry(points, strides, gt_boxes)
        candidate = (in_box | in_centre).any(axis=1)
        cand_f = candidate.astype("float32").unsqueeze(1)
        ious = pairwise_iou(boxes, gt_boxes) * cand_f
        cost = (self.cls_weight * self._cls_cost(scores, gt_labels, ious)
                + self.iou_weight * -paddle.log(ious + 1e-7)
                + _OUTSIDE * (~(in_box & in_centre)).astype("float32")
                + _INVALID * (1 - cand_f))
        match = self._dynamic_k_match(cost, ious)
        several = match.sum(axis=1, keepdim=True) > 1
        cheapest = F.one_hot(cost.argmin(axis=1), num_gt)
        match = paddle.where(several, cheapest, match) * cand_f
        return match.sum(axis=1) > 0, match.argmax(axis=1)

    def _geometry(self, points, strides, gt_boxes):
        x, y = points[:, 0:1], points[:, 1:2]
        x1, y1, x2, y2 = (gt_boxes[:, i] for i in range(4))
        in_box = (x > x1) & (x < x2) & (y > y1) & (y < y2)
        radius = self.center_radius * strides.unsqueeze(1)
        in_centre = ((x - (x1 + x2) / 2).abs() < radius) & ((y - (y1 + y2) / 2).abs() < radius)
        return in_box, in_centre

    @staticmethod
    def _cls_cost(scores, gt_labels, ious):
        prob = scores.clip(1e-6, 1 - 1e-6)
        neg_all = -paddle.log(1 - prob).sum(axis=1, keepdim=True)
        p_gt = paddle.index_select(prob, gt_labels.astype("int64"), axis=1)
        bce_gt = -(ious * paddle.log(p_gt) + (1 - ious) * paddle.log(1 - p_gt))
        return neg_all + paddle.log(1 - p_gt) + bce_gt

    def _dynamic_k_match(self, cost, ious):
        num_points, num_gt = cost.shape
        topk = min(self.candidate_topk, num_points)
        dynamic_k = paddle.topk(ious, topk, axis=0)[0].sum(axis=0).astype("int64").clip(min=1)
        max_k = int(dynamic_k.max())
        _, cheapest = paddle.topk(-cost, max_k, axis=0)
        take = (paddle.arange(max_k).unsqueeze(1) < dynamic_k.unsqueeze(0)).astype("float32")
        return paddle.put_along_axis(paddle.zeros([num_points, num_gt]), cheapest, take, axis=0)
