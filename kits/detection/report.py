"""What detection evaluation writes beside its numbers: precision-recall curves and overlays."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

RECALLS = np.linspace(0.0, 1.0, 101)  # the recall points of COCOeval's precision array


def plot_pr_curves(precision: np.ndarray, class_names: Sequence[str], path: Path) -> Path:
    """Precision vs recall per class at IoU 0.5 (all areas, 100 detections), AP50 in the legend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 5), dpi=100)
    for k, name in enumerate(class_names):
        curve = precision[0, :, k, 0, -1]
        if (curve < 0).all():  # no ground truth of this class
            continue
        curve = np.clip(curve, 0, None)
        ax.plot(RECALLS, curve, label=f"{name} (AP50 {curve.mean():.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall at IoU 0.5")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def draw_boxes(image: np.ndarray, boxes: np.ndarray, labels: Sequence[str], color, thickness: int = 2) -> np.ndarray:
    for box, text in zip(boxes, labels):
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        cv2.rectangle(image, (x1, y1), (x2, y2), color, thickness)
        if text:
            cv2.putText(image, text, (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.45, color, 1, cv2.LINE_AA)
    return image


def overlay(image: np.ndarray, record, detections: np.ndarray, class_names: Sequence[str],
            score_threshold: float = 0.3) -> np.ndarray:
    """Ground truth in green, predictions above ``score_threshold`` in orange with class and score."""
    canvas = image.copy()
    draw_boxes(canvas, record.boxes, [""] * len(record.boxes), (0, 200, 0), 2)
    keep = detections[detections[:, 1] >= score_threshold]
    labels = [f"{class_names[int(c)]} {s:.2f}" for c, s in keep[:, :2]]
    return draw_boxes(canvas, keep[:, 2:6], labels, (0, 140, 255), 1)
