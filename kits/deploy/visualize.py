"""Small generic visualisers: class label, segmentation mask overlay, and [K, 6] boxes."""

from __future__ import annotations

import cv2
import numpy as np


def palette(n: int) -> np.ndarray:
    """``n`` distinct BGR colours, the same on every run."""
    rng = np.random.default_rng(7)
    colours = rng.integers(40, 256, size=(max(n, 1), 3), dtype=np.int64)
    colours[0] = (0, 0, 0) if n > 1 else colours[0]  # class 0 (usually background) stays dark
    return colours.astype(np.uint8)


def _text(image: np.ndarray, text: str, org: tuple[int, int], colour=(255, 255, 255)) -> None:
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 3, cv2.LINE_AA)
    cv2.putText(image, text, org, cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, 1, cv2.LINE_AA)


def draw_mask(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.shape != image.shape[:2]:
        mask = cv2.resize(mask.astype(np.int32), image.shape[1::-1], interpolation=cv2.INTER_NEAREST)
    colours = palette(int(mask.max()) + 1)[mask]
    return cv2.addWeighted(image, 1 - alpha, colours, alpha, 0)


def draw_boxes(image: np.ndarray, boxes, labels=None, min_score: float = 0.0) -> np.ndarray:
    """Rows of (class, score, x1, y1, x2, y2) in image pixels."""
    out = image.copy()
    rows = np.asarray(boxes, dtype=np.float32).reshape(-1, 6)
    colours = palette(int(rows[:, 0].max()) + 2 if len(rows) else 1)
    for cls, score, x1, y1, x2, y2 in rows:
        if score < min_score:
            continue
        colour = tuple(int(c) for c in colours[int(cls) + 1])
        cv2.rectangle(out, (int(x1), int(y1)), (int(x2), int(y2)), colour, 2)
        name = labels[int(cls)] if labels and 0 <= int(cls) < len(labels) else str(int(cls))
        _text(out, f"{name} {score:.2f}", (int(x1), max(12, int(y1) - 4)), colour)
    return out


def draw(image: np.ndarray, result: dict, labels=None) -> np.ndarray:
    """Draw whatever a result holds: ``mask``, ``boxes`` and/or a class ``label``."""
    out = image
    if result.get("mask") is not None:
        out = draw_mask(out, result["mask"])
    if result.get("boxes") is not None:
        out = draw_boxes(out, result["boxes"], labels)
    label = result.get("label")
    if isinstance(label, int):
        name = labels[label] if labels and 0 <= label < len(labels) else str(label)
        top = result.get("topk") or [{}]
        score = top[0].get("score")
        out = out.copy()
        _text(out, name if score is None else f"{name} {score:.3f}", (8, 20))
    return out
