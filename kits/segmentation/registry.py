"""Component tables of the segmentation kit, filled by explicit imports in ``models/__init__.py``."""

from __future__ import annotations

from kits.core.registry import Registry

MODELS = Registry("segmentation model")
BACKBONES = Registry("segmentation backbone")
HEADS = Registry("segmentation head")
LOSSES = Registry("segmentation loss")


@LOSSES.register
class CrossEntropyLoss:
    """Pixel-wise softmax cross-entropy over ``logits [N,C,H,W]`` and ``label [N,H,W]``.

    ``weight`` is an optional per-class weight list; pixels equal to ``ignore_index`` do not count.
    """

    def __init__(self, weight: list[float] | None = None, ignore_index: int = 255):
        self.weight = None if weight is None else [float(w) for w in weight]
        self.ignore_index = int(ignore_index)

    def __call__(self, logits, label):
        import paddle
        import paddle.nn.functional as F

        weight = None if self.weight is None else paddle.to_tensor(self.weight, dtype=logits.dtype)
        return F.cross_entropy(logits, label.astype("int64"), weight=weight,
                               ignore_index=self.ignore_index, axis=1, reduction="mean")
