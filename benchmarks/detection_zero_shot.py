"""Zero-shot check of the bundled COCO PicoDet-S on road signs: AP50 of 'stop sign' and 'traffic light'.

The kit's PicoDet with `picodet_s_416_coco` (80 COCO classes) is evaluated on the road-sign valid split
with the two classes COCO also has (stop -> 'stop sign', trafficlight -> 'traffic light'); boxes of
the other road-sign classes are left out. AP50 is given twice: VOC-style (area under the
interpolated precision-recall curve, which reproduces the reference figures) and COCO-style (101
recall points, pycocotools). Prints one JSON object.

    python benchmarks/detection_zero_shot.py [--size 416] [--interp linear|area] [--root ../shared/datasets/roadsign_voc]

The figures move by about a point with the resize filter alone (bilinear, the kit's default, or
pixel-area averaging), so the reference is reproduced to within that preprocessing choice.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GLOG_minloglevel", "2")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

from kits.core.data import build_loader  # noqa: E402
from kits.core.trainer import evaluate_model  # noqa: E402
from kits.detection import PicoDet, VOCDetection, coco_names  # noqa: E402
from kits.detection.metrics import DetectionMetric, voc_class_aps  # noqa: E402

INTERP = {"linear": cv2.INTER_LINEAR, "area": cv2.INTER_AREA}
MAPPING = {"stop": "stop sign", "trafficlight": "traffic light"}
# VOC AP50 of the reference ONNX export (../shared/datasets/SOURCES-detection.md)
REFERENCE = {416: {"stop_sign": 87.6, "traffic_light": 84.5}, 320: {"stop_sign": 71.4, "traffic_light": 71.0}}


def coco_view(dataset: VOCDetection) -> VOCDetection:
    """Relabel the dataset in COCO class ids, keeping only classes COCO has."""
    names = coco_names()
    for rec in dataset.records:
        keep = np.array([dataset.class_names[c] in MAPPING for c in rec.classes], bool)
        rec.classes = np.array([names.index(MAPPING[dataset.class_names[c]]) for c in rec.classes[keep]], np.int64)
        rec.boxes, rec.difficult = rec.boxes[keep], rec.difficult[keep]
    dataset.class_names = names
    return dataset


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=416, choices=(320, 416))
    ap.add_argument("--root", default=str(ROOT.parent / "shared/datasets/roadsign_voc"))
    ap.add_argument("--list", default="valid.txt")
    ap.add_argument("--interp", default="linear", choices=("linear", "area"), help="resize filter")
    args = ap.parse_args()
    data = coco_view(VOCDetection(args.root, args.list, transforms=[
        {"type": "Resize", "target_size": args.size, "interp": INTERP[args.interp]}, {"type": "Normalize"}], empty_policy="keep"))
    model = PicoDet(input_size=args.size, pretrained=f"picodet_s_{args.size}_coco")
    model.eval()
    start = time.perf_counter()
    metric = DetectionMetric(data)
    metrics = evaluate_model(model, build_loader(data, None, 8, data.collate, 0), metric)
    voc = voc_class_aps(data.records, metric.detections, len(data.class_names))
    names = data.class_names
    print(json.dumps({
        "benchmark": "detection_zero_shot", "model": f"picodet_s_{args.size}_coco", "dataset": f"roadsign_voc/{args.list}",
        "interp": args.interp,
        "images": len(data),
        "voc_AP50": {"stop_sign": round(100 * voc[names.index("stop sign")], 1),
                     "traffic_light": round(100 * voc[names.index("traffic light")], 1)},
        "coco_AP50": {"stop_sign": round(100 * metrics["AP50/stop sign"], 1),
                      "traffic_light": round(100 * metrics["AP50/traffic light"], 1)},
        "reference_voc_AP50": REFERENCE[args.size],
        "seconds": round(time.perf_counter() - start, 1),
    }))


if __name__ == "__main__":
    main()
