"""mIoU of the bundled ESPNet-CamVid weights on the CamVid val split, and parity with the original model.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/espnet_camvid_parity.py [--limit N]

Images are used at their native 480x360; 11 classes, label 11 (void) ignored; the prediction is
the argmax over all 12 outputs (a void prediction counts as a miss). Parity: pixel agreement and
sampled-logit difference against tests/fixtures/espnet_camvid_ref.npz (original PyTorch model).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CAMVID = ROOT.parent / "shared" / "datasets" / "camvid"
FIXTURE = ROOT / "tests" / "fixtures" / "espnet_camvid_ref.npz"
NUM_CLASSES = 11


def confusion(pred: np.ndarray, label: np.ndarray) -> np.ndarray:
    """[11, 12] counts of (label, prediction); void labels dropped, void predictions in the last column."""
    keep = label < NUM_CLASSES
    idx = label[keep].astype(np.int64) * (NUM_CLASSES + 1) + np.minimum(pred[keep], NUM_CLASSES)
    return np.bincount(idx, minlength=NUM_CLASSES * (NUM_CLASSES + 1)).reshape(NUM_CLASSES, NUM_CLASSES + 1)


def iou(conf: np.ndarray) -> np.ndarray:
    tp = np.diag(conf[:, :NUM_CLASSES])
    return tp / np.maximum(conf.sum(1) + conf[:, :NUM_CLASSES].sum(0) - tp, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=0, help="evaluate only the first N val images")
    args = parser.parse_args()
    import cv2
    import paddle

    from kits.segmentation.pretrained import CAMVID_CLASSES, build_pretrained, normalize

    if not CAMVID.is_dir():
        raise SystemExit(f"needs the CamVid data at {CAMVID}")
    pairs = [line.split() for line in (CAMVID / "val_list.txt").read_text().splitlines() if line.strip()]
    pairs = pairs[: args.limit] if args.limit else pairs
    model = build_pretrained("espnet_camvid")
    conf = np.zeros((NUM_CLASSES, NUM_CLASSES + 1), np.int64)
    preds, latency = {}, []
    for image_path, label_path in pairs:
        image = normalize(cv2.imread(str(CAMVID / image_path)), "espnet_camvid")[None]
        start = time.perf_counter()
        with paddle.no_grad():
            logits = model({"image": paddle.to_tensor(image)})["logits"].numpy()[0]
        latency.append(time.perf_counter() - start)
        preds[image_path] = logits
        conf += confusion(logits.argmax(0), cv2.imread(str(CAMVID / label_path), cv2.IMREAD_GRAYSCALE))
    per_class = iou(conf)
    result = {
        "dataset": f"CamVid val ({len(pairs)} images, 480x360, 11 classes, void ignored)",
        "model": "espnet_camvid (ESPNet p=2 q=8, 0.36M params)",
        "miou": round(float(per_class.mean()) * 100, 2),
        "pixel_accuracy": round(float(np.trace(conf[:, :NUM_CLASSES]) / conf.sum()) * 100, 2),
        "per_class_iou": {name: round(float(v) * 100, 2) for name, v in zip(CAMVID_CLASSES, per_class)},
        "latency_ms_p50_batch1_paddle_dygraph": round(float(np.median(latency)) * 1000, 1),
        **parity(preds),
    }
    print(json.dumps(result, indent=1))


def parity(preds: dict[str, np.ndarray]) -> dict:
    """Agreement with the original PyTorch model on the fixture's images (those evaluated here)."""
    ref = np.load(FIXTURE)
    names = [n for n in ref["names"] if n in preds]
    if not names:
        return {}
    agree, diff = [], 0.0
    for i, name in enumerate(ref["names"]):
        if name in preds:
            agree.append((preds[name].argmax(0) == ref["argmax"][i]).mean())
            sampled = preds[name][:, ref["sample_y"][i], ref["sample_x"][i]]
            diff = max(diff, float(np.abs(sampled - ref["sample_logits"][i]).max()))
    return {"reference_images": len(names), "reference_pixel_agreement": round(float(np.mean(agree)), 6),
            "reference_max_abs_logit_diff": diff}


if __name__ == "__main__":
    main()
