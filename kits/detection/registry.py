"""The detection kit's component tables; filled by the explicit imports in ``models/__init__.py``
and ``data/__init__.py``."""

from kits.core.registry import Registry

MODELS = Registry("model")
BACKBONES = Registry("backbone")
NECKS = Registry("neck")
HEADS = Registry("head")
LOSSES = Registry("loss")
ASSIGNERS = Registry("assigner")
DATASETS = Registry("dataset")
TRANSFORMS = Registry("transform")

__all__ = ["MODELS", "BACKBONES", "NECKS", "HEADS", "LOSSES", "ASSIGNERS", "DATASETS", "TRANSFORMS"]
