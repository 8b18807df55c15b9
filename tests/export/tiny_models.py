"""Three tiny models with the kits' model contract (image classifier, segmenter, text classifier)
and their deploy specs, shared by the export and runtime tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import paddle
import paddle.nn.functional as F
from paddle.static import InputSpec

from kits.export import export

IMAGE_PRE = [{"type": "DecodeImage", "to_rgb": True}, {"type": "Resize", "size": [32, 32]},
             {"type": "Normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
             {"type": "HWC2CHW"}]


class TinyClassifier(paddle.nn.Layer):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.conv = paddle.nn.Conv2D(3, 8, 3, padding=1)
        self.bn = paddle.nn.BatchNorm2D(8)
        self.fc = paddle.nn.Linear(8, num_classes)

    def export_forward(self, image):
        return self.fc(F.relu(self.bn(self.conv(image))).mean([2, 3]))

    def forward(self, batch):
        return {"logits": self.export_forward(batch["image"])}

    def input_spec(self):
        return [InputSpec([None, 3, 32, 32], "float32", "image")]


class TinySegmenter(paddle.nn.Layer):
    """[N, C, H, W] logits at input resolution, from a stride-2 feature map (dynamic H and W)."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.down = paddle.nn.Conv2D(3, 8, 3, stride=2, padding=1)
        self.head = paddle.nn.Conv2D(8, num_classes, 1)

    def export_forward(self, image):
        logits = self.head(F.relu(self.down(image)))
        return F.interpolate(logits, size=image.shape[2:], mode="bilinear", align_corners=False)

    def forward(self, batch):
        return {"logits": self.export_forward(batch["image"])}

    def input_spec(self):
        return [InputSpec([None, 3, None, None], "float32", "image")]


class TinyTextClassifier(paddle.nn.Layer):
    """Masked mean of token embeddings -> classes; dynamic batch and sequence length."""

    def __init__(self, vocab: int = 50, num_classes: int = 3):
        super().__init__()
        self.embed = paddle.nn.Embedding(vocab, 16)
        self.fc = paddle.nn.Linear(16, num_classes)

    def export_forward(self, input_ids, attention_mask):
        mask = attention_mask.astype("float32").unsqueeze(-1)
        pooled = (self.embed(input_ids) * mask).mean(1) / (mask.mean(1) + 1e-6)
        return self.fc(F.relu(pooled))

    def forward(self, batch):
        return {"logits": self.export_forward(batch["input_ids"], batch["attention_mask"])}

    def input_spec(self):
        return [InputSpec([None, None], "int64", "input_ids"), InputSpec([None, None], "int64", "attention_mask")]


SPECS = {
    "classifier": {"task": "classification", "preprocess": IMAGE_PRE, "outputs": ["logits"],
                   "postprocess": [{"type": "Softmax"}, {"type": "TopK", "k": 3}],
                   "labels": ["stop", "speed", "crossing", "light"], "config_hash": "0" * 64},
    "segmenter": {"task": "segmentation", "outputs": ["logits"], "example_shapes": {"image": [1, 3, 32, 48]},
                  "preprocess": [IMAGE_PRE[0], {"type": "Resize", "size": [32, 48], "keep_ratio": True},
                                 IMAGE_PRE[2], {"type": "Pad", "size": [32, 48]}, IMAGE_PRE[3]],
                  "postprocess": [{"type": "SegmentationMask"}], "labels": ["background", "road", "sign"]},
    "text": {"task": "text-classification", "outputs": ["logits"],
             "example_shapes": {"input_ids": [1, 7], "attention_mask": [1, 7]},
             "input_ranges": {"input_ids": [0, 50]},
             "postprocess": [{"type": "Softmax"}, {"type": "Argmax"}], "labels": ["neg", "neu", "pos"]},
}
MODELS = {"classifier": TinyClassifier, "segmenter": TinySegmenter, "text": TinyTextClassifier}
ENGINES = {"openvino": "openvino", "mnn": "MNN", "ncnn": "ncnn"}


def installed_formats(name: str) -> list[str]:
    """Every format whose converter/engine is installed here (ncnn takes no integer inputs)."""
    formats = ["paddle", "paddle-legacy", "onnx", "tensorrt"]
    formats += [f for f, pkg in ENGINES.items() if importlib.util.find_spec(pkg) is not None]
    return [f for f in formats if not (f == "ncnn" and name == "text")]


def export_all(root: Path) -> dict:
    """name -> (model, export result) for the three models, each to every installed format."""
    out = {}
    for name, cls in MODELS.items():
        paddle.seed(0)
        model = cls()
        out[name] = (model, export(model, SPECS[name], root / name, formats=installed_formats(name)))
    return out
