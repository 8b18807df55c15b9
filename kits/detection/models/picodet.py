"""PP-PicoDet: ESNet backbone, CSP-PAN neck and PicoHead, built from nested config dicts."""

from __future__ import annotations

from typing import Mapping

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .. import pretrained as _bundled  # noqa: F401  (registers the bundled weight names)
from ..registry import BACKBONES, HEADS, MODELS, NECKS
from .layers import freeze_norm_stats

# PicoDet-S (legacy PaddleDetection release, COCO): the layout of the bundled weights.
PICODET_S_BACKBONE = {"type": "ESNet", "scale": 0.75}
PICODET_S_NECK = {"type": "CSPPAN", "out_channels": 96, "num_features": 4}
PICODET_S_HEAD = {"type": "PicoHead", "num_classes": 80, "in_channels": 96, "feat_channels": 96, "num_convs": 2}


@MODELS.register()
class PicoDet(nn.Layer):
    """PP-PicoDet detector; the defaults build PicoDet-S for 80 COCO classes.

    Batch layout of ``forward(batch)``:
        ``image``        [N, 3, H, W] float32, BGR, already normalised (``(x - mean) / std``);
                         H and W multiples of 32.
        ``gt_bbox``      [N, M, 4] float32 xyxy boxes in input pixels, padded to M per batch (train).
        ``gt_class``     [N, M] (or [N, M, 1]) int class ids, padded (train).
        ``pad_gt_mask``  [N, M] (or [N, M, 1]) 1 for real boxes, 0 for padding; all real if absent.

    Train mode returns ``{'loss', 'loss_vfl', 'loss_bbox', 'loss_dfl'}``; eval mode returns
    ``{'cls_scores': [N, H_l*W_l, C] sigmoid scores per level, 'reg_dists': [N, H_l*W_l, 4*(reg_max+1)]
    bin logits per level}``, the same tensors as the exported graph (see :meth:`export_forward`).

    Args:
        backbone, neck, head: component configs (``{'type': Name, **options}``).
        input_size: export / deploy input size (square side or (H, W)).
        pretrained: registered weight name or file, loaded after construction; tensors with another
            shape (the class-score convs when ``num_classes`` differs) keep their initialisation.
        init_classes: ``{class index: pretrained class index}``; when pretrained weights for another
            class count are loaded, these classes start from the pretrained class-score rows instead
            of fresh ones (e.g. a road-sign 'stop' class from COCO 'stop sign'). Configs give names,
            ``{stop: stop sign}``, which the detection task resolves against the label list.
        freeze_norm: normalise with the running statistics in train mode too (BatchNorm becomes a
            trainable per-channel affine). ``None``: frozen when ``pretrained`` is given. The bundled
            weights have BN folded into the convs, so nothing rescales activations: fine-tune them with
            AdamW (lr ~5e-4) and gradient clipping; Momentum SGD at lr 0.01 diverges.
    """

    def __init__(self, backbone: Mapping | None = None, neck: Mapping | None = None, head: Mapping | None = None,
                 input_size: int | tuple[int, int] = 416, pretrained: str | None = None,
                 freeze_norm: bool | None = None, init_classes: Mapping | None = None):
        super().__init__()
        self.init_classes = {int(k): int(v) for k, v in (init_classes or {}).items()}
        self.backbone = BACKBONES.build(backbone or PICODET_S_BACKBONE)
        neck = dict(neck or PICODET_S_NECK)
        neck.setdefault("in_channels", self.backbone.out_channels)
        self.neck = NECKS.build(neck)
        self.head = HEADS.build(head or PICODET_S_HEAD)
        self.input_size = (input_size, input_size) if isinstance(input_size, int) else tuple(input_size)
        self.load_report = None
        if pretrained:
            from kits.core.pretrained import load_into

            self.load_report = load_into(self, pretrained)
        if freeze_norm if freeze_norm is not None else bool(pretrained):
            freeze_norm_stats(self)

    def adapt_mismatched(self, state: Mapping) -> None:
        """Copy the ``init_classes`` rows of pretrained class-score convs that did not fit whole."""
        for key, value in state.items():
            if not key.startswith("head.cls_out.") or not self.init_classes:
                continue
            param = dict(self.named_parameters())[key]
            rows = param.numpy()
            for dst, src in self.init_classes.items():
                if dst >= rows.shape[0] or src >= value.shape[0]:
                    raise ValueError(f"init_classes {dst}: {src} is outside {key} ({rows.shape[0]} classes) "
                                     f"or the pretrained one ({value.shape[0]})")
                rows[dst] = value[src]
            param.set_value(rows)

    @property
    def num_classes(self) -> int:
        return self.head.num_classes

    def _raw(self, image):
        feats = self.neck(self.backbone(image))
        cls_logits, reg_dists = self.head(feats)
        return feats, cls_logits, reg_dists

    def forward(self, batch: Mapping):
        image = batch["image"]
        feats, cls_logits, reg_dists = self._raw(image)
        if not self.training:
            return {"cls_scores": [F.sigmoid(c) for c in cls_logits], "reg_dists": reg_dists}
        gt_bbox, gt_class = batch["gt_bbox"], batch["gt_class"]
        if gt_class.ndim == 3:
            gt_class = gt_class.squeeze(-1)
        mask = batch.get("pad_gt_mask")
        mask = paddle.ones(gt_class.shape, "float32") if mask is None else mask.reshape(gt_class.shape)
        points, strides = self.head.prior_points(feats)
        losses = self.head.loss(cls_logits, reg_dists, points, strides, gt_bbox, gt_class, mask)
        losses["loss"] = losses["loss_vfl"] + losses["loss_bbox"] + losses["loss_dfl"]
        return losses

    def export_forward(self, image):
        """Tensor-in / tensor-out graph: 4 sigmoid score maps then 4 bin-logit maps (ONNX order)."""
        _, cls_logits, reg_dists = self._raw(image)
        return tuple(F.sigmoid(c) for c in cls_logits) + tuple(reg_dists)

    def eval_outputs(self, outputs: list) -> dict:
        """The eval-mode outputs from the exported graph's outputs (score maps, then bin logits)."""
        levels = len(outputs) // 2
        return {"cls_scores": list(outputs[:levels]), "reg_dists": list(outputs[levels:])}

    def input_spec(self):
        h, w = self.input_size
        return [paddle.static.InputSpec([None, 3, h, w], "float32", "image")]
