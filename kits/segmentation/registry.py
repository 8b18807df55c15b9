"""Component tables of the segmentation kit, filled by explicit imports in ``models/__init__.py``
and ``data/__init__.py``."""

from __future__ import annotations

from kits.core.registry import Registry

MODELS = Registry("segmentation model")
BACKBONES = Registry("segmentation backbone")
HEADS = Registry("segmentation head")
LOSSES = Registry("segmentation loss")
DATASETS = Registry("segmentation dataset")
TRANSFORMS = Registry("segmentation transform")

__all__ = ["MODELS", "BACKBONES", "HEADS", "LOSSES", "DATASETS", "TRANSFORMS"]
