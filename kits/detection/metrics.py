"""Detection metrics: COCO mAP through pycocotools, and VOC mAP (11-point and area)."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from kits.core.task import Metric

from kits.deploy.detection_ops import postprocess

COCO_NAMES = ("mAP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def coco_ground_truth(records, class_names: Sequence[str]) -> dict:
    """A COCO-format GT dict from dataset records (image ids are the dataset indices)."""
    images, annotations = [], []
    for index, rec in enumerate(records):
        images.append({"id": index, "width": rec.width, "height": rec.height, "file_name": str(rec.image)})
        for box, cls, hard in zip(rec.boxes, rec.classes, rec.difficult):
            w, h = float(box[2] - box[0]), float(box[3] - box[1])
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": int(cls),
                                "bbox": [float(box[0]), float(box[1]), w, h], "area": w * h,
                                "iscrowd": int(bool(hard))})  # difficult boxes neither help nor hurt
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i, "name": n} for i, n in enumerate(class_names)]}


def subset_ground_truth(gt: dict, image_ids) -> dict:
    """``gt`` restricted to ``image_ids``."""
    return {**gt, "images": [im for im in gt["images"] if im["id"] in image_ids],
            "annotations": [a for a in gt["annotations"] if a["image_id"] in image_ids]}


def coco_evaluate(gt: dict, detections: Mapping[int, np.ndarray], per_class: bool = True,
                  keep: dict | None = None) -> dict[str, float]:
    """COCO box AP of ``{image_id: [K, 6] (class, score, x1, y1, x2, y2)}`` against ``gt``; ``keep``
    receives COCOeval's precision array (for PR curves)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    results = [{"image_id": int(i), "category_id": int(d[0]), "score": float(d[1]),
                "bbox": [float(d[2]), float(d[3]), float(d[4] - d[2]), float(d[5] - d[3])]}
               for i, dets in detections.items() for d in dets]
    if not results:
        return {name: 0.0 for name in COCO_NAMES}
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = COCO()
        coco_gt.dataset = gt
        coco_gt.createIndex()
        coco_dt = coco_gt.loadRes(results)
        evaluator = COCOeval(coco_gt, coco_dt, "bbox")
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    metrics = {name: max(float(v), 0.0) for name, v in zip(COCO_NAMES, evaluator.stats[:6])}
    precision = evaluator.eval["precision"]  # [iou, recall, class, area, max_dets]
    if keep is not None:
        keep["precision"] = precision
    if per_class:
        for k, cat in enumerate(gt["categories"]):
            p50 = precision[0, :, k, 0, -1]
            p_all = precision[:, :, k, 0, -1]
            metrics[f"AP50/{cat['name']}"] = float(p50[p50 > -1].mean()) if (p50 > -1).any() else 0.0
            metrics[f"mAP/{cat['name']}"] = float(p_all[p_all > -1].mean()) if (p_all > -1).any() else 0.0
    return metrics


def voc_ap(recall: np.ndarray, precision: np.ndarray, eleven_point: bool) -> float:
    if eleven_point:
        return float(np.mean([precision[recall >= t].max() if (recall >= t).any() else 0.0
                              for t in np.linspace(0, 1, 11)]))
    r = np.concatenate([[0.0], recall, [1.0]])
    p = np.concatenate([[0.0], precision, [0.0]])
    p = np.maximum.accumulate(p[::-1])[::-1]
    idx = np.nonzero(r[1:] != r[:-1])[0]
    return float(np.sum((r[idx + 1] - r[idx]) * p[idx + 1]))


def _iou_one(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    lt = np.maximum(box[:2], boxes[:, :2])
    rb = np.minimum(box[2:], boxes[:, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    union = np.prod(box[2:] - box[:2]) + np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) - inter
    return inter / np.maximum(union, 1e-9)


def voc_class_aps(records, detections: Mapping[int, np.ndarray], num_classes: int, iou: float = 0.5,
                  eleven_point: bool = False, image_ids=None) -> dict[int, float]:
    """VOC AP at ``iou`` per class id with ground truth; difficult ground truth is ignored (neither
    TP nor FP). ``image_ids``: score only these images (default: every record)."""
    aps = {}
    for c in range(num_classes):
        gts = {i: (r.boxes[r.classes == c], r.difficult[r.classes == c]) for i, r in enumerate(records)
               if image_ids is None or i in image_ids}
        n_pos = sum(int((~hard).sum()) for _, hard in gts.values())
        if n_pos == 0:
            continue
        dets = sorted(((i, d) for i, ds in detections.items() for d in ds if int(d[0]) == c), key=lambda x: -x[1][1])
        used = {i: np.zeros(len(g[0]), bool) for i, g in gts.items()}
        tp, fp = np.zeros(len(dets)), np.zeros(len(dets))
        for k, (i, d) in enumerate(dets):
            boxes, hard = gts[i]
            if len(boxes) == 0:
                fp[k] = 1
                continue
            ious = _iou_one(d[2:6], boxes)
            j = int(ious.argmax())
            if ious[j] < iou:
                fp[k] = 1
            elif not hard[j]:
                tp[k], fp[k] = (0, 1) if used[i][j] else (1, 0)
                used[i][j] = True
        tp, fp = np.cumsum(tp), np.cumsum(fp)
        aps[c] = voc_ap(tp / n_pos, tp / np.maximum(tp + fp, 1e-9), eleven_point)
    return aps


def voc_evaluate(records, detections: Mapping[int, np.ndarray], num_classes: int, iou: float = 0.5,
                 eleven_point: bool = False, image_ids=None) -> float:
    """VOC mAP at ``iou``: the mean of :func:`voc_class_aps` over classes with ground truth."""
    aps = voc_class_aps(records, detections, num_classes, iou, eleven_point, image_ids)
    return float(np.mean(list(aps.values()))) if aps else 0.0


class DetectionMetric(Metric):
    """Decodes raw PicoDet outputs per batch and scores them with COCO and VOC mAP at the end."""

    def __init__(self, dataset, postprocess_cfg: Mapping | None = None, keep: int = 4):
        self.keep = keep
        self.records, self.class_names = dataset.records, dataset.class_names
        self.post = dict(postprocess_cfg or {})
        self.gt = coco_ground_truth(self.records, self.class_names)
        self.reset()

    def reset(self) -> None:
        self.detections: dict[int, np.ndarray] = {}
        self.curves: dict = {}

    def update(self, outputs: dict, batch: dict) -> None:
        size = tuple(batch["image"].shape[2:])
        orig = batch["orig_size"].numpy()
        scales = batch["scale_factor"].numpy() if "scale_factor" in batch else None
        dets = postprocess(outputs["cls_scores"], outputs["reg_dists"], size, [tuple(o) for o in orig],
                           scale_factors=scales, **self.post)
        for im_id, d in zip(batch["im_id"].numpy().tolist(), dets):
            self.detections[int(im_id)] = d

    def compute(self) -> dict[str, float]:
        # an evaluation of the first N images (sensitivity, quick checks) is scored against their
        # ground truth only: the other images' objects would otherwise count as missed
        ids = set(self.detections) if len(self.detections) < len(self.records) else None
        gt = self.gt if ids is None else subset_ground_truth(self.gt, ids)
        metrics = coco_evaluate(gt, self.detections, keep=self.curves)
        n = len(self.class_names)
        metrics["VOC_mAP50"] = voc_evaluate(self.records, self.detections, n, image_ids=ids)
        metrics["VOC_mAP50_11pt"] = voc_evaluate(self.records, self.detections, n, eleven_point=True, image_ids=ids)
        return metrics

    def write_report(self, out_dir: str | Path, score_threshold: float = 0.3) -> list[Path]:
        """``pr_curve.png`` (after ``compute``) and ``overlay_*.jpg`` of the first evaluated images."""
        from .data import read_image
        from .report import overlay, plot_pr_curves

        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = []
        # no detections at all: precision is 0 at every recall
        precision = self.curves.get("precision", np.zeros((10, 101, len(self.class_names), 4, 3)))
        written.append(plot_pr_curves(precision, self.class_names, out / "pr_curve.png"))
        by_id = {rec.image_id: rec for rec in self.records}
        for im_id in sorted(self.detections)[: self.keep]:
            rec = by_id[im_id]
            image = overlay(read_image(rec.image), rec, self.detections[im_id], self.class_names, score_threshold)
            path = out / f"overlay_{rec.image.stem}.jpg"
            cv2.imwrite(str(path), image)
            written.append(path)
        return written
