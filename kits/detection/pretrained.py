"""Bundled detection weights (safetensors under ``kits/detection/pretrained/``) and COCO class names."""

from __future__ import annotations

from pathlib import Path

from kits.core.pretrained import WeightSpec, register_weights

_DIR = Path(__file__).resolve().parent / "pretrained"
_SOURCE = ("PaddleDetection model zoo, legacy PP-PicoDet-S (2021.10, ESNet-s, BN folded by Paddle2ONNX), "
           "ONNX export from github.com/hpc203/picodet-onnxruntime@dfe4d6cd coco/; "
           "converted with tools/convert_picodet_onnx.py")
_LICENSE = "Apache-2.0 (PaddleDetection)"
_SHA256 = {
    "picodet_s_320_coco": "3cd3a8c9c779e33d8fe1dea3e16f7f389430635d6166cc906894f7c7997b2ff6",
    "picodet_s_416_coco": "efbfd3980190d732a2415a4c380e4297bf3167eba5f0abf7c2ad0cb0e6648398",
}
_COCO_MAP = {"picodet_s_320_coco": 27.1, "picodet_s_416_coco": 30.6}

for _name, _sha in _SHA256.items():
    register_weights(WeightSpec(
        name=_name, file=f"detection/pretrained/{_name}.safetensors", sha256=_sha, source=_SOURCE,
        license=_LICENSE, model="PicoDet",
        description=f"PicoDet-S, 80 COCO classes, {_name.split('_')[2]}x{_name.split('_')[2]} input, "
                    f"COCO val mAP {_COCO_MAP[_name]} (upstream); BGR input, mean [103.53, 116.28, 123.675], "
                    f"std [57.375, 57.12, 58.395]",
    ))


def coco_names() -> list[str]:
    """The 80 COCO class names in the order of the bundled models' class scores."""
    return (_DIR / "coco_names.txt").read_text(encoding="utf-8").split("\n")[:80]
