"""init_classes: dataset classes that the pretrained model also knows start from its class rows."""

from pathlib import Path

import numpy as np
import pytest

from kits.core.config import load_config
from kits.core.errors import ConfigError
from kits.core.pretrained import load_into, load_state
from kits.detection.task import DetectionTask

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs/detection/picodet_s_416_roadsign_mini.yml"
MINI = [f"train_dataset.root={ROOT}/data/roadsign_mini", f"val_dataset.root={ROOT}/data/roadsign_mini"]


def test_named_classes_take_the_coco_rows():
    cfg = load_config(CONFIG, MINI + ["model.init_classes={trafficlight: traffic light, stop: stop sign}"])
    task = DetectionTask()
    task.validate(cfg)
    model = task.build_model(cfg)
    assert model.init_classes == {2: 9, 3: 11}  # label_list: speedlimit crosswalk trafficlight stop
    load_into(model, "picodet_s_416_coco")
    coco = load_state("picodet_s_416_coco")
    for level in range(4):
        ours = model.head.cls_out[level].weight.numpy()
        theirs = coco[f"head.cls_out.{level}.weight"]
        np.testing.assert_array_equal(ours[2], theirs[9])
        np.testing.assert_array_equal(ours[3], theirs[11])
        assert not np.array_equal(ours[0], theirs[0])  # speedlimit has no COCO class: fresh
        np.testing.assert_array_equal(model.head.cls_out[level].bias.numpy()[3], coco[f"head.cls_out.{level}.bias"][11])


def test_unknown_class_name_is_named():
    cfg = load_config(CONFIG, MINI + ["model.init_classes={stop: stop sing}"])
    with pytest.raises(ConfigError, match="'stop sing' is not one of the COCO classes. Did you mean 'stop sign'"):
        DetectionTask().build_model(cfg)
