"""Segmentation datasets: PaddleSeg-style file lists and image/mask folder pairs.

Items are dicts: ``image`` (CHW float32 after Normalize), ``label`` (HW int64 class ids,
``ignore_index`` for pixels that do not count) and ``index``. In ``train`` mode the transforms
see image and label together; in ``val`` mode they see the image only and the label keeps its
full size, so evaluation scores the prediction resized back to the original resolution.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import cv2
import numpy as np

from kits.core.data import default_collate
from kits.core.errors import ConfigError, DataError

from ..registry import DATASETS, TRANSFORMS

MODES = ("train", "val")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def read_image(path: Path) -> np.ndarray:
    """BGR uint8 HWC; a missing or undecodable file is a DataError naming it."""
    if not Path(path).is_file():
        raise DataError(f"image not found: {path}")
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise DataError(f"cannot decode image {path} (corrupt or not an image)")
    return image


def read_label(path: Path) -> np.ndarray:
    """Class ids as a 2-D integer array; palette PNGs give their indices, not their colours."""
    if not Path(path).is_file():
        raise DataError(f"mask not found: {path}")
    try:
        from PIL import Image

        with Image.open(path) as im:
            label = np.asarray(im)
    except ImportError:
        label = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    except Exception as exc:  # PIL raises several types for broken files
        raise DataError(f"cannot decode mask {path} ({exc})") from None
    if label is None:
        raise DataError(f"cannot decode mask {path} (corrupt or not an image)")
    if label.ndim == 3:
        if label.shape[2] >= 3 and np.array_equal(label[..., 0], label[..., 1]) and \
                np.array_equal(label[..., 0], label[..., 2]):
            label = label[..., 0]
        else:
            raise DataError(f"mask {path} has {label.shape[2]} colour channels; masks must hold one class id per "
                            "pixel (a grayscale or palette PNG)")
    if not np.issubdtype(label.dtype, np.integer):
        raise DataError(f"mask {path} has {label.dtype} pixels; class ids must be integers")
    return label


def resolve_class_names(root: Path, class_names, num_classes: int | None) -> list[str]:
    """Names from a file (one per line, relative to ``root``) or a list; else ``class_0..``."""
    if isinstance(class_names, str):
        path = root / class_names
        if not path.is_file():
            raise DataError(f"class names file not found: {path}")
        names = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        where = str(path)
    elif class_names is not None:
        names, where = [str(n) for n in class_names], "class_names"
    elif num_classes is None:
        raise DataError(f"{root}: set num_classes or class_names (a file of class names, one per line)")
    else:
        return [f"class_{i}" for i in range(num_classes)]
    if not names:
        raise DataError(f"{where}: no class names")
    if num_classes is not None and num_classes != len(names):
        raise DataError(f"{where} lists {len(names)} classes but num_classes is {num_classes}")
    return names


class SegmentationDataset:
    """(image, mask) pairs with label remapping, value checks and transforms."""

    def __init__(self, pairs: list[tuple[Path, Path]], class_names: list[str], ignore_index: int = 255,
                 label_map: Mapping[int, int] | None = None, transforms: Sequence[Mapping] = (),
                 mode: str = "train", where: str = ""):
        if mode not in MODES:
            raise DataError(f"dataset mode must be one of {MODES}, got '{mode}'")
        if not pairs:
            raise DataError(f"{where}: no images")
        self.pairs, self.class_names, self.mode, self.where = pairs, list(class_names), mode, where
        self.ignore_index = int(ignore_index)
        self.lut = _label_lut(label_map, where)
        self.transforms = [TRANSFORMS.build(t) for t in transforms]
        if not self.transforms or type(self.transforms[-1]).__name__ != "Normalize":
            raise ConfigError(f"{where}: the transforms must end with Normalize (it turns the 8-bit BGR image into "
                              "the float CHW input the model expects, with the mean/std its weights were trained with)")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.pairs)

    def load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """The raw BGR image and the remapped, checked label of sample ``index``."""
        image_path, label_path = self.pairs[index]
        image, label = read_image(image_path), read_label(label_path)
        if image.shape[:2] != label.shape[:2]:
            raise DataError(f"size mismatch: image {image_path} is {image.shape[1]}x{image.shape[0]} but mask "
                            f"{label_path} is {label.shape[1]}x{label.shape[0]} (width x height)")
        if self.lut is not None:
            label = self.lut[label] if label.max() < len(self.lut) else _remap_slow(label, self.lut)
        self._check_values(label, label_path)
        return image, label

    def _check_values(self, label: np.ndarray, path: Path) -> None:
        small = label.dtype.kind == "u" and label.dtype.itemsize <= 2  # bincount is much faster than unique
        values = np.flatnonzero(np.bincount(label.ravel())) if small else np.unique(label)
        bad = [int(v) for v in values if (v < 0 or v >= self.num_classes) and v != self.ignore_index]
        if bad:
            raise DataError(f"mask {path} has value {bad[0]}{' (and ' + str(bad[1:6])[1:-1] + ')' if len(bad) > 1 else ''}"
                            f" outside the {self.num_classes} classes 0..{self.num_classes - 1} and not ignore_index "
                            f"{self.ignore_index}; fix the mask or map it with label_map (e.g. {{{bad[0]}: "
                            f"{self.ignore_index}}})")

    def __getitem__(self, index: int) -> dict:
        image, label = self.load(index)
        if self.mode == "train":
            sample = {"image": image, "label": label}
            for transform in self.transforms:
                sample = transform(sample)
        else:
            sample = {"image": image}
            for transform in self.transforms:
                sample = transform(sample)
            sample["label"] = label
        sample["label"] = np.ascontiguousarray(sample["label"], dtype=np.int64)
        sample["index"] = np.int64(index)
        return sample

    def collate(self, samples: list[dict]) -> dict:
        batch = default_collate(samples)
        if isinstance(batch["image"], list) and self.mode == "train":
            raise DataError(f"{self.where}: training images in a batch have different sizes; add a Resize or "
                            "RandomPaddingCrop transform")
        return batch


def _label_lut(label_map: Mapping[int, int] | None, where: str) -> np.ndarray | None:
    if not label_map:
        return None
    items = {}
    for key, value in dict(label_map).items():
        try:
            k, v = int(key), int(value)
        except (TypeError, ValueError):
            raise DataError(f"{where}: label_map must map integers to integers, got {key!r}: {value!r}") from None
        if not (0 <= k < 65536 and 0 <= v < 65536):
            raise DataError(f"{where}: label_map entry {k}: {v} is outside 0..65535")
        items[k] = v
    lut = np.arange(max(256, max(items) + 1), dtype=np.int64)
    for k, v in items.items():
        lut[k] = v
    return lut.astype(np.uint16 if lut.max() > 255 else np.uint8)


def _remap_slow(label: np.ndarray, lut: np.ndarray) -> np.ndarray:
    out = label.copy()
    inside = label < len(lut)
    out[inside] = lut[label[inside]]
    return out


def _list_pairs(root: Path, list_path: Path, separator: str | None) -> list[tuple[Path, Path]]:
    if not list_path.is_file():
        raise DataError(f"file list not found: {list_path}")
    pairs = []
    for lineno, line in enumerate(list_path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        parts = line.strip().split(separator)
        if len(parts) != 2:
            raise DataError(f"{list_path}, line {lineno}: expected 'image_path label_path' (2 fields separated by "
                            f"{'whitespace' if separator is None else repr(separator)}), got {len(parts)}: {line!r}")
        image, label = root / parts[0].strip(), root / parts[1].strip()
        for kind, path in (("image", image), ("mask", label)):
            if not path.is_file():
                raise DataError(f"{list_path}, line {lineno}: {kind} not found: {path}")
        pairs.append((image, label))
    return pairs


@DATASETS.register
class FileListSegmentation(SegmentationDataset):
    """PaddleSeg-style file list: ``image_path label_path`` per line, both relative to ``root``.

    Args:
        root: dataset folder. list: the list file (relative to ``root``, or absolute).
        class_names: a file of class names (one per line, relative to ``root``) or a list; without
            it ``num_classes`` gives ``class_0..``.
        ignore_index: the label value that does not count (loss and metrics).
        label_map: ``{old: new}`` applied to mask values first, e.g. ``{11: 255}`` for CamVid void.
        separator: between the two paths (default: any whitespace).
        mode: ``train`` or ``val``; set by the task from the config section.
    """

    def __init__(self, root: str, list: str, class_names: str | Sequence[str] | None = None,
                 num_classes: int | None = None, ignore_index: int = 255, label_map: dict | None = None,
                 transforms: Sequence[Mapping] = (), separator: str | None = None, mode: str = "train"):
        base = Path(root)
        if not base.is_dir():
            raise DataError(f"dataset root not found: {base}")
        list_path = base / list
        names = resolve_class_names(base, class_names, num_classes)
        super().__init__(_list_pairs(base, list_path, separator), names, ignore_index, label_map, transforms,
                         mode, str(list_path))


@DATASETS.register
class FolderSegmentation(SegmentationDataset):
    """Images under ``root/image_dir`` with masks of the same relative path and stem under
    ``root/mask_dir`` (suffix ``mask_suffix``); sub-folders are searched too. Other args as
    ``FileListSegmentation``."""

    def __init__(self, root: str, image_dir: str = "images", mask_dir: str = "masks", mask_suffix: str = ".png",
                 class_names: str | Sequence[str] | None = None, num_classes: int | None = None,
                 ignore_index: int = 255, label_map: dict | None = None, transforms: Sequence[Mapping] = (),
                 mode: str = "train"):
        base = Path(root)
        images_root, masks_root = base / image_dir, base / mask_dir
        for path in (images_root, masks_root):
            if not path.is_dir():
                raise DataError(f"folder not found: {path}")
        images = sorted(p for p in images_root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        pairs = [(p, masks_root / p.relative_to(images_root).with_suffix(mask_suffix)) for p in images]
        missing = [str(m) for _, m in pairs if not m.is_file()]
        if missing:
            raise DataError(f"{len(missing)} of {len(pairs)} images under {images_root} have no mask, e.g. "
                            f"{', '.join(missing[:3])}")
        names = resolve_class_names(base, class_names, num_classes)
        super().__init__(pairs, names, ignore_index, label_map, transforms, mode, str(images_root))


def write_file_list(pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]], path: str | os.PathLike,
                    root: str | os.PathLike) -> Path:
    """Write ``image label`` lines relative to ``root`` (the inverse of FileListSegmentation)."""
    base, path = Path(root), Path(path)
    lines = [f"{Path(i).relative_to(base).as_posix()} {Path(m).relative_to(base).as_posix()}" for i, m in pairs]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
