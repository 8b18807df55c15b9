"""Float fallback of QDQ models: pairs found and removed, the worst activation found by measurement."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from kits.slim.fallback import activation_pairs, search, sqnr_db, without_pairs


def conv_chain(path):
    """x -> Conv(a) -> Relu -> Conv(b) -> y. Conv a gives one channel values ~300x the others."""
    rng = np.random.default_rng(0)
    wa = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    wa[0] *= 300.0  # the outlier channel: one uint8 scale for the tensor flattens the other three
    wb = rng.normal(0, 0.3, (2, 4, 1, 1)).astype(np.float32)
    wb[:, 0] = 0.0  # ... which the next conv ignores: y lives on the three small channels
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("Conv", ["r", "wb"], ["y"], name="conv_b")]
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 8, 8])],
                              [numpy_helper.from_array(wa, "wa"), numpy_helper.from_array(wb, "wb")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return model


def feeds(n=4):
    rng = np.random.default_rng(1)
    return [{"x": rng.normal(0, 1, (1, 3, 8, 8)).astype(np.float32)} for _ in range(n)]


@pytest.fixture()
def models(tmp_path):
    from onnxruntime import quantization as q

    float_model = conv_chain(tmp_path / "f.onnx")

    class Reader:
        def __init__(self):
            self.items = iter(feeds())

        def get_next(self):
            return next(self.items, None)

    q.quantize_static(str(tmp_path / "f.onnx"), str(tmp_path / "q.onnx"), Reader(), quant_format=q.QuantFormat.QDQ,
                      per_channel=True, reduce_range=True, activation_type=q.QuantType.QUInt8,
                      weight_type=q.QuantType.QInt8)
    return float_model, onnx.load(str(tmp_path / "q.onnx"))


def test_pairs_are_activations_only_and_removal_restores_float_reads(models):
    float_model, qdq = models
    pairs = activation_pairs(qdq)
    assert {"x", "r"} <= set(pairs) and not {"wa", "wb"} & set(pairs)  # weights stay INT8
    stripped = without_pairs(qdq, list(pairs))
    onnx.checker.check_model(stripped)
    assert not activation_pairs(stripped)
    assert [n.op_type for n in stripped.graph.node].count("QuantizeLinear") == 0
    assert [n.op_type for n in stripped.graph.node].count("DequantizeLinear") == 2  # the two weights
    assert [n.op_type for n in stripped.graph.node].count("Clip") == len(pairs)
    assert len(activation_pairs(qdq)) == len(pairs)  # the input model is untouched
    # the quantizer folded the Relu into the uint8 pair after conv_a; the Clip keeps it
    import onnxruntime as ort

    data = feeds()
    ref = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = ort.InferenceSession(stripped.SerializeToString(), providers=["CPUExecutionProvider"])
    assert "Relu" not in [n.op_type for n in qdq.graph.node]
    assert sqnr_db([ref.run(None, f) for f in data], [got.run(None, f) for f in data]) > 30.0  # 7-bit weights only


def test_search_finds_the_outlier_tensor_and_reaches_the_target(models):
    float_model, qdq = models
    data = feeds()
    model, result = search(float_model, qdq, data, target_db=30.0, max_tensors=4)
    assert min(result.single_sqnr_db, key=result.single_sqnr_db.get) == "r"  # the outlier channel
    assert result.sqnr_db_before < 10.0 and result.sqnr_db >= 30.0
    assert result.float_tensors == ["r"]
    import onnxruntime as ort

    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    ref = ort.InferenceSession(float_model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = sqnr_db([ref.run(None, f) for f in data], [session.run(None, f) for f in data])
    assert got == pytest.approx(result.sqnr_db, abs=1e-6)


def test_sqnr_is_worst_output_in_db():
    ref = [[np.ones(4, np.float32), np.ones(4, np.float32)]]
    test = [[np.ones(4, np.float32) * 1.1, np.ones(4, np.float32) * 1.01]]
    assert sqnr_db(ref, test) == pytest.approx(20.0, abs=1e-4)  # the first output: noise 0.01 of signal 1


def test_fallback_needs_static_qdq():
    from kits.core.errors import ConfigError
    from kits.slim.ptq import PTQ

    with pytest.raises(ConfigError, match="fallback_sqnr_db needs static QDQ"):
        PTQ(quant_format="qoperator", fallback_sqnr_db=25.0)
    with pytest.raises(ConfigError, match="fallback_sqnr_db needs static QDQ"):
        PTQ(dynamic=True, fallback_sqnr_db=25.0)
    assert PTQ(fallback_sqnr_db=25.0).fallback_max_tensors == 16


def pooled_branches():
    """x -> Conv(a, one channel ~300x the others) -> Relu -> MaxPool -> depthwise Conv(d) -> yd
                                                                      -> 1x1 Conv(e) -> ye
    d keeps each channel apart and drops the large one, so yd lives on the three small channels,
    which drown in the pooled tensor's shared uint8 scale; e reads mostly the large channel."""
    rng = np.random.default_rng(0)
    wa = rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)
    wa[0] *= 300.0
    wd = rng.normal(0, 0.3, (4, 1, 3, 3)).astype(np.float32)
    wd[0] = 0.0
    we = rng.normal(0, 0.01, (2, 4, 1, 1)).astype(np.float32)
    we[:, 0] = 1.0
    nodes = [helper.make_node("Conv", ["x", "wa"], ["a"], name="conv_a", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["a"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Conv", ["p", "wd"], ["yd"], name="conv_d", group=4, pads=[1, 1, 1, 1]),
             helper.make_node("Conv", ["p", "we"], ["ye"], name="conv_e")]
    graph = helper.make_graph(nodes, "branches", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("yd", TensorProto.FLOAT, [1, 4, 4, 4]),
                               helper.make_tensor_value_info("ye", TensorProto.FLOAT, [1, 2, 4, 4])],
                              [numpy_helper.from_array(w, n) for w, n in ((wa, "wa"), (wd, "wd"), (we, "we"))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    return model


def test_compute_readers_look_through_ops_that_only_move_values():
    from kits.slim.fallback import compute_readers

    model = pooled_branches()
    assert compute_readers(model, ["r"]) == ["conv_d", "conv_e"]  # through the MaxPool
    assert compute_readers(model, ["x"]) == ["conv_a"]  # the Relu computes: conv_d/e are not x's readers


def test_nncf_fallback_narrows_to_one_reader_of_the_float_tensor(tmp_path):
    """The pooled outlier tensor is read in float by both convolutions after the tensor-level
    search; leaving just one of them float (NNCF's ignored scope) is tried for each, and the best
    replaces the tensor-level fallback when its outputs are about as close to FP32."""
    pytest.importorskip("nncf")
    from types import SimpleNamespace

    from kits.slim.fallback import sqnr_scorer
    from kits.slim.ptq import NARROW_MARGIN_DB, PTQ

    model, calib = pooled_branches(), feeds(8)
    ptq = PTQ(quantizer="nncf", fallback_sqnr_db=60.0, fallback_max_tensors=1)
    quantized, _ = ptq._nncf(model, calib, [])
    after, result = search(model, quantized, calib[:4], 60.0, 1)
    assert result.float_tensors == ["r"]  # the outlier tensor, read by both convolutions through the MaxPool
    onnx.save(after, str(tmp_path / "q.onnx"))
    ctx = SimpleNamespace(info={"ptq": {"fallback": result.as_dict()}})
    ptq._narrow_fallback(ctx, model, [], calib, calib[:4], tmp_path / "q.onnx")
    fallback = ctx.info["ptq"]["fallback"]
    tried = fallback["readers_sqnr_db"]
    assert set(tried) == {"conv_d", "conv_e"}
    best = max(tried, key=tried.get)
    assert tried[best] >= result.sqnr_db - NARROW_MARGIN_DB  # so the narrowed model was kept
    assert fallback["float_layers"] == [best] and fallback["float_tensors"] == []
    saved = onnx.load(str(tmp_path / "q.onnx"))
    assert sqnr_scorer(model, calib[:4])(saved) == pytest.approx(tried[best], abs=0.01)
    producer = {o: n.op_type for n in saved.graph.node for o in n.output}
    convs = {n.name: n for n in saved.graph.node if n.op_type == "Conv"}
    other = ({"conv_d", "conv_e"} - {best}).pop()
    assert producer[convs[best].input[0]] != "DequantizeLinear"  # float input, float weights
    assert producer[convs[other].input[0]] == "DequantizeLinear"  # still INT8
