"""OpenCV/numpy segmentation transforms that keep the image and its mask aligned.

A sample is a dict: ``image`` HWC BGR uint8 and, in training, ``label`` HW class ids. Geometry
is applied to both (masks always with nearest-neighbour sampling); photometric changes touch the
image only. Sizes are ``[height, width]``. Randomness comes from ``np.random``, which the data
loader seeds per sample, so augmentation is reproducible with any number of workers and after
a resume.
"""

from __future__ import annotations

from typing import Sequence

import cv2
import numpy as np

from kits.core.errors import ConfigError

from ..registry import TRANSFORMS

INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "area": cv2.INTER_AREA}


def _size(value, name: str) -> tuple[int, int]:
    size = (value, value) if isinstance(value, int) else tuple(value)
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ConfigError(f"{name} must be a positive int or [height, width], got {value!r}")
    return size


def resize_sample(sample: dict, height: int, width: int, interp: int = cv2.INTER_LINEAR) -> dict:
    sample["image"] = cv2.resize(np.ascontiguousarray(sample["image"]), (width, height), interpolation=interp)
    if "label" in sample:
        label = np.ascontiguousarray(sample["label"])
        sample["label"] = cv2.resize(label, (width, height), interpolation=cv2.INTER_NEAREST)
    return sample


@TRANSFORMS.register
class Resize:
    """Resize to ``target_size`` (int or [height, width]); ``keep_ratio`` fits inside it instead.
    ``interp``: nearest, linear, cubic or area (images; masks always use nearest)."""

    def __init__(self, target_size: int | Sequence[int] = 512, keep_ratio: bool = False, interp: str = "linear"):
        self.size = _size(target_size, "Resize.target_size")
        if interp not in INTERPOLATIONS:
            raise ConfigError(f"Resize.interp must be one of {sorted(INTERPOLATIONS)}, got '{interp}'")
        self.keep_ratio, self.interp = keep_ratio, INTERPOLATIONS[interp]

    def __call__(self, sample: dict) -> dict:
        h, w = sample["image"].shape[:2]
        th, tw = self.size
        if self.keep_ratio:
            scale = min(th / h, tw / w)
            th, tw = max(int(round(h * scale)), 1), max(int(round(w * scale)), 1)
        return resize_sample(sample, th, tw, self.interp)


@TRANSFORMS.register
class ResizeStepScaling:
    """Random rescale by a factor in [min, max], drawn on a grid of ``scale_step_size`` (0: continuous)."""

    def __init__(self, min_scale_factor: float = 0.75, max_scale_factor: float = 1.25, scale_step_size: float = 0.25):
        if not 0 < min_scale_factor <= max_scale_factor:
            raise ConfigError(f"ResizeStepScaling needs 0 < min_scale_factor <= max_scale_factor, got "
                              f"{min_scale_factor}, {max_scale_factor}")
        self.low, self.high, self.step = float(min_scale_factor), float(max_scale_factor), float(scale_step_size)

    def __call__(self, sample: dict) -> dict:
        if self.low == self.high:
            scale = self.low
        elif self.step <= 0:
            scale = np.random.uniform(self.low, self.high)
        else:
            steps = int(round((self.high - self.low) / self.step)) + 1
            scale = self.low + self.step * np.random.randint(steps)
            scale = min(scale, self.high)
        h, w = sample["image"].shape[:2]
        return resize_sample(sample, max(int(round(h * scale)), 1), max(int(round(w * scale)), 1))


@TRANSFORMS.register
class RandomPaddingCrop:
    """Pad to at least ``crop_size`` ([height, width]; image with ``im_padding_value``, mask with
    ``label_padding_value``, at the bottom/right), then crop a random window of that size."""

    def __init__(self, crop_size: int | Sequence[int] = 512, im_padding_value: float | Sequence[float] = 127.5,
                 label_padding_value: int = 255):
        self.size = _size(crop_size, "RandomPaddingCrop.crop_size")
        fill = [im_padding_value] * 3 if isinstance(im_padding_value, (int, float)) else list(im_padding_value)
        self.fill, self.label_fill = fill, int(label_padding_value)

    def __call__(self, sample: dict) -> dict:
        ch, cw = self.size
        img = np.ascontiguousarray(sample["image"])
        h, w = img.shape[:2]
        pad_h, pad_w = max(ch - h, 0), max(cw - w, 0)
        if pad_h or pad_w:
            fill = [round(v) for v in self.fill] if img.dtype == np.uint8 else self.fill
            sample["image"] = cv2.copyMakeBorder(img, 0, pad_h, 0, pad_w, cv2.BORDER_CONSTANT, value=fill)
            if "label" in sample:
                sample["label"] = cv2.copyMakeBorder(np.ascontiguousarray(sample["label"]), 0, pad_h, 0, pad_w,
                                                     cv2.BORDER_CONSTANT, value=self.label_fill)
            h, w = h + pad_h, w + pad_w
        y0, x0 = np.random.randint(0, h - ch + 1), np.random.randint(0, w - cw + 1)
        sample["image"] = sample["image"][y0:y0 + ch, x0:x0 + cw]
        if "label" in sample:
            sample["label"] = sample["label"][y0:y0 + ch, x0:x0 + cw]
        return sample


@TRANSFORMS.register
class RandomHorizontalFlip:
    def __init__(self, prob: float = 0.5):
        self.prob = float(prob)

    def __call__(self, sample: dict) -> dict:
        if np.random.rand() < self.prob:
            sample["image"] = sample["image"][:, ::-1]
            if "label" in sample:
                sample["label"] = sample["label"][:, ::-1]
        return sample


@TRANSFORMS.register
class RandomDistort:
    """Photometric jitter of the image only: brightness, contrast and saturation factors drawn from
    ``1 ± range`` and a hue shift of up to ``hue_range`` degrees, each applied with its probability."""

    def __init__(self, brightness_range: float = 0.4, brightness_prob: float = 0.5, contrast_range: float = 0.4,
                 contrast_prob: float = 0.5, saturation_range: float = 0.4, saturation_prob: float = 0.5,
                 hue_range: float = 18, hue_prob: float = 0.5):
        self.ranges = (brightness_range, contrast_range, saturation_range)
        self.probs = (brightness_prob, contrast_prob, saturation_prob)
        self.hue_range, self.hue_prob = float(hue_range), float(hue_prob)

    def __call__(self, sample: dict) -> dict:
        img = sample["image"].astype(np.float32)
        factors = [np.random.uniform(1 - r, 1 + r) if np.random.rand() < p else None
                   for r, p in zip(self.ranges, self.probs)]
        brightness, contrast, saturation = factors
        if brightness is not None:
            img *= brightness
        if contrast is not None:
            gray_mean = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).mean()
            img = gray_mean + contrast * (img - gray_mean)
        if saturation is not None:
            gray = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY).astype(np.float32)
            img = gray[..., None] + saturation * (img - gray[..., None])
        if np.random.rand() < self.hue_prob:
            hsv = cv2.cvtColor(np.clip(img, 0, 255).astype(np.uint8), cv2.COLOR_BGR2HSV)
            shift = int(round(np.random.uniform(-self.hue_range, self.hue_range) / 2))  # OpenCV hue is 0..179
            hsv[..., 0] = ((hsv[..., 0].astype(np.int32) + shift) % 180).astype(np.uint8)
            img = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR).astype(np.float32)
        sample["image"] = np.clip(img, 0, 255).astype(np.uint8)
        return sample


@TRANSFORMS.register
class Normalize:
    """``(image - mean) / std * scale_after`` per channel on 0-255 pixels, then HWC -> CHW float32.

    ``channel_order`` is the order ``mean``/``std`` refer to and the network expects: images are
    read as BGR and flipped to RGB when it says ``RGB``. ``scale_after`` supports recipes that
    divide after standardising (the ESPNet weights use ``1/255``).
    """

    def __init__(self, mean: Sequence[float] = (127.5, 127.5, 127.5), std: Sequence[float] = (127.5, 127.5, 127.5),
                 channel_order: str = "RGB", scale_after: float = 1.0):
        if channel_order not in ("RGB", "BGR"):
            raise ConfigError(f"Normalize.channel_order must be RGB or BGR, got '{channel_order}'")
        if len(mean) != 3 or len(std) != 3 or any(s == 0 for s in std):
            raise ConfigError(f"Normalize needs 3 means and 3 non-zero stds, got {list(mean)} / {list(std)}")
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
        self.channel_order, self.scale_after = channel_order, np.float32(scale_after)

    def __call__(self, sample: dict) -> dict:
        img = sample["image"].astype(np.float32)
        if self.channel_order == "RGB":
            img = img[:, :, ::-1]
        img = (img - self.mean) / self.std
        if self.scale_after != 1:
            img = img * self.scale_after
        sample["image"] = np.ascontiguousarray(img.transpose(2, 0, 1))
        return sample

    def spec(self) -> dict:
        """The preprocessing as plain values (for a deploy spec)."""
        return {"type": "Normalize", "mean": self.mean.tolist(), "std": self.std.tolist(),
                "channel_order": self.channel_order, "scale_after": float(self.scale_after)}


__all__ = ["Resize", "ResizeStepScaling", "RandomPaddingCrop", "RandomHorizontalFlip", "RandomDistort", "Normalize",
           "resize_sample"]
