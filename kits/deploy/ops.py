"""Pre- and post-processing ops named in ``deploy.yml``, in numpy and OpenCV only.

Pre-processing ops map a sample dict to a sample dict. A sample starts as ``{'path': ...}``,
``{'image': BGR HWC uint8 array}`` or ``{input name: array}``; image ops keep their metadata
(``orig_shape``, ``resized_shape``, ``scale_factor``, ``input_shape``) beside the pixels so that
post-processing can map results back. Post-processing ops read the model outputs of one sample
(batch axis removed) from a :class:`PostContext` and write JSON-friendly entries to its ``result``.

Kit-specific ops live in their own module in this package, register themselves with
``@PREPROCESS.register`` / ``@POSTPROCESS.register``, and are enabled by one import line at the
end of this file.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

import cv2
import numpy as np

from .errors import InputError, SpecError, did_you_mean


class OpTable:
    """A flat name -> op class table for one pipeline kind."""

    def __init__(self, kind: str):
        self.kind, self._ops = kind, {}

    def register(self, cls: type) -> type:
        if cls.__name__ in self._ops:
            raise KeyError(f"{self.kind} op '{cls.__name__}' is already registered")
        self._ops[cls.__name__] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._ops)

    def build(self, cfg: dict, **context) -> Callable:
        """``context`` (see CONTEXT_ARGS) goes to the ops whose constructor takes it."""
        kwargs = dict(cfg)
        name = kwargs.pop("type", None)
        if name not in self._ops:
            raise SpecError(f"unknown {self.kind} op '{name}'.{did_you_mean(name, self._ops)} "
                            f"Valid {self.kind} ops: {', '.join(self.names())}")
        cls = self._ops[name]
        accepted = set(inspect.signature(cls).parameters) - set(CONTEXT_ARGS)
        for key in kwargs:
            if key not in accepted:
                raise SpecError(f"{self.kind} op '{name}' has no option '{key}'.{did_you_mean(key, accepted)} "
                                f"Valid options: {', '.join(sorted(accepted)) or '(none)'}")
        wanted = inspect.signature(cls).parameters
        return cls(**kwargs, **{k: v for k, v in context.items() if k in wanted})


PREPROCESS = OpTable("preprocess")
POSTPROCESS = OpTable("postprocess")


# Given by the runtime, never written in deploy.yml: ``base_dir`` is the model directory (ops
# that read files exported beside the model, e.g. a tokenizer's vocab, resolve them there).
CONTEXT_ARGS = ("base_dir",)


def build_pipeline(cfgs: list[dict], table: OpTable, **context) -> list[Callable]:
    unknown = set(context) - set(CONTEXT_ARGS)
    if unknown:
        raise TypeError(f"unknown pipeline context {sorted(unknown)}; known: {', '.join(CONTEXT_ARGS)}")
    return [table.build(cfg, **context) for cfg in cfgs or []]


@dataclass
class PostContext:
    outputs: dict[str, np.ndarray]   # one sample's raw outputs, batch axis removed, by output name
    sample: dict[str, Any]           # the pre-processed sample and its metadata
    labels: list[str] | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def get(self, source: str | None) -> np.ndarray:
        if source is None:
            return next(iter(self.outputs.values()))
        if source not in self.outputs:
            raise SpecError(f"post-processing reads output '{source}' but the model outputs "
                            f"{list(self.outputs)}.{did_you_mean(source, self.outputs)}")
        return self.outputs[source]

    def label_name(self, index: int) -> str | None:
        return self.labels[index] if self.labels and 0 <= index < len(self.labels) else None


# -- pre-processing -------------------------------------------------------------------------
INTERPOLATIONS = {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
                  "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}


@PREPROCESS.register
class DecodeImage:
    """Read ``path`` (or take a BGR ``image`` array) as HWC uint8, RGB when ``to_rgb``."""

    def __init__(self, to_rgb: bool = True):
        self.to_rgb = to_rgb

    def __call__(self, sample: dict) -> dict:
        image = sample.get("image")
        if image is None:
            if "path" not in sample:
                raise InputError(f"this model takes images; got a sample with keys {sorted(sample)}")
            image = cv2.imread(str(sample["path"]), cv2.IMREAD_COLOR)
            if image is None:
                raise InputError(f"cannot read '{sample['path']}' as an image")
        image = np.asarray(image)
        if image.ndim == 2:
            image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
        if image.ndim != 3 or image.shape[2] != 3:
            raise InputError(f"expected an HxWx3 image, got an array of shape {image.shape}")
        if self.to_rgb:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        h, w = image.shape[:2]
        return {**sample, "image": image, "orig_shape": (h, w), "resized_shape": (h, w),
                "scale_factor": (1.0, 1.0), "input_shape": (h, w)}


@PREPROCESS.register
class Resize:
    """Resize to ``size`` (int or [h, w]); ``keep_ratio`` fits the image inside it instead."""

    def __init__(self, size: int | list[int], keep_ratio: bool = False, interp: str = "linear"):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if interp not in INTERPOLATIONS:
            raise SpecError(f"Resize interp '{interp}' is not one of {', '.join(INTERPOLATIONS)}."
                            f"{did_you_mean(interp, INTERPOLATIONS)}")
        self.keep_ratio, self.interp = keep_ratio, INTERPOLATIONS[interp]

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        h, w = image.shape[:2]
        th, tw = self.size
        if self.keep_ratio:
            scale = min(th / h, tw / w)
            th, tw = max(1, round(h * scale)), max(1, round(w * scale))
        image = cv2.resize(image, (tw, th), interpolation=self.interp)
        sy, sx = sample.get("scale_factor", (1.0, 1.0))
        return {**sample, "image": image, "resized_shape": (th, tw), "input_shape": (th, tw),
                "scale_factor": (sy * th / h, sx * tw / w)}


def float32_decimals(values) -> list[float]:
    """float32 values as their shortest decimals (110.3, not 110.30000305), for a readable deploy.yml;
    they read back as the same float32."""
    return [float(str(v)) for v in np.atleast_1d(np.asarray(values, np.float32))]


@PREPROCESS.register
class Normalize:
    """``(image * scale - mean) / std * scale_after`` per channel, as float32 (``scale_after``:
    recipes that divide after standardising, e.g. the bundled ESPNet weights)."""

    def __init__(self, mean: list[float] = (0.0, 0.0, 0.0), std: list[float] = (1.0, 1.0, 1.0),
                 scale: float = 1 / 255.0, scale_after: float = 1.0):
        self.mean = np.asarray(mean, np.float32)
        self.std = np.asarray(std, np.float32)
        self.scale, self.scale_after = np.float32(scale), np.float32(scale_after)

    def __call__(self, sample: dict) -> dict:
        image = (sample["image"].astype(np.float32) * self.scale - self.mean) / self.std
        if self.scale_after != 1:
            image = image * self.scale_after
        return {**sample, "image": image}


@PREPROCESS.register
class Pad:
    """Pad bottom/right to ``size`` ([h, w]) or to a multiple of ``multiple_of``, with ``value``
    (one number, or one per channel)."""

    def __init__(self, size: list[int] | None = None, multiple_of: int | None = None,
                 value: float | list[float] = 0.0):
        if (size is None) == (multiple_of is None):
            raise SpecError("Pad needs exactly one of 'size' or 'multiple_of'")
        self.size, self.multiple_of = size, multiple_of
        self.value = [float(v) for v in value] if isinstance(value, (list, tuple)) else [float(value)] * 3

    def __call__(self, sample: dict) -> dict:
        image = sample["image"]
        h, w = image.shape[:2]
        if self.size is not None:
            th, tw = self.size
        else:
            m = self.multiple_of
            th, tw = -(-h // m) * m, -(-w // m) * m
        if th < h or tw < w:
            raise InputError(f"Pad size {[th, tw]} is smaller than the image {[h, w]}; resize first")
        image = cv2.copyMakeBorder(image, 0, th - h, 0, tw - w, cv2.BORDER_CONSTANT, value=self.value)
        return {**sample, "image": image, "input_shape": (th, tw)}


@PREPROCESS.register
class HWC2CHW:
    """Channels first, as convolution models expect."""

    def __call__(self, sample: dict) -> dict:
        return {**sample, "image": np.ascontiguousarray(sample["image"].transpose(2, 0, 1))}


# -- post-processing ------------------------------------------------------------------------
def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


@POSTPROCESS.register
class Softmax:
    """Replace an output by its softmax (probabilities for the ops that follow)."""

    def __init__(self, source: str | None = None, axis: int = -1):
        self.source, self.axis = source, axis

    def __call__(self, ctx: PostContext) -> None:
        name = self.source or next(iter(ctx.outputs))
        ctx.outputs[name] = _softmax(ctx.get(name).astype(np.float32), self.axis)


@POSTPROCESS.register
class Argmax:
    """``label`` = argmax over ``axis`` (an int, or a list for per-token outputs)."""

    def __init__(self, source: str | None = None, axis: int = -1):
        self.source, self.axis = source, axis

    def __call__(self, ctx: PostContext) -> None:
        label = np.argmax(ctx.get(self.source), axis=self.axis)
        ctx.result["label"] = label.tolist()
        if label.ndim == 0 and ctx.label_name(int(label)) is not None:
            ctx.result["label_name"] = ctx.label_name(int(label))


@POSTPROCESS.register
class TopK:
    """``topk``: the ``k`` best classes with scores; ``label`` is the best one."""

    def __init__(self, k: int = 5, source: str | None = None):
        self.k, self.source = k, source

    def __call__(self, ctx: PostContext) -> None:
        scores = ctx.get(self.source).reshape(-1)
        order = np.argsort(-scores, kind="stable")[: self.k]
        ctx.result["topk"] = [{"id": int(i), "label": ctx.label_name(int(i)), "score": float(scores[i])}
                              for i in order]
        ctx.result["label"] = int(order[0])


@POSTPROCESS.register
class SegmentationMask:
    """``mask``: per-pixel class ids of [C, H, W] logits, padding cropped, at the original image size.

    interp ``nearest``: argmax, then the id map is resized; ``linear``: the logits are resized
    (bilinear, half-pixel centres) and then argmax'ed, as the segmentation kit's predict and metric
    do. void_index: the channel of a model's extra void output; its pixels keep that id, which
    is no entry of ``labels`` (the kit's metric counts them as misses).
    """

    def __init__(self, source: str | None = None, resize_to_original: bool = True, interp: str = "nearest",
                 void_index: int | None = None):
        if interp not in ("nearest", "linear"):
            raise SpecError(f"SegmentationMask interp '{interp}' is not one of nearest, linear."
                            f"{did_you_mean(interp, ('nearest', 'linear'))}")
        self.source, self.resize_to_original, self.interp = source, resize_to_original, interp
        self.void_index = void_index

    def __call__(self, ctx: PostContext) -> None:
        logits = ctx.get(self.source)
        if logits.ndim != 3:
            raise SpecError(f"SegmentationMask expects [C, H, W] logits per sample, got shape {logits.shape}")
        if self.void_index is not None and logits.shape[0] <= self.void_index:
            raise SpecError(f"SegmentationMask void_index {self.void_index} needs more than {logits.shape[0]} "
                            "channels")
        sample = ctx.sample
        if not (self.resize_to_original and "orig_shape" in sample):
            ctx.result["mask"] = np.argmax(logits, axis=0).astype(np.int32)
            return
        in_h, in_w = sample["input_shape"]
        rh, rw = sample["resized_shape"]
        _, mh, mw = logits.shape
        logits = logits[:, : max(1, round(rh * mh / in_h)), : max(1, round(rw * mw / in_w))]
        oh, ow = sample["orig_shape"]
        if self.interp == "linear":
            ctx.result["mask"] = np.argmax(resize_linear(logits, oh, ow), axis=0).astype(np.int32)
        else:
            mask = np.argmax(logits, axis=0).astype(np.int32)
            ctx.result["mask"] = cv2.resize(mask, (ow, oh), interpolation=cv2.INTER_NEAREST)


def resize_linear(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of [C, H, W] float maps (half-pixel centres, no antialiasing)."""
    if maps.shape[1:] == (height, width):
        return maps
    hwc = np.ascontiguousarray(maps.transpose(1, 2, 0), dtype=np.float32)
    # OpenCV resizes at most 512 channels at once
    parts = [cv2.resize(hwc[..., i:i + 512], (width, height), interpolation=cv2.INTER_LINEAR)
             for i in range(0, hwc.shape[2], 512)]
    parts = [p[..., None] if p.ndim == 2 else p for p in parts]
    return np.concatenate(parts, axis=2).transpose(2, 0, 1)


# Kit-specific op modules (one import line each) register themselves here:
from . import detection_ops  # noqa: E402,F401  (GFL decoding + multi-class NMS)
from . import text_ops  # noqa: E402,F401  (tokenization, CRF Viterbi, entity spans)
