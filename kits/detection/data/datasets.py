"""Detection datasets (VOC XML, COCO JSON) and their batch collation."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from kits.core.data import default_collate
from kits.core.errors import DataError

from ..registry import DATASETS, TRANSFORMS
from .records import Record, apply_empty_policy, coco_records, read_label_list, voc_records

log = logging.getLogger(__name__)


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 HWC; a missing or undecodable file is a DataError naming it."""
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot decode image {path} (corrupt or not an image)")
    return image


class DetectionDataset:
    """Records + per-sample transforms + batch transforms; items are dicts of numpy arrays.

    ``batch_transforms`` run in ``collate``: those marked ``per_batch`` (e.g. BatchRandomResize) see
    the whole list of samples, the others are applied to each sample after them.
    """

    def __init__(self, records: list[Record], class_names: list[str], transforms: Sequence[Mapping] = (),
                 batch_transforms: Sequence[Mapping] = (), empty_policy: str = "skip", where: str = ""):
        self.class_names = list(class_names)
        self.records = apply_empty_policy(records, empty_policy, where)
        if not self.records:
            raise DataError(f"{where}: no images")
        self.transforms = [TRANSFORMS.build(t) for t in transforms]
        self.batch_transforms = [TRANSFORMS.build(t) for t in batch_transforms]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def raw_sample(self, index: int) -> dict:
        rec = self.records[index]
        image = read_image(rec.image)
        return {"image": image, "gt_bbox": rec.boxes.copy(), "gt_class": rec.classes.copy(),
                "difficult": rec.difficult.copy(), "im_id": np.int64(index),
                "orig_size": np.array(image.shape[:2], np.float32)}

    def __getitem__(self, index: int) -> dict:
        sample = self.raw_sample(index)
        for transform in self.transforms:
            extra = getattr(transform, "extra_samples", 0)  # Mosaic mixes in other images
            if extra:
                sample["extra"] = [self.raw_sample(int(i)) for i in np.random.randint(len(self), size=extra)]
            sample = transform(sample)
        sample.setdefault("scale_factor", np.ones(2, np.float32))
        return sample

    def collate(self, samples: list[dict]) -> dict:
        """Batch transforms, then stack images and pad boxes to the batch's largest count."""
        for transform in self.batch_transforms:
            samples = transform(samples) if getattr(transform, "per_batch", False) else [transform(s) for s in samples]
        most = max(1, max(len(s["gt_bbox"]) for s in samples))
        boxes = np.zeros((len(samples), most, 4), np.float32)
        classes = np.zeros((len(samples), most), np.int64)
        mask = np.zeros((len(samples), most), np.float32)
        for i, s in enumerate(samples):
            m = len(s["gt_bbox"])
            boxes[i, :m], classes[i, :m], mask[i, :m] = s["gt_bbox"], s["gt_class"], 1.0
        rest = default_collate([{k: s[k] for k in ("image", "im_id", "orig_size", "scale_factor")} for s in samples])
        if isinstance(rest["image"], list):
            raise DataError("images in a batch have different sizes; add a Resize (or BatchRandomResize) transform, or Resize with keep_ratio followed by Pad")
        return {**rest, "gt_bbox": boxes, "gt_class": classes, "pad_gt_mask": mask}


@DATASETS.register
class VOCDetection(DetectionDataset):
    """Pascal VOC XML annotations.

    Args:
        root: dataset folder. list: PaddleDetection list file (``JPEGImages/x.jpg Annotations/x.xml``
            per line) relative to ``root``; without it, every ``Annotations/*.xml`` with its image.
        label_list: class names file relative to ``root`` (one per line).
        empty_policy: images without boxes are ``skip``ped, kept as background (``keep``) or an ``error``.
    """

    def __init__(self, root: str, list: str | None = None, label_list: str = "label_list.txt",
                 transforms: Sequence[Mapping] = (), batch_transforms: Sequence[Mapping] = (),
                 empty_policy: str = "skip", num_classes: int | None = None):
        base = Path(root)
        if not base.is_dir():
            raise DataError(f"dataset root not found: {base}")
        names = read_label_list(base / label_list)
        if num_classes is not None and num_classes != len(names):
            raise DataError(f"{base / label_list} lists {len(names)} classes but num_classes is {num_classes}")
        where = str(base / list) if list else str(base)
        super().__init__(voc_records(base, list, names), names, transforms, batch_transforms, empty_policy, where)


@DATASETS.register
class COCODetection(DetectionDataset):
    """COCO detection JSON (``bbox`` as x, y, w, h); category ids are mapped to 0..C-1 in id order."""

    def __init__(self, root: str, ann_file: str, image_dir: str = "images", transforms: Sequence[Mapping] = (),
                 batch_transforms: Sequence[Mapping] = (), empty_policy: str = "skip",
                 num_classes: int | None = None):
        base = Path(root)
        records, names = coco_records(base, ann_file, image_dir)
        if num_classes is not None and num_classes != len(names):
            raise DataError(f"{base / ann_file} has {len(names)} categories but num_classes is {num_classes}")
        super().__init__(records, names, transforms, batch_transforms, empty_policy, str(base / ann_file))
