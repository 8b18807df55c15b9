"""ONNX clean-up passes: BatchNormalization folded into Conv and Identity nodes removed, with the
graph computing the same outputs."""

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from kits.export.onnx_passes import simplify

RNG = np.random.default_rng(0)


def const(name, array):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array.astype(np.float32), name))


def graph(shared_conv_output: bool = False):
    c = 4
    nodes = [const("w", RNG.standard_normal((c, 3, 3, 3))), const("b", RNG.standard_normal(c)),
             const("g", RNG.uniform(0.5, 2, c)), const("beta", RNG.standard_normal(c)),
             const("m", RNG.standard_normal(c)), const("v", RNG.uniform(0.5, 2, c)),
             helper.make_node("Identity", ["x"], ["x_id"]),
             helper.make_node("Conv", ["x_id", "w", "b"], ["y"], pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["y", "g", "beta", "m", "v"], ["z"], epsilon=1e-3)]
    outputs = [helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 4, 8, 8])]
    if shared_conv_output:  # the raw conv output is used elsewhere: the BN must stay
        outputs.append(helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8, 8]))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])], outputs)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def run(model, x):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})


def test_batchnorm_folds_into_conv_with_the_same_result():
    model = graph()
    x = RNG.standard_normal((1, 3, 8, 8)).astype(np.float32)
    before = run(model, x)
    changes = simplify(model)
    onnx.checker.check_model(model)
    assert changes == {"identities_removed": 1, "batchnorms_folded": 1, "constants_folded": 0}
    assert [n.op_type for n in model.graph.node] == ["Conv"]
    np.testing.assert_allclose(run(model, x)[0], before[0], rtol=1e-5, atol=1e-5)


def test_batchnorm_stays_when_the_conv_output_is_shared():
    model = graph(shared_conv_output=True)
    assert simplify(model)["batchnorms_folded"] == 0
    assert "BatchNormalization" in [n.op_type for n in model.graph.node]


def hardswish_graph():
    """x -> hard-swish the way paddle2onnx writes it, plus an SE-style HardSigmoid gate that must stay."""
    nodes = [helper.make_node("HardSigmoid", ["x"], ["hs"], alpha=1 / 6, beta=0.5),
             helper.make_node("Mul", ["hs", "x"], ["y"]),                      # hard-swish, operands swapped
             helper.make_node("HardSigmoid", ["y"], ["gate"], alpha=0.2, beta=0.5),
             helper.make_node("Mul", ["y", "gate"], ["z"])]                   # a gate: not x * hs(x) with 1/6
    shape = [1, 2, 4, 4]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                          [helper.make_tensor_value_info("z", TensorProto.FLOAT, shape)])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])


def test_hardswish_becomes_the_clip_form_with_the_same_values():
    from kits.export.onnx_passes import hardswish_as_clip

    model = hardswish_graph()
    x = (RNG.standard_normal((1, 2, 4, 4)) * 4).astype(np.float32)  # both clip ends are reached
    before = run(model, x)
    assert hardswish_as_clip(model) == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Add", "Clip", "Mul", "Div", "HardSigmoid", "Mul"]
    np.testing.assert_allclose(run(model, x)[0], before[0], rtol=1e-5, atol=1e-5)


def test_masked_embedding_table_is_stored_once():
    """paddle2onnx's padding_idx form: Gather(weight * mask, ids) becomes Gather(table, ids)."""
    table, mask = RNG.standard_normal((10, 4)), np.ones((10, 4))
    mask[0] = 0.0
    nodes = [const("w", table), const("mask", mask), helper.make_node("Mul", ["w", "mask"], ["masked"]),
             helper.make_node("Gather", ["masked", "ids"], ["y"], axis=0)]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 3])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 4])])
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
    ids = np.array([[0, 3, 9]], dtype=np.int64)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    before = session.run(None, {"ids": ids})[0]
    assert simplify(model)["constants_folded"] == 1
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Gather"]
    assert [list(t.dims) for t in model.graph.initializer] == [[10, 4]]
    after = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"ids": ids})
    np.testing.assert_array_equal(after[0], before)
    assert not after[0][0, 0].any()
