"""Drawing helpers: class colours, mask overlays and the confusion-matrix figure."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np


def palette(num_colors: int = 256) -> np.ndarray:
    """``[num_colors, 3]`` uint8 BGR colours; the bit-interleaved scheme of Pascal VOC masks."""
    colors = np.zeros((num_colors, 3), np.uint8)
    for i in range(num_colors):
        c, r, g, b = i, 0, 0, 0
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors[i] = (b, g, r)
    return colors


def colorize(label_map: np.ndarray, ignore_index: int = 255, colors: np.ndarray | None = None) -> np.ndarray:
    """Class ids -> a BGR image; ``ignore_index`` (and ids beyond the palette) are black."""
    colors = palette(256) if colors is None else np.asarray(colors, np.uint8)
    ids = np.asarray(label_map).astype(np.int64)
    # class 0 is black in the VOC palette: shift by one so every class gets a visible colour
    out = colors[np.clip(ids + 1, 0, len(colors) - 1)]
    out[(ids == ignore_index) | (ids < 0) | (ids + 1 >= len(colors))] = 0
    return out


def overlay(image: np.ndarray, label_map: np.ndarray, alpha: float = 0.5, ignore_index: int = 255,
            colors: np.ndarray | None = None) -> np.ndarray:
    """Blend the coloured ``label_map`` over a BGR image of the same height and width."""
    if image.shape[:2] != label_map.shape[:2]:
        raise ValueError(f"image is {image.shape[:2]} but the label map is {label_map.shape[:2]}")
    color = colorize(label_map, ignore_index, colors)
    blended = cv2.addWeighted(image, 1 - alpha, color, alpha, 0)
    keep = np.asarray(label_map) == ignore_index
    blended[keep] = image[keep]
    return blended


def overlay_triplet(image: np.ndarray, pred: np.ndarray, label: np.ndarray, path: Path,
                    ignore_index: int = 255) -> Path:
    """Image with prediction overlay | prediction colours | label colours, side by side."""
    row = np.concatenate([overlay(image, pred, 0.5, ignore_index), colorize(pred, ignore_index),
                          colorize(label, ignore_index)], axis=1)
    cv2.imwrite(str(path), row)
    return Path(path)


def plot_confusion(conf: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Row-normalised confusion matrix (recall per label) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    num = conf.shape[0]
    cols = conf if conf[:, num:].sum() else conf[:, :num]  # the 'other' column only when used
    norm = cols / np.maximum(cols.sum(1, keepdims=True), 1)
    size = max(4.0, 0.5 * cols.shape[1] + 2)
    fig, ax = plt.subplots(figsize=(size, size * num / cols.shape[1] + 0.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    xnames = list(class_names) + (["other"] if cols.shape[1] > num else [])
    ax.set_xticks(range(cols.shape[1]), xnames, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(num), list(class_names), fontsize=8)
    ax.set_xlabel("prediction")
    ax.set_ylabel("label")
    if num <= 30:
        for (r, c), v in np.ndenumerate(norm):
            ax.text(c, r, f"{v:.2f}", ha="center", va="center", fontsize=6, color="white" if v > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


__all__ = ["palette", "colorize", "overlay", "overlay_triplet", "plot_confusion"]
