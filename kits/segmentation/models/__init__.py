"""Segmentation models and the backbones they share, registered by explicit import."""

from kits.core.backbones import EfficientNetLite

from ..registry import BACKBONES, HEADS, LOSSES, MODELS
from .espnet import ESPNet, ESPNetEncoder
from .espnetv2 import ESPNetv2, ESPNetv2Encoder

BACKBONES.register(EfficientNetLite)

__all__ = ["BACKBONES", "HEADS", "LOSSES", "MODELS", "ESPNet", "ESPNetEncoder", "ESPNetv2", "ESPNetv2Encoder",
           "EfficientNetLite"]
