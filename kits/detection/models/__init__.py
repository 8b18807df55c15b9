"""Detection models; importing this package fills the kit's registries."""

from kits.core.backbones import EfficientNetLite0

from ..registry import BACKBONES
from . import assigner, csp_pan, esnet, losses, pico_head, picodet  # noqa: F401  (registration)

BACKBONES.register(EfficientNetLite0)  # ImageNet features for detectors that do not start from COCO
from .picodet import PicoDet
from kits.deploy.detection_ops import multiclass_nms, postprocess

__all__ = ["PicoDet", "multiclass_nms", "postprocess"]
