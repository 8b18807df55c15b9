"""MSE calibration: the chosen range clips rare outliers, keeps a plain distribution whole, and
the ONNX Runtime PTQ path uses those ranges."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kits.slim.mse_calib import mse_overrides, mse_range


def _hist(values, bins=2048):
    bound = float(np.abs(values).max())
    hist, edges = np.histogram(values, bins, range=(-bound, bound))
    return hist, edges.astype(np.float64), float(values.min()), float(values.max())


def _quant_error(values, rmin, rmax):
    scale = (rmax - rmin) / 255
    zero = np.round(-rmin / scale)
    q = np.clip(np.round(values / scale) + zero, 0, 255)
    return float(np.mean(((q - zero) * scale - values) ** 2))


def test_a_long_tail_is_clipped_and_the_error_falls():
    # Laplace(0, 1): 8-bit quantization is best clipped near 9.9 (Banner et al., ACIQ), below the
    # ~13 the largest of 400k samples reaches
    values = np.random.default_rng(0).laplace(0.0, 1.0, 400_000).astype(np.float32)
    rmin, rmax = mse_range(*_hist(values))
    assert 7.0 < rmax < 11.5 and -11.5 < rmin < -7.0
    assert _quant_error(values, rmin, rmax) < 0.8 * _quant_error(values, float(values.min()), float(values.max()))


def test_a_uniform_tensor_keeps_its_whole_range():
    values = np.random.default_rng(1).uniform(-2.0, 6.0, 100_000).astype(np.float32)
    rmin, rmax = mse_range(*_hist(values))
    assert rmin == pytest.approx(-2.0, rel=0.03) and rmax == pytest.approx(6.0, rel=0.03)


def test_overrides_cover_the_calibrated_activations(tmp_path, capsys):
    """A Conv -> Relu model: every activation ONNX Runtime calibrates gets an MSE range."""
    w = numpy_helper.from_array(np.random.default_rng(2).standard_normal((4, 3, 1, 1)).astype(np.float32), "w")
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
                               helper.make_node("Relu", ["c"], ["y"], name="relu")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(3)
    feeds = iter([{"x": rng.standard_normal((1, 3, 8, 8)).astype(np.float32)} for _ in range(4)])

    class Reader:
        def get_next(self):
            return next(feeds, None)

    overrides, clipped = mse_overrides(tmp_path / "m.onnx", Reader())
    assert set(clipped) <= set(overrides)
    assert capsys.readouterr().out == ""  # ONNX Runtime's progress print stays off stdout (it may carry JSON)
    assert {"x", "c", "y"} <= set(overrides)
    for name in ("x", "y"):
        (entry,) = overrides[name]
        assert entry["rmin"] <= 0.0 <= entry["rmax"] and entry["rmax"] > 0
