"""Object detection kit: PP-PicoDet with bundled COCO weights, VOC/COCO data, COCO metrics."""

from .api import *  # noqa: F401,F403
from .api import __all__  # noqa: F401
