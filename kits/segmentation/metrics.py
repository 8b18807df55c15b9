"""Confusion-matrix segmentation metrics: mIoU, per-class IoU, pixel accuracy, Kappa, Dice.

The matrix has one row per class (the label) and ``num_classes + 1`` columns (the prediction):
the extra column counts pixels predicted as something that is not a class of the data (e.g.
the void output of the bundled ESPNet weights), a miss for the labelled class that is no
class's false positive. Pixels labelled ``ignore_index`` are left out. Means run over the
classes present in the label or the prediction.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from kits.core.task import Metric

log = logging.getLogger(__name__)


def confusion_matrix(pred: np.ndarray, label: np.ndarray, num_classes: int, ignore_index: int = 255) -> np.ndarray:
    """``[C, C + 1]`` int64 counts of (label, prediction)."""
    label = np.asarray(label).astype(np.int64).ravel()
    pred = np.asarray(pred).astype(np.int64).ravel()
    if label.shape != pred.shape:
        raise ValueError(f"prediction has {pred.size} pixels but the label has {label.size}")
    keep = (label != ignore_index) & (label >= 0) & (label < num_classes)
    other = np.where((pred >= 0) & (pred < num_classes), pred, num_classes)
    index = label[keep] * (num_classes + 1) + other[keep]
    return np.bincount(index, minlength=num_classes * (num_classes + 1)).reshape(num_classes, num_classes + 1)


def scores(conf: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, float]:
    """mIoU, Acc (pixel accuracy), mAcc (mean class recall), Kappa, mDice and ``IoU/<class>``."""
    num_classes = conf.shape[0]
    conf = conf.astype(np.float64)
    tp = np.diag(conf[:, :num_classes])
    gt = conf.sum(1)
    predicted = conf[:, :num_classes].sum(0)
    union = gt + predicted - tp
    present = union > 0
    total = conf.sum()
    iou = np.divide(tp, union, out=np.zeros_like(tp), where=present)
    dice = np.divide(2 * tp, gt + predicted, out=np.zeros_like(tp), where=present)
    recall = np.divide(tp, gt, out=np.zeros_like(tp), where=gt > 0)
    accuracy = tp.sum() / total if total else 0.0
    chance = float((gt * predicted).sum() / total ** 2) if total else 0.0
    kappa = (accuracy - chance) / (1 - chance) if chance < 1 else 0.0
    out = {"mIoU": float(iou[present].mean()) if present.any() else 0.0,
           "Acc": float(accuracy),
           "mAcc": float(recall[gt > 0].mean()) if (gt > 0).any() else 0.0,
           "Kappa": float(kappa),
           "mDice": float(dice[present].mean()) if present.any() else 0.0}
    names = list(class_names or [str(i) for i in range(num_classes)])
    for i in np.flatnonzero(present):
        out[f"IoU/{names[i]}"] = float(iou[i])
    return out


def _resize_logits(logits, size):
    import paddle.nn.functional as F

    if tuple(logits.shape[-2:]) == tuple(size):
        return logits
    squeeze = logits.ndim == 3
    x = logits.unsqueeze(0) if squeeze else logits
    x = F.interpolate(x, size=list(size), mode="bilinear", align_corners=False)
    return x.squeeze(0) if squeeze else x


class SegMetric(Metric):
    """Accumulates the confusion matrix at label resolution (logits are resized to each label).

    Keeps the first ``keep`` predictions so ``write_report`` can draw overlays without another pass.
    """

    def __init__(self, dataset, keep: int = 4):
        self.dataset = dataset
        self.num_classes, self.ignore_index = dataset.num_classes, dataset.ignore_index
        self.class_names, self.keep = list(dataset.class_names), keep
        self.reset()

    def reset(self) -> None:
        self.conf = np.zeros((self.num_classes, self.num_classes + 1), np.int64)
        self.samples: list[tuple[int, np.ndarray]] = []

    def update(self, outputs: dict, batch: dict) -> None:
        logits, labels = outputs["logits"], batch["label"]
        indices = np.asarray(batch["index"]).ravel() if not hasattr(batch["index"], "numpy") \
            else batch["index"].numpy().ravel()
        if not isinstance(labels, (list, tuple)) and not isinstance(logits, (list, tuple)):
            preds = _resize_logits(logits, labels.shape[-2:]).argmax(axis=1).numpy()
            labels = labels.numpy()
        else:
            preds = [_resize_logits(lg, lb.shape[-2:]).argmax(axis=0).numpy() for lg, lb in zip(logits, labels)]
            labels = [lb.numpy() for lb in labels]
        for index, pred, label in zip(indices, preds, labels):
            self.conf += confusion_matrix(pred, label, self.num_classes, self.ignore_index)
            if len(self.samples) < self.keep:
                self.samples.append((int(index), pred.astype(np.int32)))

    def compute(self) -> dict[str, float]:
        return scores(self.conf, self.class_names)

    def write_report(self, out_dir: str | Path) -> list[Path]:
        """``confusion_matrix.png`` and ``overlay_*.jpg`` (image | prediction | label) in ``out_dir``."""
        from .visualize import overlay_triplet, plot_confusion

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [plot_confusion(self.conf, self.class_names, out / "confusion_matrix.png")]
        for index, pred in self.samples:
            image, label = self.dataset.load(index)
            name = Path(self.dataset.pairs[index][0]).stem
            written.append(overlay_triplet(image, pred, label, out / f"overlay_{name}.jpg", self.ignore_index))
        np.savetxt(out / "confusion_matrix.csv", self.conf, fmt="%d", delimiter=",",
                   header="rows: label " + " ".join(self.class_names) + "; last column: predicted outside the classes")
        return written


__all__ = ["confusion_matrix", "scores", "SegMetric"]
