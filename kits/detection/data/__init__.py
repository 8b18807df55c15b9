"""Detection data: importing this package fills the DATASETS and TRANSFORMS registries."""

from . import transforms  # noqa: F401  (registration)
from .datasets import COCODetection, DetectionDataset, VOCDetection, read_image

__all__ = ["COCODetection", "DetectionDataset", "VOCDetection", "read_image"]
