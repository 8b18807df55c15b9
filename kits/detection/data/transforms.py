"""OpenCV/numpy detection transforms that keep boxes, classes and difficult flags in step.

A sample is a dict: ``image`` HWC BGR, ``gt_bbox`` [M, 4] xyxy pixels, ``gt_class`` [M],
``difficult`` [M], plus ``im_id`` and ``orig_size`` (H, W). Randomness comes from ``np.random``,
which the data loader seeds per sample, so augmentation is reproducible and resumable.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from ..registry import TRANSFORMS

BOX_KEYS = ("gt_bbox", "gt_class", "difficult")


def keep_boxes(sample: dict, keep: np.ndarray) -> dict:
    for key in BOX_KEYS:
        if key in sample:
            sample[key] = sample[key][keep]
    return sample


def drop_degenerate(sample: dict, min_size: float = 1.0) -> dict:
    boxes = sample["gt_bbox"]
    ok = ((boxes[:, 2] - boxes[:, 0]) >= min_size) & ((boxes[:, 3] - boxes[:, 1]) >= min_size)
    return keep_boxes(sample, ok)


@TRANSFORMS.register
class RandomDistort:
    """Photometric distortion: brightness, contrast, saturation and hue, each with probability ``prob``."""

    def __init__(self, brightness: float = 32, contrast: Sequence[float] = (0.5, 1.5),
                 saturation: Sequence[float] = (0.5, 1.5), hue: float = 18, prob: float = 0.5):
        self.brightness, self.contrast, self.saturation, self.hue, self.prob = brightness, contrast, saturation, hue, prob

    def __call__(self, sample: dict) -> dict:
        img = sample["image"].astype(np.float32)
        if np.random.rand() < self.prob:
            img += np.random.uniform(-self.brightness, self.brightness)
        if np.random.rand() < self.prob:
            img *= np.random.uniform(*self.contrast)
        if np.random.rand() < self.prob or np.random.rand() < self.prob:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV).astype(np.float32)
            hsv[..., 1] *= np.random.uniform(*self.saturation)
            hsv[..., 0] = (hsv[..., 0] + np.random.uniform(-self.hue, self.hue) / 2) % 180
            img = cv2.cvtColor(np.clip(hsv, 0, [180, 255, 255]).astype(np.uint8), cv2.COLOR_HSV2BGR).astype(np.float32)
        sample["image"] = np.clip(img, 0, 255).astype(np.uint8)
        return sample


@TRANSFORMS.register
class RandomExpand:
    """Place the image on a larger canvas filled with ``fill`` (zoom-out), with probability ``prob``."""

    def __init__(self, ratio: float = 4.0, prob: float = 0.5, fill: Sequence[float] = (103.53, 116.28, 123.675)):
        self.ratio, self.prob, self.fill = ratio, prob, fill

    def __call__(self, sample: dict) -> dict:
        if np.random.rand() >= self.prob:
            return sample
        img = sample["image"]
        h, w = img.shape[:2]
        r = np.random.uniform(1.0, self.ratio)
        nh, nw = int(h * r), int(w * r)
        top, left = np.random.randint(0, nh - h + 1), np.random.randint(0, nw - w + 1)
        canvas = np.empty((nh, nw, 3), img.dtype)
        canvas[:] = np.asarray(self.fill, dtype=np.float32).astype(img.dtype)
        canvas[top:top + h, left:left + w] = img
        sample["image"] = canvas
        sample["gt_bbox"] = sample["gt_bbox"] + np.array([left, top, left, top], np.float32)
        return sample


def _iou(boxes: np.ndarray, crop: np.ndarray) -> np.ndarray:
    lt = np.maximum(boxes[:, :2], crop[:2])
    rb = np.minimum(boxes[:, 2:], crop[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(crop[2:] - crop[:2]) - inter
    return inter / np.maximum(area, 1e-9)


@TRANSFORMS.register
class RandomCrop:
    """IoU-constrained random crop (SSD style); boxes whose centre leaves the crop are dropped."""

    def __init__(self, thresholds: Sequence[float] = (0.1, 0.3, 0.5, 0.7, 0.9),
                 scaling: Sequence[float] = (0.3, 1.0), aspect_ratio: Sequence[float] = (0.5, 2.0),
                 attempts: int = 50, allow_no_crop: bool = True):
        self.thresholds, self.scaling, self.aspect_ratio = list(thresholds), scaling, aspect_ratio
        self.attempts, self.allow_no_crop = attempts, allow_no_crop

    def __call__(self, sample: dict) -> dict:
        boxes = sample["gt_bbox"]
        if len(boxes) == 0:
            return sample
        h, w = sample["image"].shape[:2]
        choices = self.thresholds + (["none"] if self.allow_no_crop else [])
        threshold = choices[np.random.randint(len(choices))]
        if threshold == "none":
            return sample
        for _ in range(self.attempts):
            scale = np.random.uniform(*self.scaling)
            ratio = np.random.uniform(*self.aspect_ratio)
            ch, cw = int(h * scale / np.sqrt(ratio)), int(w * scale * np.sqrt(ratio))
            if not (0 < ch <= h and 0 < cw <= w):
                continue
            y0, x0 = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
            crop = np.array([x0, y0, x0 + cw, y0 + ch], np.float32)
            if _iou(boxes, crop).max() < threshold:
                continue
            centres = (boxes[:, :2] + boxes[:, 2:]) / 2
            inside = np.all((centres > crop[:2]) & (centres < crop[2:]), axis=1)
            if not inside.any():
                continue
            sample = keep_boxes(sample, inside)
            shifted = sample["gt_bbox"] - np.array([x0, y0, x0, y0], np.float32)
            sample["gt_bbox"] = np.clip(shifted, 0, [cw, ch, cw, ch]).astype(np.float32)
            sample["image"] = sample["image"][y0:y0 + ch, x0:x0 + cw]
            return drop_degenerate(sample)
        return sample


@TRANSFORMS.register
class RandomFlip:
    def __init__(self, prob: float = 0.5):
        self.prob = prob

    def __call__(self, sample: dict) -> dict:
        if np.random.rand() < self.prob:
            w = sample["image"].shape[1]
            sample["image"] = sample["image"][:, ::-1]
            boxes = sample["gt_bbox"].copy()
            boxes[:, [0, 2]] = w - sample["gt_bbox"][:, [2, 0]]
            sample["gt_bbox"] = boxes
        return sample


@TRANSFORMS.register
class Resize:
    """Resize to ``target_size`` (square side or [H, W]); ``keep_ratio`` fits inside it instead."""

    def __init__(self, target_size: int | Sequence[int] = 416, keep_ratio: bool = False,
                 interp: int = cv2.INTER_LINEAR):
        self.size = (target_size, target_size) if isinstance(target_size, int) else tuple(target_size)
        self.keep_ratio, self.interp = keep_ratio, interp

    def __call__(self, sample: dict) -> dict:
        return resize_sample(sample, self.size, self.keep_ratio, self.interp)


def resize_sample(sample: dict, size: tuple[int, int], keep_ratio: bool, interp: int) -> dict:
    h, w = sample["image"].shape[:2]
    sy, sx = size[0] / h, size[1] / w
    if keep_ratio:
        sy = sx = min(sy, sx)
    sample["image"] = cv2.resize(np.ascontiguousarray(sample["image"]), (round(w * sx), round(h * sy)),
                                 interpolation=interp)
    if "gt_bbox" in sample and len(sample["gt_bbox"]):
        sample["gt_bbox"] = (sample["gt_bbox"] * np.array([sx, sy, sx, sy], np.float32)).astype(np.float32)
    prev = sample.get("scale_factor", np.ones(2, np.float32))
    sample["scale_factor"] = (prev * np.array([sy, sx], np.float32)).astype(np.float32)
    return sample


@TRANSFORMS.register
class Pad:
    """Pad the image at the bottom and right to ``size`` (side or [H, W]) or up to a multiple of
    ``size_divisor``. Boxes keep their coordinates, so predictions map back through ``scale_factor``
    alone; use after ``Resize(keep_ratio=True)`` to batch images of different aspect ratios."""

    def __init__(self, size: int | Sequence[int] | None = None, size_divisor: int = 0,
                 fill: Sequence[float] = (114.0, 114.0, 114.0)):
        if size is None and size_divisor <= 0:
            raise ValueError("Pad needs a size or a size_divisor > 0")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size is not None else None)
        self.size_divisor, self.fill = int(size_divisor), np.asarray(fill, np.float32)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        h, w = image.shape[:2]
        th, tw = self.size if self.size is not None else (h, w)
        if self.size_divisor > 0:
            d = self.size_divisor
            th, tw = -(-max(th, h) // d) * d, -(-max(tw, w) // d) * d
        if h > th or w > tw:
            raise ValueError(f"Pad: image {h}x{w} is larger than the pad size {th}x{tw}; resize it first")
        if (th, tw) != (h, w):
            out = np.empty((th, tw, image.shape[2]), image.dtype)
            out[...] = self.fill.astype(image.dtype)
            out[:h, :w] = image
            sample["image"] = out
        return sample


@TRANSFORMS.register
class Normalize:
    """``(image - mean) / std`` per channel; HWC -> CHW float32. Images are decoded BGR; ``to_rgb``
    swaps them to RGB first (for backbones trained on RGB, e.g. the ImageNet EfficientNet-Lite0)."""

    def __init__(self, mean: Sequence[float] = (103.53, 116.28, 123.675), std: Sequence[float] = (57.375, 57.12, 58.395),
                 to_rgb: bool = False):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.to_rgb = bool(to_rgb)

    def __call__(self, sample: dict) -> dict:
        image = sample["image"][..., ::-1] if self.to_rgb else sample["image"]
        img = (image.astype(np.float32) - self.mean) / self.std
        sample["image"] = np.ascontiguousarray(img.transpose(2, 0, 1))
        return sample


@TRANSFORMS.register
class BatchRandomResize:
    """Multi-scale training: one size per batch, drawn from ``sizes``; optional random interpolation."""

    per_batch = True

    def __init__(self, sizes: Sequence[int] = (352, 384, 416, 448, 480), random_interp: bool = True,
                 keep_ratio: bool = False):
        self.sizes, self.random_interp, self.keep_ratio = list(sizes), random_interp, keep_ratio
        self.interps = [cv2.INTER_NEAREST, cv2.INTER_LINEAR, cv2.INTER_AREA, cv2.INTER_CUBIC]

    def __call__(self, samples: list[dict]) -> list[dict]:
        size = self.sizes[np.random.randint(len(self.sizes))]
        interp = self.interps[np.random.randint(len(self.interps))] if self.random_interp else cv2.INTER_LINEAR
        return [drop_degenerate(resize_sample(s, (size, size), self.keep_ratio, interp)) for s in samples]


@TRANSFORMS.register
class Mosaic:
    """Four images in a 2x2 grid split at a random centre, with probability ``prob``.

    Each image is resized to fill its cell of a ``size`` x ``size`` canvas; boxes are scaled and
    shifted with it and dropped below ``min_size`` pixels. Put it first: the dataset hands it three
    more raw samples (``extra_samples``) drawn at random. Small objects appear at many scales and
    positions, which helps rare classes on small datasets.
    """

    extra_samples = 3

    def __init__(self, size: int = 416, prob: float = 0.5, center_range: Sequence[float] = (0.3, 0.7),
                 min_size: float = 2.0):
        if not 0.0 < center_range[0] < center_range[1] < 1.0:
            raise ValueError(f"Mosaic.center_range must lie inside (0, 1), got {center_range}")
        self.size, self.prob, self.center_range, self.min_size = int(size), float(prob), tuple(center_range), min_size

    def __call__(self, sample: dict) -> dict:
        extra = sample.pop("extra", [])
        if len(extra) < 3 or np.random.rand() >= self.prob:
            return sample
        s = self.size
        cx, cy = (int(np.random.uniform(*self.center_range) * s) for _ in range(2))
        cells = [(0, 0, cx, cy), (cx, 0, s, cy), (0, cy, cx, s), (cx, cy, s, s)]
        canvas = np.zeros((s, s, 3), np.uint8)
        parts = []
        for part, (x1, y1, x2, y2) in zip([sample, *extra[:3]], cells):
            h, w = part["image"].shape[:2]
            canvas[y1:y2, x1:x2] = cv2.resize(part["image"], (x2 - x1, y2 - y1))
            boxes = part["gt_bbox"] * np.array([(x2 - x1) / w, (y2 - y1) / h] * 2, np.float32)
            parts.append({**{k: part[k] for k in BOX_KEYS if k in part}, "gt_bbox": boxes + [x1, y1, x1, y1]})
        merged = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        sample.update(merged, image=canvas)
        return drop_degenerate(sample, self.min_size)
