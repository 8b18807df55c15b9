"""Segmentation data: importing this package fills the DATASETS and TRANSFORMS registries."""

from . import transforms  # noqa: F401  (registration)
from .datasets import (FileListSegmentation, FolderSegmentation, SegmentationDataset, read_image, read_label,
                       write_file_list)
from .labelme import labelme_to_masks

__all__ = ["FileListSegmentation", "FolderSegmentation", "SegmentationDataset", "read_image", "read_label",
           "write_file_list", "labelme_to_masks"]
