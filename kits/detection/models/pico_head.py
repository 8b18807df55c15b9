"""PicoHead: per-level depthwise towers, class scores and GFL box distributions, and their loss."""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle import ParamAttr
from paddle.nn.initializer import Constant, Normal

from ..registry import ASSIGNERS, HEADS, LOSSES
from .layers import DepthwiseSeparable, flatten_hw
from .losses import aligned_iou, box_to_distance, distance_to_box, distribution_to_distance


def _out_conv(in_ch: int, out_ch: int, bias: float) -> nn.Conv2D:
    return nn.Conv2D(in_ch, out_ch, 1, weight_attr=ParamAttr(initializer=Normal(0.0, 0.01)),
                     bias_attr=ParamAttr(initializer=Constant(bias)))


@HEADS.register()
class PicoHead(nn.Layer):
    """GFL-style anchor-free head of PP-PicoDet (one tower per level, classes and boxes share it).

    Each level runs ``num_convs`` depthwise-separable ``kernel_size`` convs, then two 1x1 convs:
    ``cls_out`` (``num_classes`` logits) and ``reg_out`` (4 sides x ``reg_max + 1`` bins). The
    split into two convs keeps the box layer when fine-tuning to another class count.
    Box centres are ``(i + cell_offset) * stride``; distances are in units of the stride.
    """

    def __init__(self, num_classes: int = 80, in_channels: int = 96, feat_channels: int = 96, num_convs: int = 2,
                 kernel_size: int = 5, strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7,
                 cell_offset: float = 0.5, prior_prob: float = 0.01, act: str = "hardswish",
                 loss_class: Mapping | None = None, loss_bbox: Mapping | None = None,
                 loss_dfl: Mapping | None = None, assigner: Mapping | None = None):
        super().__init__()
        self.num_classes, self.reg_max = num_classes, reg_max
        self.strides, self.cell_offset = tuple(strides), cell_offset
        towers = []
        for _ in self.strides:
            convs = [DepthwiseSeparable(in_channels if i == 0 else feat_channels, feat_channels, kernel_size, act=act)
                     for i in range(num_convs)]
            towers.append(nn.Sequential(*convs))
        self.towers = nn.LayerList(towers)
        cls_bias = -math.log((1 - prior_prob) / prior_prob)
        self.cls_out = nn.LayerList([_out_conv(feat_channels, num_classes, cls_bias) for _ in self.strides])
        self.reg_out = nn.LayerList([_out_conv(feat_channels, 4 * (reg_max + 1), 0.0) for _ in self.strides])
        self.loss_class = LOSSES.build(loss_class or {"type": "VarifocalLoss", "alpha": 0.75, "gamma": 2.0})
        self.loss_bbox = LOSSES.build(loss_bbox or {"type": "GIoULoss", "loss_weight": 2.0})
        self.loss_dfl = LOSSES.build(loss_dfl or {"type": "DistributionFocalLoss", "loss_weight": 0.25})
        self.assigner = ASSIGNERS.build(assigner or {"type": "SimOTAAssigner"})

    def forward(self, feats):
        """Per level: class logits [N, H*W, num_classes] and bin logits [N, H*W, 4 * (reg_max + 1)]."""
        if len(feats) != len(self.strides):
            raise ValueError(f"PicoHead has {len(self.strides)} levels, got {len(feats)} feature maps")
        cls_logits, reg_dists = [], []
        for i, feat in enumerate(feats):
            feat = self.towers[i](feat)
            cls_logits.append(flatten_hw(self.cls_out[i](feat)))
            reg_dists.append(flatten_hw(self.reg_out[i](feat)))
        return cls_logits, reg_dists

    def prior_points(self, feats):
        """Centres [P, 2] (x, y in input pixels) and strides [P] of every cell, level after level."""
        points, strides = [], []
        for feat, stride in zip(feats, self.strides):
            h, w = feat.shape[-2:]
            ys, xs = paddle.meshgrid(paddle.arange(h, dtype="float32"), paddle.arange(w, dtype="float32"))
            xy = paddle.stack([xs.flatten(), ys.flatten()], axis=-1)
            points.append((xy + self.cell_offset) * stride)
            strides.append(paddle.full([h * w], float(stride)))
        return paddle.concat(points), paddle.concat(strides)

    def loss(self, cls_logits, reg_dists, points, strides, gt_bbox, gt_class, gt_mask):
        """Losses of one batch; targets padded: ``gt_bbox`` [N, M, 4], ``gt_class`` [N, M], ``gt_mask`` [N, M]."""
        logits = paddle.concat(cls_logits, axis=1)
        regs = paddle.concat(reg_dists, axis=1)
        stride_col = strides.unsqueeze(-1)
        boxes = distance_to_box(points, distribution_to_distance(regs, self.reg_max) * stride_col)
        pos, tgt_boxes, tgt_labels = self._assign(F.sigmoid(logits).detach(), boxes.detach(), points, strides,
                                                  gt_bbox, gt_class, gt_mask)
        pos_f = pos.astype(logits.dtype)
        num_pos = paddle.clip(pos_f.sum(), min=1.0)
        iou = aligned_iou(boxes.detach(), tgt_boxes) * pos_f
        soft = F.one_hot(tgt_labels, self.num_classes) * iou.unsqueeze(-1)
        loss_cls = self.loss_class(logits, soft).sum() / num_pos
        # GFL weights box terms by the detached top class score of each positive.
        weight = F.sigmoid(logits).detach().max(axis=-1) * pos_f
        avg = paddle.clip(weight.sum(), min=1.0)
        loss_bbox = (self.loss_bbox(boxes, tgt_boxes) * weight).sum() / avg
        target_dist = box_to_distance(points, tgt_boxes, 1e9) / stride_col
        target_dist = target_dist.clip(0.0, self.reg_max - 0.01)
        bins = regs.reshape(list(regs.shape[:-1]) + [4, self.reg_max + 1])
        loss_dfl = (self.loss_dfl(bins, target_dist).sum(-1) * weight).sum() / (4.0 * avg)
        return {"loss_vfl": loss_cls, "loss_bbox": loss_bbox, "loss_dfl": loss_dfl}

    def _assign(self, scores, boxes, points, strides, gt_bbox, gt_class, gt_mask):
        """Run the assigner image by image; returns positives [N, P] and matched boxes / labels."""
        positives, tgt_boxes, tgt_labels = [], [], []
        for b in range(scores.shape[0]):
            keep = paddle.nonzero(gt_mask[b] > 0).flatten()
            num_points = points.shape[0]
            if keep.shape[0] == 0:
                positives.append(paddle.zeros([num_points], "bool"))
                tgt_boxes.append(paddle.zeros([num_points, 4]))
                tgt_labels.append(paddle.zeros([num_points], "int64"))
                continue
            boxes_b = paddle.gather(gt_bbox[b], keep).astype("float32")
            labels_b = paddle.gather(gt_class[b], keep).astype("int64")
            pos, index = self.assigner(scores[b], boxes[b], points, strides, boxes_b, labels_b)
            positives.append(pos)
            tgt_boxes.append(paddle.gather(boxes_b, index))
            tgt_labels.append(paddle.gather(labels_b, index))
        return paddle.stack(positives), paddle.stack(tgt_boxes), paddle.stack(tgt_labels)
