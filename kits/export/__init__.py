"""Exporters: Paddle (PIR and legacy), ONNX, OpenVINO, MNN, ncnn and TensorRT, plus deploy.yml."""

from .exporter import ExportResult, export, export_from_onnx
from .formats import FORMATS, ONNX_OPSET, ExportError, Format, Option

__all__ = ["export", "export_from_onnx", "ExportResult", "FORMATS", "ONNX_OPSET", "ExportError", "Format", "Option"]
