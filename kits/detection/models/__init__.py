"""Detection models; importing this package fills the kit's registries."""

from . import assigner, csp_pan, esnet, losses, pico_head, picodet  # noqa: F401  (registration)
from .picodet import PicoDet
from kits.deploy.detection_ops import multiclass_nms, postprocess

__all__ = ["PicoDet", "multiclass_nms", "postprocess"]
