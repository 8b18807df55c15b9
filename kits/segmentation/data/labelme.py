"""labelme annotations (JSON polygons) -> class-id PNG masks, a class names file and a file list.

The output folder is a dataset root for ``FileListSegmentation``: ``images/``, ``masks/``,
``class_names.txt`` (background first) and the list file. Shapes are painted in file order, so
a later shape covers an earlier one where they overlap.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import shutil
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from kits.core.errors import DataError

log = logging.getLogger(__name__)
BACKGROUND = "_background_"


def _paint(mask: np.ndarray, shape: dict, value: int, where: str) -> bool:
    kind = shape.get("shape_type") or "polygon"
    points = np.asarray(shape.get("points", []), np.float64)
    if points.ndim != 2 or points.shape[1:] != (2,) or len(points) == 0:
        raise DataError(f"{where}: shape '{shape.get('label')}' has no valid points")
    pts = np.round(points).astype(np.int32)
    if kind == "polygon" and len(pts) >= 3:
        cv2.fillPoly(mask, [pts], int(value))
    elif kind == "rectangle" and len(pts) == 2:
        cv2.rectangle(mask, tuple(pts.min(0).tolist()), tuple(pts.max(0).tolist()), int(value), thickness=-1)
    elif kind == "circle" and len(pts) == 2:
        radius = int(round(float(np.linalg.norm(points[1] - points[0]))))
        cv2.circle(mask, tuple(pts[0].tolist()), radius, int(value), thickness=-1)
    else:
        return False
    return True


def _image_of(doc: dict, json_path: Path, out_images: Path) -> Path:
    """Copy (or decode from ``imageData``) the annotated image into ``out_images``."""
    src = json_path.parent / (doc.get("imagePath") or "")
    if doc.get("imagePath") and src.is_file():
        dst = out_images / f"{json_path.stem}{src.suffix.lower()}"
        shutil.copyfile(src, dst)
        return dst
    if doc.get("imageData"):
        data = np.frombuffer(base64.b64decode(doc["imageData"]), np.uint8)
        image = cv2.imdecode(data, cv2.IMREAD_COLOR)
        if image is None:
            raise DataError(f"{json_path}: imageData is not a decodable image")
        dst = out_images / f"{json_path.stem}.png"
        cv2.imwrite(str(dst), image)
        return dst
    raise DataError(f"{json_path}: image '{doc.get('imagePath')}' not found beside it and no imageData embedded")


def _load(json_path: Path) -> dict:
    try:
        return json.loads(json_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"cannot read labelme file {json_path}: {exc}") from None


def labelme_to_masks(src_dir: str | os.PathLike, out_dir: str | os.PathLike,
                     class_names: Sequence[str] | None = None, list_name: str = "train_list.txt") -> dict:
    """Convert every ``*.json`` in ``src_dir``; returns counts, class names and the list path.

    ``class_names`` fixes the order of the foreground classes (background is always 0); by
    default it is the sorted set of labels found.
    """
    src, out = Path(src_dir), Path(out_dir)
    files = sorted(src.glob("*.json"))
    if not files:
        raise DataError(f"no labelme .json files in {src}")
    docs = [(path, _load(path)) for path in files]
    found = sorted({str(s.get("label")) for _, d in docs for s in d.get("shapes", [])})
    names = [BACKGROUND] + [n for n in (class_names if class_names is not None else found) if n != BACKGROUND]
    ids = {name: i for i, name in enumerate(names)}
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "masks").mkdir(parents=True, exist_ok=True)
    lines, skipped = [], 0
    for path, doc in docs:
        image_path = _image_of(doc, path, out / "images")
        height, width = doc.get("imageHeight"), doc.get("imageWidth")
        if not height or not width:
            height, width = cv2.imread(str(image_path), cv2.IMREAD_COLOR).shape[:2]
        mask = np.zeros((int(height), int(width)), np.uint8 if len(names) <= 256 else np.uint16)
        for shape in doc.get("shapes", []):
            label = str(shape.get("label"))
            if label not in ids:
                raise DataError(f"{path}: label '{label}' is not among the class names {names[1:]}")
            skipped += not _paint(mask, shape, ids[label], str(path))
        mask_path = out / "masks" / f"{path.stem}.png"
        cv2.imwrite(str(mask_path), mask)
        lines.append(f"images/{image_path.name} masks/{mask_path.name}")
    if skipped:
        log.warning("skipped %d shapes that are not polygons, rectangles or circles", skipped)
    (out / "class_names.txt").write_text("\n".join(names) + "\n", encoding="utf-8")
    list_path = out / list_name
    list_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"images": len(lines), "classes": names, "list": str(list_path), "skipped_shapes": skipped}
