"""MSE calibration for ONNX Runtime's static quantizer: per activation, the uint8 range that
minimises the squared quantization error over the calibration samples.

ONNX Runtime's quantizer has no MSE method, but it collects value histograms (for its entropy
method) and accepts a range per tensor (``TensorQuantOverrides``). This module turns the first into
the second: for each histogram it tries ranges shrunk from the observed [min, max] toward zero and
keeps the one with the least expected error, counting clipped values by their distance to the
range and values inside by the rounding error (scale^2 / 12). Unlike min/max it clips rare
outliers that would waste the 256 levels; unlike a fixed percentile, how much it clips depends on
what the tensor's distribution costs.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
from pathlib import Path

import numpy as np

LEVELS = 255  # uint8 activations
SHRINK = np.linspace(0.02, 1.0, 99)  # fractions of the observed range tried


def mse_range(hist: np.ndarray, edges: np.ndarray, lo: float, hi: float, levels: int = LEVELS) -> tuple[float, float]:
    """The [rmin, rmax] (always containing 0) with the least expected squared error when values
    distributed as ``hist`` over ``edges`` are quantized to ``levels`` + 1 steps."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo <= 0 or hist.sum() == 0:
        return lo, hi
    centers = (edges[:-1] + edges[1:]) / 2
    counts = hist.astype(np.float64)
    best, best_err = (lo, hi), np.inf
    for frac in SHRINK:
        rmin, rmax = lo * frac, hi * frac
        scale = (rmax - rmin) / levels
        clipped = np.clip(centers, rmin, rmax)
        outside = centers != clipped
        err = (counts[outside] * (centers[outside] - clipped[outside]) ** 2).sum()
        err += counts[~outside].sum() * scale ** 2 / 12
        if err < best_err:
            best, best_err = (rmin, rmax), err
    return best


def mse_overrides(model_path: str | Path, reader, op_types=None, bins: int = 2048) -> tuple[dict, list[str]]:
    """``TensorQuantOverrides`` giving every activation the quantizer calibrates its MSE range, and
    the names of those whose range is narrower than their observed min/max (clipped)."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, create_calibrator

    with tempfile.TemporaryDirectory() as tmp:
        calibrator = create_calibrator(Path(model_path), op_types, augmented_model_path=str(Path(tmp) / "aug.onnx"),
                                       calibrate_method=CalibrationMethod.Entropy,
                                       extra_options={"num_bins": bins, "symmetric": False})
        with contextlib.redirect_stdout(sys.stderr):  # its progress print: stdout may carry JSON
            calibrator.collect_data(reader)
        histograms = calibrator.collector.histogram_dict
    overrides, clipped = {}, []
    for name, (hist, edges, lo, hi, *_) in histograms.items():
        rmin, rmax = mse_range(np.asarray(hist), np.asarray(edges, dtype=np.float64), lo, hi)
        overrides[name] = [{"rmin": np.float32(rmin), "rmax": np.float32(rmax)}]
        if rmax - rmin < max(float(hi), 0.0) - min(float(lo), 0.0):
            clipped.append(name)
    return overrides, sorted(clipped)
