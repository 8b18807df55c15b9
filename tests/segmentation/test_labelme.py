"""tools/labelme_to_mask.py on a tiny generated labelme file; the output loads as a dataset."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from kits.core.errors import DataError
from kits.segmentation.data import FileListSegmentation, labelme_to_masks

ROOT = Path(__file__).resolve().parents[2]


def _labelme(src: Path, embed: bool) -> None:
    src.mkdir(parents=True, exist_ok=True)
    image = np.full((40, 60, 3), 200, np.uint8)
    shapes = [{"label": "road", "points": [[0, 20], [59, 20], [59, 39], [0, 39]], "shape_type": "polygon"},
              {"label": "car", "points": [[10, 25], [19, 34]], "shape_type": "rectangle"},
              {"label": "road", "points": [[50, 5]], "shape_type": "point"}]
    doc = {"version": "5.0.1", "shapes": shapes, "imagePath": "a.jpg", "imageHeight": 40, "imageWidth": 60,
           "imageData": None}
    if embed:
        doc["imagePath"] = "missing.jpg"
        doc["imageData"] = base64.b64encode(cv2.imencode(".png", image)[1].tobytes()).decode()
    else:
        cv2.imwrite(str(src / "a.jpg"), image)
    (src / "a.json").write_text(json.dumps(doc))


@pytest.mark.parametrize("embed", [False, True])
def test_labelme_tool_writes_masks_and_a_list(tmp_path, embed):
    _labelme(tmp_path / "src", embed)
    proc = subprocess.run([sys.executable, "tools/labelme_to_mask.py", str(tmp_path / "src"), str(tmp_path / "out")],
                          cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout[proc.stdout.index("{"):])
    assert result["classes"] == ["_background_", "car", "road"] and result["images"] == 1
    assert result["skipped_shapes"] == 1  # the point
    mask = cv2.imread(str(tmp_path / "out" / "masks" / "a.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (40, 60) and mask[5, 5] == 0 and mask[22, 40] == 2
    assert (mask[25:35, 10:20] == 1).all() and mask[30, 25] == 2  # the car covers the road it was drawn after
    ds = FileListSegmentation(str(tmp_path / "out"), "train_list.txt", class_names="class_names.txt",
                              transforms=[{"type": "Normalize"}])
    assert ds.num_classes == 3 and ds[0]["label"].shape == (40, 60)


def test_labelme_unknown_label_is_an_error(tmp_path):
    _labelme(tmp_path / "src", embed=False)
    with pytest.raises(DataError, match="label 'car' is not among the class names"):
        labelme_to_masks(tmp_path / "src", tmp_path / "out", class_names=["road"])
