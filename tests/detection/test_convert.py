"""YOLO txt and labelme JSON -> COCO JSON that COCODetection reads back with the same boxes."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from kits.core.errors import DataError
from kits.detection import COCODetection, VOCDetection
from kits.detection.data.convert import labelme_to_coco, write_coco, yolo_to_coco

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "data/roadsign_mini"


@pytest.fixture
def voc():
    return VOCDetection(str(DATA), "valid.txt", label_list="label_list.txt")


def test_yolo_round_trip_keeps_the_boxes(tmp_path, voc):
    images = tmp_path / "images"
    images.mkdir()
    originals = {}
    for rec in voc.records[:3]:
        shutil.copy(rec.image, images / rec.image.name)
        w, h = rec.width, rec.height
        lines = [f"{c} {(b[0] + b[2]) / 2 / w:.6f} {(b[1] + b[3]) / 2 / h:.6f} {(b[2] - b[0]) / w:.6f} {(b[3] - b[1]) / h:.6f}"
                 for c, b in zip(rec.classes, rec.boxes)]
        (images / rec.image.with_suffix(".txt").name).write_text("\n".join(lines) + "\n")
        originals[rec.image.name] = (rec.boxes, rec.classes)
    write_coco(yolo_to_coco(images, voc.class_names), tmp_path / "ann.json")
    data = COCODetection(str(tmp_path), "ann.json", image_dir="images")
    assert data.class_names == voc.class_names and len(data.records) == 3
    for rec in data.records:
        boxes, classes = originals[rec.image.name]
        np.testing.assert_allclose(rec.boxes, boxes, atol=0.05)
        np.testing.assert_array_equal(rec.classes, classes)


def test_yolo_errors_name_file_and_line(tmp_path, voc):
    images = tmp_path / "images"
    images.mkdir()
    shutil.copy(voc.records[0].image, images / "a.jpg")
    (images / "a.txt").write_text("0 0.5 0.5 0.2 0.2\n7 0.5 0.5 0.2 0.2\n")
    with pytest.raises(DataError, match=r"a.txt:2: class 7 is outside the 4 class names"):
        yolo_to_coco(images, voc.class_names)


def _labelme(tmp_path, voc, label="stop"):
    rec = voc.records[0]
    shutil.copy(rec.image, tmp_path / "a.jpg")
    shapes = [{"label": label, "shape_type": "rectangle", "points": [[10, 20], [60, 80]]},
              {"label": "speedlimit", "shape_type": "polygon", "points": [[100, 50], [140, 40], [130, 90]]}]
    (tmp_path / "a.json").write_text(json.dumps({"imagePath": "a.jpg", "imageWidth": rec.width,
                                                 "imageHeight": rec.height, "shapes": shapes}))


def test_labelme_rectangles_and_polygons(tmp_path, voc):
    _labelme(tmp_path, voc)
    out = tmp_path / "ann.json"
    proc = subprocess.run([sys.executable, str(ROOT / "tools/to_coco.py"), "labelme", str(tmp_path), "--out", str(out)],
                          capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["boxes"] == 2
    data = COCODetection(str(tmp_path), "ann.json", image_dir=".")
    assert data.class_names == ["speedlimit", "stop"]
    rec = data.records[0]
    np.testing.assert_allclose(sorted(rec.boxes.tolist()), [[10, 20, 60, 80], [100, 40, 140, 90]])


def test_labelme_unknown_label_is_named(tmp_path, voc):
    _labelme(tmp_path, voc, label="stpo")
    with pytest.raises(DataError, match="unknown label 'stpo'. Did you mean 'stop'"):
        labelme_to_coco(tmp_path, voc.class_names)
