"""Semantic segmentation kit: ESPNet / ESPNetv2 with bundled weights, PP-LiteSeg on ImageNet
backbones, file-list and folder datasets, confusion-matrix metrics."""

from .api import *  # noqa: F401,F403
from .api import __all__  # noqa: F401
