"""What every segmentation model shares: the loss it owns and how it is evaluated.

A model implements ``export_forward(image) -> logits`` at input resolution (and, with auxiliary
heads, ``train_logits(image) -> [main, aux...]``). This base class turns those into the kit
contract: ``forward(batch)`` returns the losses in train mode and ``{'logits': ...}`` in eval
mode, where ``test_config`` (a key of the model config) selects multi-scale, flip and
sliding-window inference.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from kits.core.errors import ConfigError, did_you_mean

from .losses import build_loss


@dataclass
class InferenceConfig:
    """Evaluation-time inference.

    scales: the image is resized by each factor and the softmax scores are averaged.
    flip: also run the horizontally flipped image.
    slide: ``{crop_size: [h, w], stride: [h, w]}`` runs windows over large images and averages
    the overlaps; absent, the whole image goes through at once.
    """

    scales: list = field(default_factory=lambda: [1.0])
    flip: bool = False
    slide: dict | None = None

    @property
    def plain(self) -> bool:
        return list(self.scales) == [1.0] and not self.flip and not self.slide

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, where: str = "model.test_config") -> "InferenceConfig":
        data = dict(data or {})
        names = [f.name for f in dataclasses.fields(cls)]
        for key in data:
            if key not in names:
                raise ConfigError(f"unknown key '{where}.{key}'.{did_you_mean(key, names)} Valid keys: {', '.join(names)}")
        tc = cls(**data)
        if not isinstance(tc.scales, (list, tuple)) or not tc.scales or \
                not all(isinstance(s, (int, float)) and s > 0 for s in tc.scales):
            raise ConfigError(f"'{where}.scales' must be a list of positive numbers, got {tc.scales!r}")
        if not isinstance(tc.flip, bool):
            raise ConfigError(f"'{where}.flip' must be true or false, got {tc.flip!r}")
        if tc.slide is not None:
            tc.slide = _parse_slide(tc.slide, f"{where}.slide")
        return tc


def _parse_slide(slide: Any, where: str) -> dict:
    if not isinstance(slide, Mapping) or set(slide) != {"crop_size", "stride"}:
        raise ConfigError(f"'{where}' must be {{crop_size: [h, w], stride: [h, w]}}, got {slide!r}")
    out = {}
    for key in ("crop_size", "stride"):
        value = slide[key]
        value = [value, value] if isinstance(value, int) else value
        if not (isinstance(value, (list, tuple)) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value)):
            raise ConfigError(f"'{where}.{key}' must be a positive int or [h, w], got {slide[key]!r}")
        out[key] = list(value)
    if any(s > c for s, c in zip(out["stride"], out["crop_size"])):
        raise ConfigError(f"'{where}.stride' {out['stride']} must not exceed crop_size {out['crop_size']} (gaps)")
    return out


class SegModel(nn.Layer):
    """Base of the kit's models.

    Args:
        num_classes: classes of the data (what the model is trained and scored on).
        void_output: the network also predicts a void class as an extra last channel (the
            bundled ESPNet weights were trained that way); a pixel predicted void is a miss.
        loss: a LOSSES config applied to every output; ``aux_weights`` scale auxiliary outputs.
        test_config: see ``InferenceConfig``.
    """

    def __init__(self, num_classes: int, void_output: bool = False, loss: dict | None = None,
                 test_config: dict | None = None, aux_weights: Sequence[float] = ()):
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.out_channels = self.num_classes + int(bool(void_output))
        self.loss_fn = build_loss(loss)
        self.test_config = InferenceConfig.parse(test_config)
        self.aux_weights = [float(w) for w in aux_weights]

    def export_forward(self, image):
        raise NotImplementedError

    def train_logits(self, image) -> list:
        """The main logits first, then any auxiliary ones (all at input size)."""
        return [self.export_forward(image)]

    def forward(self, batch: dict) -> dict:
        image = batch["image"]
        if self.training:
            return self.losses(self.train_logits(image), batch["label"])
        if isinstance(image, (list, tuple)):  # different sizes in one batch
            return {"logits": [self.infer(im.unsqueeze(0))[0] for im in image]}
        return {"logits": self.infer(image)}

    def losses(self, outputs: list, label) -> dict:
        main = self.loss_fn(outputs[0], label)
        out = {"loss": main}
        if len(outputs) > 1:
            aux = sum(w * self.loss_fn(o, label) for w, o in zip(self.aux_weights, outputs[1:]))
            out = {"loss": main + aux, "main_loss": main, "aux_loss": aux}
        return out

    def input_spec(self, height: int | None = None, width: int | None = None) -> list:
        return [paddle.static.InputSpec([None, 3, height, width], "float32", "image")]

    def eval_outputs(self, outputs: list) -> dict:
        """The eval-mode outputs from the exported graph's outputs (logits at input size, without
        the test-time augmentation of ``test_config``)."""
        return {"logits": outputs[0]}

    # -- evaluation-time inference -----------------------------------------------------------
    def infer(self, image):
        """Logits ``[N, C, H, W]`` at the input size; with test-time augmentation these are the
        log of the averaged softmax scores (their argmax is the prediction)."""
        tc = self.test_config
        if tc.plain:
            return self.export_forward(image)
        height, width = image.shape[2], image.shape[3]
        total, count = None, 0
        for scale in tc.scales:
            size = [max(int(round(height * scale)), 1), max(int(round(width * scale)), 1)]
            x = image if scale == 1 else F.interpolate(image, size=size, mode="bilinear", align_corners=False)
            for flip in ((False, True) if tc.flip else (False,)):
                xi = x.flip(axis=[3]) if flip else x
                logits = self._slide(xi) if tc.slide else self.export_forward(xi)
                if flip:
                    logits = logits.flip(axis=[3])
                if scale != 1:
                    logits = F.interpolate(logits, size=[height, width], mode="bilinear", align_corners=False)
                prob = F.softmax(logits, axis=1)
                total = prob if total is None else total + prob
                count += 1
        return paddle.log(paddle.clip(total / count, min=1e-12))

    def _slide(self, image):
        """Average the logits of overlapping ``crop_size`` windows placed every ``stride``."""
        (ch, cw), (sh, sw) = self.test_config.slide["crop_size"], self.test_config.slide["stride"]
        height, width = image.shape[2], image.shape[3]
        if height <= ch and width <= cw:
            return self.export_forward(image)
        rows = _starts(height, ch, sh)
        cols = _starts(width, cw, sw)
        total = paddle.zeros([image.shape[0], self.out_channels, height, width], dtype="float32")
        hits = paddle.zeros([1, 1, height, width], dtype="float32")
        for y in rows:
            for x in cols:
                y1, x1 = min(y + ch, height), min(x + cw, width)
                logits = self.export_forward(image[:, :, y:y1, x:x1])
                total[:, :, y:y1, x:x1] += logits
                hits[:, :, y:y1, x:x1] += 1
        return total / hits


def _starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts covering ``[0, length)``; the last window is pushed back to end at the border."""
    if length <= crop:
        return [0]
    starts = list(range(0, length - crop + 1, stride))
    if starts[-1] + crop < length:
        starts.append(length - crop)
    return starts


__all__ = ["SegModel", "InferenceConfig"]
