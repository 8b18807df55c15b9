"""Annotation records: VOC XML and COCO JSON parsed into one in-memory form, with clear errors."""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kits.core.errors import DataError, did_you_mean

log = logging.getLogger(__name__)
EMPTY_POLICIES = ("skip", "keep", "error")


@dataclass
class Record:
    """One image and its boxes (xyxy, pixels), class ids and difficult flags."""

    image: Path
    boxes: np.ndarray      # [M, 4] float32
    classes: np.ndarray    # [M] int64
    difficult: np.ndarray  # [M] bool
    width: int
    height: int
    image_id: int = 0


def read_label_list(path: Path) -> list[str]:
    if not path.is_file():
        raise DataError(f"label list not found: {path}")
    names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(set(names)) != len(names):
        raise DataError(f"{path}: duplicate class names")
    return names


def check_boxes(boxes: np.ndarray, width: int, height: int, where: str, tolerance: float = 2.0) -> np.ndarray:
    """Clip boxes that overflow the image by a few pixels; a box far outside is an error."""
    if len(boxes) == 0:
        return boxes
    outside = (boxes[:, 0] < -tolerance) | (boxes[:, 1] < -tolerance) | \
              (boxes[:, 2] > width + tolerance) | (boxes[:, 3] > height + tolerance)
    if outside.any():
        bad = boxes[outside][0].tolist()
        raise DataError(f"{where}: box {bad} lies outside the {width}x{height} image")
    if ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        bad = boxes[(boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])][0].tolist()
        raise DataError(f"{where}: degenerate box {bad} (xmax <= xmin or ymax <= ymin)")
    boxes = boxes.copy()
    boxes[:, [0, 2]] = boxes[:, [0, 2]].clip(0, width)
    boxes[:, [1, 3]] = boxes[:, [1, 3]].clip(0, height)
    return boxes


def parse_voc_xml(xml_path: Path, image_path: Path, names: list[str]) -> Record:
    if not xml_path.is_file():
        raise DataError(f"annotation file not found: {xml_path}")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as exc:
        raise DataError(f"{xml_path}: invalid XML ({exc})") from None
    size = root.find("size")
    width = int(float(size.findtext("width", "0"))) if size is not None else 0
    height = int(float(size.findtext("height", "0"))) if size is not None else 0
    boxes, classes, difficult = [], [], []
    for obj in root.iter("object"):
        name = (obj.findtext("name") or "").strip()
        if name not in names:
            raise DataError(f"{xml_path}: unknown class name '{name}'.{did_you_mean(name, names)} "
                            f"Classes in the label list: {', '.join(names)}")
        bb = obj.find("bndbox")
        boxes.append([float(bb.findtext(k)) for k in ("xmin", "ymin", "xmax", "ymax")])
        classes.append(names.index(name))
        difficult.append(obj.findtext("difficult", "0").strip() == "1")
    boxes_arr = np.asarray(boxes, np.float32).reshape(-1, 4)
    if width and height:
        boxes_arr = check_boxes(boxes_arr, width, height, str(xml_path))
    return Record(image_path, boxes_arr, np.asarray(classes, np.int64), np.asarray(difficult, bool), width, height)


def voc_records(root: Path, list_file: str | None, names: list[str]) -> list[Record]:
    """Records from a PaddleDetection list (``img.jpg ann.xml`` per line) or JPEGImages/Annotations."""
    pairs = []
    if list_file:
        path = root / list_file
        if not path.is_file():
            raise DataError(f"list file not found: {path}")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise DataError(f"{path}:{number}: expected 'image annotation', got {line!r}")
            pairs.append((root / parts[0], root / parts[1]))
    else:
        ann_dir = root / "Annotations"
        if not ann_dir.is_dir():
            raise DataError(f"{root}: no list file given and no Annotations/ folder")
        for xml in sorted(ann_dir.glob("*.xml")):
            match = sorted((root / "JPEGImages").glob(xml.stem + ".*"))
            if not match:
                raise DataError(f"{xml}: no image {xml.stem}.* in {root / 'JPEGImages'}")
            pairs.append((match[0], xml))
    records = [parse_voc_xml(xml, img, names) for img, xml in pairs]
    for i, rec in enumerate(records):
        rec.image_id = i
    return records


def coco_records(root: Path, ann_file: str, image_dir: str) -> tuple[list[Record], list[str]]:
    """Records and class names from a COCO detection JSON (category ids mapped to 0..C-1)."""
    path = root / ann_file
    if not path.is_file():
        raise DataError(f"COCO annotation file not found: {path}")
    data = json.loads(path.read_text(encoding="utf-8"))
    cats = sorted(data.get("categories", []), key=lambda c: c["id"])
    cat_index = {c["id"]: i for i, c in enumerate(cats)}
    per_image: dict[int, list] = {img["id"]: [] for img in data["images"]}
    for ann in data.get("annotations", []):
        if ann["category_id"] not in cat_index:
            raise DataError(f"{path}: annotation {ann.get('id')} has unknown category_id {ann['category_id']}")
        per_image.setdefault(ann["image_id"], []).append(ann)
    records = []
    for img in data["images"]:
        anns = [a for a in per_image[img["id"]] if not a.get("iscrowd", 0)]
        boxes = np.asarray([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2], a["bbox"][1] + a["bbox"][3]]
                            for a in anns], np.float32).reshape(-1, 4)
        boxes = check_boxes(boxes, img["width"], img["height"], f"{path} image {img['file_name']}")
        records.append(Record(root / image_dir / img["file_name"], boxes,
                              np.asarray([cat_index[a["category_id"]] for a in anns], np.int64),
                              np.zeros(len(anns), bool), img["width"], img["height"], img["id"]))
    return records, [c["name"] for c in cats]


def apply_empty_policy(records: list[Record], policy: str, where: str) -> list[Record]:
    if policy not in EMPTY_POLICIES:
        raise DataError(f"empty_policy must be one of {', '.join(EMPTY_POLICIES)}, got '{policy}'")
    empty = [r for r in records if len(r.boxes) == 0]
    if empty and policy == "error":
        raise DataError(f"{where}: {len(empty)} images have no boxes (first: {empty[0].image}); "
                        "set empty_policy: skip or keep")
    if empty and policy == "skip":
        log.info("%s: skipping %d images without boxes", where, len(empty))
        return [r for r in records if len(r.boxes)]
    return records
