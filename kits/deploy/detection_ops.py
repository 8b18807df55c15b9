"""Detection post-processing in numpy: GFL decoding, rescaling and multi-class NMS.

One implementation for both sides: the detection kit's evaluation decodes PicoDet's raw outputs
with these functions, and the runtime runs them as the ``PicoDetPostprocess`` op of deploy.yml.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from .ops import POSTPROCESS, PostContext


def _np(x) -> np.ndarray:
    return np.asarray(x.numpy() if hasattr(x, "numpy") else x, dtype=np.float32)


def _softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def decode(cls_scores: Sequence, reg_dists: Sequence, input_size: tuple[int, int],
           strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7, cell_offset: float = 0.5):
    """Per-level scores [N, P_l, C] and bin logits [N, P_l, 4 * (reg_max + 1)] -> boxes, scores.

    Returns xyxy boxes [N, P, 4] in input pixels (clipped to ``input_size`` (H, W)) and scores [N, P, C].
    """
    in_h, in_w = input_size
    all_boxes, all_scores = [], []
    for scores, reg, stride in zip(cls_scores, reg_dists, strides):
        scores, reg = _np(scores), _np(reg)
        fh, fw = math.ceil(in_h / stride), math.ceil(in_w / stride)
        if fh * fw != scores.shape[1] or reg.shape[1] != scores.shape[1]:
            raise ValueError(f"stride {stride}: expected {fh}x{fw} = {fh * fw} cells for input {in_h}x{in_w}, "
                             f"got scores {scores.shape} and distributions {reg.shape}")
        ys, xs = np.mgrid[0:fh, 0:fw]
        centres = (np.stack([xs.ravel(), ys.ravel()], axis=-1).astype(np.float32) + cell_offset) * stride
        prob = _softmax(reg.reshape(reg.shape[0], -1, 4, reg_max + 1))
        dist = (prob @ np.arange(reg_max + 1, dtype=np.float32)) * stride
        all_boxes.append(np.concatenate([centres - dist[..., :2], centres + dist[..., 2:]], axis=-1))
        all_scores.append(scores)
    boxes = np.concatenate(all_boxes, axis=1)
    boxes[..., 0::2] = boxes[..., 0::2].clip(0, in_w)
    boxes[..., 1::2] = boxes[..., 1::2].clip(0, in_h)
    return boxes, np.concatenate(all_scores, axis=1)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Greedy NMS; returns kept indices, highest score first."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        lt = np.maximum(boxes[i, :2], boxes[rest, :2])
        rb = np.minimum(boxes[i, 2:], boxes[rest, 2:])
        inter = (rb - lt).clip(min=0).prod(axis=1)
        iou = inter / np.maximum(areas[i] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


def multiclass_nms(boxes: np.ndarray, scores: np.ndarray, score_threshold: float = 0.025,
                   iou_threshold: float = 0.6, nms_top_k: int = 1000, keep_top_k: int = 100) -> np.ndarray:
    """Per-class NMS of boxes [P, 4] with scores [P, C] -> [K, 6] rows (class, score, x1, y1, x2, y2).

    Each class keeps its ``nms_top_k`` best boxes above ``score_threshold`` before NMS; the
    ``keep_top_k`` best detections over all classes are returned (``-1``: no limit).
    """
    point, cls = np.nonzero(scores > score_threshold)
    score = scores[point, cls]
    order = np.lexsort((-score, cls))
    point, cls, score = point[order], cls[order], score[order]
    rank = np.arange(cls.size) - np.searchsorted(cls, cls, side="left")
    sel = rank < nms_top_k
    point, cls, score = point[sel], cls[sel], score[sel]
    if cls.size == 0:
        return np.zeros((0, 6), np.float32)
    cand = boxes[point]
    # Shifting each class to its own region lets one NMS pass act per class.
    shifted = cand + (cls.astype(np.float32) * (float(cand.max()) + 1.0))[:, None]
    keep = nms(shifted, score, iou_threshold)
    if keep_top_k >= 0:
        keep = keep[:keep_top_k]
    return np.concatenate([cls[keep, None].astype(np.float32), score[keep, None], cand[keep]], axis=1)


def postprocess(cls_scores: Sequence, reg_dists: Sequence, input_size: int | tuple[int, int],
                orig_sizes: Sequence[tuple[int, int]] | None = None, *,
                scale_factors: Sequence[Sequence[float]] | None = None, strides: Sequence[int] = (8, 16, 32, 64),
                reg_max: int = 7, cell_offset: float = 0.5, score_threshold: float = 0.025,
                iou_threshold: float = 0.6, nms_top_k: int = 1000, keep_top_k: int = 100) -> list[np.ndarray]:
    """Decode raw PicoDet outputs into detections per image.

    Args:
        cls_scores, reg_dists: per-level raw outputs (paddle tensors or arrays), batch first.
        input_size: network input (H, W) or side; images were resized to it without keeping ratio.
        orig_sizes: (H, W) of each original image; boxes are scaled to it (default: input size).
        scale_factors: (scale_y, scale_x) from the original image to the network input, per image;
            when given they map boxes back instead of ``orig_sizes / input_size`` (needed after a
            ratio-keeping resize and padding), and boxes are clipped to ``orig_sizes``.
    Returns:
        one float32 array [K, 6] per image: class, score, x1, y1, x2, y2 in original pixels.
    """
    in_h, in_w = (input_size, input_size) if isinstance(input_size, int) else input_size
    boxes, scores = decode(cls_scores, reg_dists, (in_h, in_w), strides, reg_max, cell_offset)
    results = []
    for i in range(boxes.shape[0]):
        orig_h, orig_w = orig_sizes[i] if orig_sizes is not None else (in_h, in_w)
        if scale_factors is None:
            scale = np.array([orig_w / in_w, orig_h / in_h] * 2, dtype=np.float32)
            box = boxes[i] * scale
        else:
            sy, sx = (float(v) for v in scale_factors[i])
            box = boxes[i] * np.array([1 / sx, 1 / sy] * 2, dtype=np.float32)
            np.clip(box, 0, np.array([orig_w, orig_h] * 2, dtype=np.float32), out=box)
        dets = multiclass_nms(box, scores[i], score_threshold, iou_threshold, nms_top_k, keep_top_k)
        results.append(dets)
    return results


@POSTPROCESS.register
class PicoDetPostprocess:
    """Raw PicoDet outputs (score maps, then bin-logit maps, per level) -> ``boxes`` [K, 6] in
    original-image pixels: class, score, x1, y1, x2, y2."""

    def __init__(self, strides: Sequence[int] = (8, 16, 32, 64), reg_max: int = 7, cell_offset: float = 0.5,
                 score_threshold: float = 0.025, iou_threshold: float = 0.6, nms_top_k: int = 1000,
                 keep_top_k: int = 100):
        self.strides, self.reg_max, self.cell_offset = tuple(strides), reg_max, cell_offset
        self.nms = dict(score_threshold=score_threshold, iou_threshold=iou_threshold, nms_top_k=nms_top_k,
                        keep_top_k=keep_top_k)

    def __call__(self, ctx: PostContext) -> None:
        outputs = list(ctx.outputs.values())
        levels = len(self.strides)
        if len(outputs) != 2 * levels:
            raise ValueError(f"PicoDetPostprocess expects {2 * levels} outputs (scores and distributions for "
                             f"{levels} levels), got {len(outputs)}")
        scores = [o[None] for o in outputs[:levels]]
        dists = [o[None] for o in outputs[levels:]]
        size = tuple(ctx.sample["input_shape"])
        orig = tuple(ctx.sample.get("orig_shape", size))
        scale = ctx.sample.get("scale_factor")  # maps back after ratio-keeping resizes and padding too
        boxes = postprocess(scores, dists, size, [orig], scale_factors=None if scale is None else [scale],
                            strides=self.strides, reg_max=self.reg_max,
                            cell_offset=self.cell_offset, **self.nms)[0]
        ctx.result["boxes"] = boxes
