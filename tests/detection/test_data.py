"""Detection data: VOC/COCO parsing errors, box-safe transforms, batch padding."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from kits.core.errors import DataError
from kits.detection import COCODetection, VOCDetection
from kits.detection.data.transforms import Pad, RandomCrop, RandomExpand, RandomFlip, Resize

MINI = Path(__file__).resolve().parents[2] / "data" / "roadsign_mini"


def copy_subset(tmp_path, n=3):
    root = tmp_path / "voc"
    (root / "JPEGImages").mkdir(parents=True)
    (root / "Annotations").mkdir()
    lines = (MINI / "train.txt").read_text().splitlines()[:n]
    for line in lines:
        for rel in line.split():
            shutil.copy(MINI / rel, root / rel)
    (root / "train.txt").write_text("\n".join(lines) + "\n")
    shutil.copy(MINI / "label_list.txt", root / "label_list.txt")
    return root, lines


def test_voc_list_and_folder_forms_agree(tmp_path):
    root, lines = copy_subset(tmp_path)
    listed = VOCDetection(str(root), "train.txt")
    folder = VOCDetection(str(root))
    assert len(listed) == len(folder) == 3 and listed.num_classes == 4
    assert sorted(r.image.name for r in listed.records) == sorted(r.image.name for r in folder.records)
    sample = listed[0]
    assert sample["image"].ndim == 3 and sample["gt_bbox"].shape[1] == 4
    assert len(sample["gt_bbox"]) == len(sample["gt_class"]) == len(sample["difficult"])


def test_unknown_class_names_file_and_suggests(tmp_path):
    root, lines = copy_subset(tmp_path, 1)
    xml = root / lines[0].split()[1]
    text = xml.read_text()
    name = text.split("<name>")[1].split("</name>")[0]
    xml.write_text(text.replace(f"<name>{name}</name>", "<name>stopp</name>", 1))
    with pytest.raises(DataError, match=r"road\d+\.xml: unknown class name 'stopp'. Did you mean 'stop'"):
        VOCDetection(str(root), "train.txt")


def test_box_outside_image_names_file(tmp_path):
    root, lines = copy_subset(tmp_path, 1)
    xml = root / lines[0].split()[1]
    text = xml.read_text()
    xmax = text.split("<xmax>")[1].split("</xmax>")[0]
    xml.write_text(text.replace(f"<xmax>{xmax}</xmax>", "<xmax>5000</xmax>", 1))
    with pytest.raises(DataError, match=r"road\d+\.xml: box .* lies outside the"):
        VOCDetection(str(root), "train.txt")


def test_corrupt_and_missing_inputs(tmp_path):
    root, lines = copy_subset(tmp_path, 1)
    (root / lines[0].split()[0]).write_bytes(b"not a jpeg")
    ds = VOCDetection(str(root), "train.txt")
    with pytest.raises(DataError, match="cannot decode image .*road"):
        ds[0]
    with pytest.raises(DataError, match="list file not found"):
        VOCDetection(str(root), "nope.txt")
    (root / "bad.txt").write_text("only_one_column\n")
    with pytest.raises(DataError, match=r"bad.txt:1: expected 'image annotation'"):
        VOCDetection(str(root), "bad.txt")
    with pytest.raises(DataError, match="lists 4 classes but num_classes is 3"):
        VOCDetection(str(root), "train.txt", num_classes=3)


def test_coco_json(tmp_path):
    root = tmp_path / "coco"
    (root / "images").mkdir(parents=True)
    src = sorted((MINI / "JPEGImages").glob("*.jpg"))[0]
    shutil.copy(src, root / "images" / "a.jpg")
    ann = {"images": [{"id": 7, "file_name": "a.jpg", "width": 300, "height": 400}],
           "categories": [{"id": 3, "name": "sign"}, {"id": 9, "name": "light"}],
           "annotations": [{"id": 1, "image_id": 7, "category_id": 9, "bbox": [10, 20, 30, 40], "iscrowd": 0}]}
    (root / "ann.json").write_text(json.dumps(ann))
    ds = COCODetection(str(root), "ann.json")
    assert ds.class_names == ["sign", "light"]
    np.testing.assert_allclose(ds.records[0].boxes, [[10, 20, 40, 60]])
    assert ds.records[0].classes.tolist() == [1]


def make_sample():
    img = np.zeros((100, 200, 3), np.uint8)
    img[20:40, 50:90] = 255  # the box's content, to check that boxes follow pixels
    return {"image": img, "gt_bbox": np.array([[50, 20, 90, 40]], np.float32),
            "gt_class": np.array([1]), "difficult": np.array([False])}


def box_content(sample):
    x1, y1, x2, y2 = np.round(sample["gt_bbox"][0]).astype(int)
    return sample["image"][y1:y2, x1:x2].mean()


def test_transforms_keep_boxes_on_their_pixels():
    np.random.seed(0)
    flipped = RandomFlip(prob=1.0)(make_sample())
    np.testing.assert_allclose(flipped["gt_bbox"], [[110, 20, 150, 40]])
    assert box_content(flipped) == 255
    resized = Resize(target_size=[50, 100])(make_sample())
    np.testing.assert_allclose(resized["gt_bbox"], [[25, 10, 45, 20]])
    np.testing.assert_allclose(resized["scale_factor"], [0.5, 0.5])
    for seed in range(5):
        np.random.seed(seed)
        expanded = RandomExpand(prob=1.0, fill=(0, 0, 0))(make_sample())
        assert box_content(expanded) == 255
        cropped = RandomCrop(allow_no_crop=False)(make_sample())
        if len(cropped["gt_bbox"]):
            assert box_content(cropped) == 255


def test_collate_pads_boxes_and_masks():
    ds = VOCDetection(str(MINI), "valid.txt", transforms=[{"type": "Resize", "target_size": 320},
                                                           {"type": "Normalize"}])
    batch = ds.collate([ds[i] for i in range(4)])
    assert batch["image"].shape == (4, 3, 320, 320) and batch["image"].dtype == np.float32
    counts = [len(ds.records[i].boxes) for i in range(4)]
    assert batch["gt_bbox"].shape == (4, max(counts), 4)
    assert batch["pad_gt_mask"].sum(axis=1).tolist() == counts


def test_ratio_kept_resize_and_pad_batch_images_of_any_shape():
    sample = Pad(size=100, fill=(7, 7, 7))(Resize(target_size=100, keep_ratio=True)(make_sample()))
    assert sample["image"].shape == (100, 100, 3)
    np.testing.assert_allclose(sample["scale_factor"], [0.5, 0.5])
    assert (sample["image"][50:] == 7).all() and (sample["image"][:50] != 7).all()
    assert box_content(sample) == 255  # boxes did not move
    assert Pad(size_divisor=32)(make_sample())["image"].shape[:2] == (128, 224)
    with pytest.raises(ValueError, match="larger than the pad size"):
        Pad(size=64)(make_sample())
    ds = VOCDetection(str(MINI), "valid.txt", transforms=[{"type": "Resize", "target_size": 96, "keep_ratio": True},
                                                           {"type": "Pad", "size": 96}, {"type": "Normalize"}])
    assert ds.collate([ds[i] for i in range(3)])["image"].shape == (3, 3, 96, 96)
