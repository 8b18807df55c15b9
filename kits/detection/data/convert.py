"""Converters from common annotation formats into one COCO detection JSON.

YOLO txt: one ``class cx cy w h`` line per box, normalised to the image size, in a ``.txt`` beside
each image (or in a parallel ``labels/`` folder). labelme JSON: rectangles (and polygons, taken by
their bounding box) with a ``label`` each. The JSON that comes out is read by ``COCODetection``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import cv2

from kits.core.errors import DataError, did_you_mean

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def _coco(images: list[dict], annotations: list[dict], names: Sequence[str]) -> dict:
    return {"images": images, "annotations": annotations,
            "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}


def _size(path: Path) -> tuple[int, int]:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot read image {path}")
    return image.shape[1], image.shape[0]


def _box(x1: float, y1: float, x2: float, y2: float, width: int, height: int, where: str) -> list[float]:
    x1, x2 = sorted((max(0.0, x1), min(float(width), x2)))
    y1, y2 = sorted((max(0.0, y1), min(float(height), y2)))
    if x2 - x1 <= 0 or y2 - y1 <= 0:
        raise DataError(f"{where}: box ({x1:.1f}, {y1:.1f}, {x2:.1f}, {y2:.1f}) is empty inside the "
                        f"{width}x{height} image")
    return [round(x1, 2), round(y1, 2), round(x2 - x1, 2), round(y2 - y1, 2)]


def yolo_to_coco(image_dir: str | Path, class_names: Sequence[str], label_dir: str | Path | None = None) -> dict:
    """COCO dict from YOLO txt labels; ``file_name`` is relative to ``image_dir``."""
    image_dir = Path(image_dir)
    label_dir = Path(label_dir) if label_dir else None
    images, annotations = [], []
    for path in sorted(p for p in image_dir.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        rel = path.relative_to(image_dir)
        txt = (label_dir / rel).with_suffix(".txt") if label_dir else path.with_suffix(".txt")
        width, height = _size(path)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": rel.as_posix(), "width": width, "height": height})
        lines = txt.read_text(encoding="utf-8").splitlines() if txt.is_file() else []
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            parts = line.split()
            where = f"{txt}:{n}"
            if len(parts) != 5:
                raise DataError(f"{where}: expected 'class cx cy w h', got {line.strip()!r}")
            cls, cx, cy, w, h = int(parts[0]), *map(float, parts[1:])
            if not 0 <= cls < len(class_names):
                raise DataError(f"{where}: class {cls} is outside the {len(class_names)} class names")
            box = _box((cx - w / 2) * width, (cy - h / 2) * height, (cx + w / 2) * width, (cy + h / 2) * height,
                       width, height, where)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": cls + 1,
                                "bbox": box, "area": round(box[2] * box[3], 2), "iscrowd": 0})
    if not images:
        raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) under {image_dir}")
    return _coco(images, annotations, class_names)


def labelme_to_coco(json_dir: str | Path, class_names: Sequence[str] | None = None) -> dict:
    """COCO dict from labelme files (rectangles; polygons by their bounding box); ``file_name``
    is the ``imagePath`` of each file relative to ``json_dir``. Class names default to the sorted
    labels found."""
    json_dir = Path(json_dir)
    files = sorted(json_dir.rglob("*.json"))
    if not files:
        raise DataError(f"no labelme .json files under {json_dir}")
    docs = [(f, json.loads(f.read_text(encoding="utf-8"))) for f in files]
    found = sorted({s["label"] for _, d in docs for s in d.get("shapes", [])})
    names = list(class_names) if class_names else found
    images, annotations = [], []
    for f, doc in docs:
        image_path = (f.parent / doc["imagePath"]).resolve()
        width, height = int(doc.get("imageWidth") or 0), int(doc.get("imageHeight") or 0)
        if not (width and height):
            width, height = _size(image_path)
        image_id = len(images) + 1
        images.append({"id": image_id, "file_name": Path(image_path).relative_to(json_dir.resolve()).as_posix(),
                       "width": width, "height": height})
        for k, shape in enumerate(doc.get("shapes", [])):
            where = f"{f} shape {k}"
            if shape["label"] not in names:
                raise DataError(f"{where}: unknown label '{shape['label']}'.{did_you_mean(shape['label'], names)} "
                                f"Known: {', '.join(names)}")
            xs, ys = [p[0] for p in shape["points"]], [p[1] for p in shape["points"]]
            box = _box(min(xs), min(ys), max(xs), max(ys), width, height, where)
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": names.index(shape["label"]) + 1, "bbox": box,
                                "area": round(box[2] * box[3], 2), "iscrowd": 0})
    return _coco(images, annotations, names)


def write_coco(coco: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(coco, indent=1), encoding="utf-8")
    return path
