"""Segmentation models, losses and the backbones they share, registered by explicit import."""

from kits.core.backbones import EfficientNetLite

from ..registry import BACKBONES, HEADS, LOSSES, MODELS
from . import losses  # noqa: F401  (registers the losses first: models build theirs on construction)
from .base import InferenceConfig, SegModel
from .espnet import ESPNet, ESPNetEncoder
from .espnetv2 import ESPNetv2, ESPNetv2Encoder
from .backbones import EfficientNetLite0
from .pp_liteseg import PPLiteSeg

BACKBONES.register(EfficientNetLite)

__all__ = ["BACKBONES", "HEADS", "LOSSES", "MODELS", "SegModel", "InferenceConfig", "ESPNet", "ESPNetEncoder",
           "ESPNetv2", "ESPNetv2Encoder", "EfficientNetLite", "EfficientNetLite0", "PPLiteSeg"]
