"""Segmentation datasets: file lists, folders, label remapping, clear errors; aligned transforms."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from kits.core.errors import ConfigError, DataError
from kits.segmentation.data import FileListSegmentation, FolderSegmentation
from kits.segmentation.registry import TRANSFORMS

NORM = [{"type": "Normalize"}]


def _write(root, name, image, mask):
    (root / "img").mkdir(exist_ok=True)
    (root / "ann").mkdir(exist_ok=True)
    cv2.imwrite(str(root / "img" / f"{name}.png"), image)
    cv2.imwrite(str(root / "ann" / f"{name}.png"), mask)
    return f"img/{name}.png ann/{name}.png"


@pytest.fixture
def tiny(tmp_path):
    """Two 12x16 images whose masks hold classes 0..2, a void value 3 and an ignore value 255."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(2):
        mask = rng.integers(0, 3, (12, 16)).astype(np.uint8)
        mask[0, :4], mask[1, :2] = 3, 255
        lines.append(_write(tmp_path, f"s{i}", rng.integers(0, 255, (12, 16, 3), dtype=np.uint8), mask))
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n")
    (tmp_path / "names.txt").write_text("a\nb\nc\n")
    return tmp_path


def test_file_list_remaps_and_keeps_full_size_labels_in_val(tiny):
    ds = FileListSegmentation(str(tiny), "train.txt", class_names="names.txt", label_map={3: 255},
                              transforms=[{"type": "Resize", "target_size": [6, 8]}] + NORM, mode="val")
    assert len(ds) == 2 and ds.num_classes == 3 and ds.class_names == ["a", "b", "c"]
    item = ds[0]
    assert item["image"].shape == (3, 6, 8) and item["image"].dtype == np.float32
    assert item["label"].shape == (12, 16) and item["label"].dtype == np.int64  # full size in val mode
    assert (item["label"][0, :4] == 255).all() and set(np.unique(item["label"])) <= {0, 1, 2, 255}
    batch = ds.collate([ds[0], ds[1]])
    assert batch["image"].shape == (2, 3, 6, 8) and batch["label"].shape == (2, 12, 16)
    assert batch["index"].tolist() == [0, 1]


def test_train_mode_transforms_the_label_too(tiny):
    ds = FileListSegmentation(str(tiny), str(tiny / "train.txt"), num_classes=3, label_map={3: 255},
                              transforms=[{"type": "Resize", "target_size": [6, 8]}] + NORM)
    assert ds[1]["label"].shape == (6, 8) and ds.class_names == ["class_0", "class_1", "class_2"]


def test_mask_value_outside_classes_names_file_and_value(tiny):
    ds = FileListSegmentation(str(tiny), "train.txt", num_classes=3, transforms=NORM)
    with pytest.raises(DataError, match=r"s0\.png has value 3 outside the 3 classes.*label_map"):
        ds[0]


def test_size_mismatch(tiny):
    cv2.imwrite(str(tiny / "ann" / "s1.png"), np.zeros((10, 16), np.uint8))
    ds = FileListSegmentation(str(tiny), "train.txt", num_classes=3, label_map={3: 255}, transforms=NORM)
    with pytest.raises(DataError, match=r"size mismatch.*s1\.png is 16x12.*is 16x10"):
        ds[1]


def test_unreadable_and_missing_files(tiny):
    (tiny / "img" / "s0.png").write_bytes(b"not a png")
    ds = FileListSegmentation(str(tiny), "train.txt", num_classes=3, label_map={3: 255}, transforms=NORM)
    with pytest.raises(DataError, match=r"cannot decode image .*s0\.png"):
        ds[0]
    (tiny / "ann" / "s1.png").unlink()
    with pytest.raises(DataError, match=r"train\.txt, line 2: mask not found: .*s1\.png"):
        FileListSegmentation(str(tiny), "train.txt", num_classes=3, transforms=NORM)
    with pytest.raises(DataError, match="file list not found"):
        FileListSegmentation(str(tiny), "nope.txt", num_classes=3, transforms=NORM)
    with pytest.raises(DataError, match="dataset root not found"):
        FileListSegmentation(str(tiny / "nowhere"), "train.txt", num_classes=3, transforms=NORM)


def test_bad_list_line_and_class_settings(tiny):
    (tiny / "bad.txt").write_text("img/s0.png ann/s0.png\n\nimg/s1.png\n")
    with pytest.raises(DataError, match=r"bad\.txt, line 3: expected 'image_path label_path'.*got 1"):
        FileListSegmentation(str(tiny), "bad.txt", num_classes=3, transforms=NORM)
    with pytest.raises(DataError, match="lists 3 classes but num_classes is 4"):
        FileListSegmentation(str(tiny), "train.txt", class_names="names.txt", num_classes=4, transforms=NORM)
    with pytest.raises(DataError, match="set num_classes or class_names"):
        FileListSegmentation(str(tiny), "train.txt", transforms=NORM)
    with pytest.raises(ConfigError, match="must end with Normalize"):
        FileListSegmentation(str(tiny), "train.txt", num_classes=3)


def test_folder_pairs(tiny):
    ds = FolderSegmentation(str(tiny), image_dir="img", mask_dir="ann", num_classes=3, label_map={3: 255},
                            transforms=NORM)
    assert len(ds) == 2 and ds[0]["label"].shape == (12, 16)
    (tiny / "img" / "extra.png").write_bytes((tiny / "img" / "s0.png").read_bytes())
    with pytest.raises(DataError, match=r"1 of 3 images under .* have no mask"):
        FolderSegmentation(str(tiny), image_dir="img", mask_dir="ann", num_classes=3, transforms=NORM)


def _aligned_sample(h=40, w=56):
    """An image whose colour encodes the class of each pixel, so alignment can be read back."""
    label = np.zeros((h, w), np.uint8)
    label[5:25, 10:30], label[20:38, 35:50] = 1, 2
    colors = np.array([[0, 0, 0], [0, 0, 250], [250, 0, 0]], np.uint8)
    return {"image": colors[label], "label": label}, colors


@pytest.mark.parametrize("steps", [
    [{"type": "Resize", "target_size": [80, 112], "interp": "nearest"}],
    [{"type": "ResizeStepScaling", "min_scale_factor": 0.5, "max_scale_factor": 2.0, "scale_step_size": 0.5}],
    [{"type": "RandomPaddingCrop", "crop_size": [64, 48], "im_padding_value": 0, "label_padding_value": 0}],
    [{"type": "RandomHorizontalFlip", "prob": 1.0}],
    [{"type": "ResizeStepScaling", "min_scale_factor": 1.0, "max_scale_factor": 1.0},
     {"type": "RandomPaddingCrop", "crop_size": 32}, {"type": "RandomHorizontalFlip"}],
])
def test_transforms_keep_image_and_mask_aligned(steps):
    for seed in range(5):
        np.random.seed(seed)
        sample, colors = _aligned_sample()
        for step in steps:
            sample = TRANSFORMS.build(step)(sample)
        image, label = np.asarray(sample["image"]), np.asarray(sample["label"])
        assert image.shape[:2] == label.shape
        valid = label != 255
        # nearest-neighbour masks: the colour at every labelled pixel is its class colour, up to
        # the interpolation blur at region borders of the (linearly resized) image
        match = (np.abs(image[valid].astype(int) - colors[label[valid]].astype(int)).max(1) < 60).mean()
        assert match > 0.93, (steps, seed, match)
        assert set(np.unique(label)) <= {0, 1, 2, 255}


def test_distort_changes_only_the_image_and_normalize_matches_pretrained():
    from kits.segmentation.pretrained import normalize

    np.random.seed(0)
    sample = {"image": np.random.default_rng(1).integers(0, 255, (8, 10, 3), dtype=np.uint8),
              "label": np.arange(80, dtype=np.uint8).reshape(8, 10)}
    label = sample["label"].copy()
    out = TRANSFORMS.build({"type": "RandomDistort", "brightness_prob": 1, "contrast_prob": 1,
                            "saturation_prob": 1, "hue_prob": 1})(dict(sample))
    assert np.array_equal(out["label"], label) and not np.array_equal(out["image"], sample["image"])
    norm = TRANSFORMS.build({"type": "Normalize", "channel_order": "BGR", "mean": [110.331, 108.409, 105.034],
                             "std": [72.125, 72.689, 69.903], "scale_after": 1 / 255})
    ours = norm({"image": sample["image"]})["image"]
    assert np.array_equal(ours, normalize(sample["image"], "espnet_camvid"))
    rgb = TRANSFORMS.build({"type": "Normalize", "mean": [1, 2, 3], "std": [2, 2, 2]})({"image": sample["image"]})
    np.testing.assert_allclose(rgb["image"][0], (sample["image"][..., 2] - 1.0) / 2)
    with pytest.raises(ConfigError, match="channel_order"):
        TRANSFORMS.build({"type": "Normalize", "channel_order": "rgb"})
