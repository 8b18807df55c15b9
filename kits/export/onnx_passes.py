"""Graph clean-ups applied to the ONNX file paddle2onnx writes, before any engine sees it.

paddle2onnx keeps every BatchNormalization after its convolution and emits Identity nodes. Folding
the normalisation into the convolution weights gives the engines (and INT8 quantizers, which
would otherwise put a float island between every two convolutions) a plain Conv graph.
"""

from __future__ import annotations

import numpy as np


def _constants(graph) -> dict[str, np.ndarray]:
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute and node.attribute[0].name == "value":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return values


def drop_identities(model) -> int:
    """Rewire consumers of Identity nodes to their inputs (graph outputs keep their names)."""
    graph = model.graph
    outputs = {o.name for o in graph.output}
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity" and n.output[0] not in outputs}
    if not alias:
        return 0

    def root(name: str) -> str:
        while name in alias:
            name = alias[name]
        return name

    kept = [n for n in graph.node if not (n.op_type == "Identity" and n.output[0] in alias)]
    for node in kept:
        node.input[:] = [root(i) for i in node.input]
    del graph.node[:]
    graph.node.extend(kept)
    return len(alias)


def fold_batchnorm(model) -> int:
    """Fold each BatchNormalization that is the only consumer of a Conv with constant weights."""
    from onnx import numpy_helper

    graph = model.graph
    consts = _constants(graph)
    producer = {o: n for n in graph.node for o in n.output}
    uses: dict[str, int] = {}
    for name in [i for node in graph.node for i in node.input] + [o.name for o in graph.output]:
        uses[name] = uses.get(name, 0) + 1
    dropped, folded = set(), 0
    for bn in [n for n in graph.node if n.op_type == "BatchNormalization"]:
        conv = producer.get(bn.input[0])
        params = [consts.get(name) for name in bn.input[1:5]]
        if (conv is None or conv.op_type != "Conv" or uses.get(bn.input[0]) != 1 or len(bn.output) != 1
                or any(p is None for p in params) or conv.input[1] not in consts):
            continue
        eps = next((a.f for a in bn.attribute if a.name == "epsilon"), 1e-5)
        gamma, beta, mean, var = (p.astype(np.float64) for p in params)
        scale = gamma / np.sqrt(var + eps)
        weight = consts[conv.input[1]].astype(np.float64)
        bias = consts[conv.input[2]].astype(np.float64) if len(conv.input) > 2 and conv.input[2] else 0.0
        name = conv.output[0]
        w_name, b_name = f"{name}_folded_w", f"{name}_folded_b"
        graph.initializer.append(numpy_helper.from_array(
            (weight * scale.reshape(-1, *([1] * (weight.ndim - 1)))).astype(np.float32), w_name))
        graph.initializer.append(numpy_helper.from_array(((bias - mean) * scale + beta).astype(np.float32), b_name))
        conv.input[:] = [conv.input[0], w_name, b_name]
        conv.output[0] = bn.output[0]
        dropped.add(id(bn))
        folded += 1
    kept = [n for n in graph.node if id(n) not in dropped]
    del graph.node[:]
    graph.node.extend(kept)
    _drop_unused_constants(graph)
    return folded


_ARITHMETIC = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}


def fold_constant_arithmetic(model) -> int:
    """Replace float Mul/Add/Sub/Div of two constants by their result.

    paddle2onnx writes an Embedding with ``padding_idx`` as ``weight * mask``, both stored in full:
    a second copy of the whole table in the file (47 MB for MiniLM's) and a table-sized multiply
    for engines that do not fold it themselves.
    """
    from onnx import numpy_helper

    graph = model.graph
    consts = _constants(graph)
    outputs = {o.name for o in graph.output}
    kept, folded = [], 0
    for node in graph.node:
        fn = _ARITHMETIC.get(node.op_type)
        values = [consts.get(i) for i in node.input]
        if (fn is None or len(values) != 2 or any(v is None for v in values) or node.output[0] in outputs
                or not all(np.issubdtype(v.dtype, np.floating) for v in values)):
            kept.append(node)
            continue
        result = fn(values[0], values[1]).astype(np.result_type(*values))
        consts[node.output[0]] = result
        graph.initializer.append(numpy_helper.from_array(result, node.output[0]))
        folded += 1
    del graph.node[:]
    graph.node.extend(kept)
    _drop_unused_constants(graph)
    return folded


def _drop_unused_constants(graph) -> None:
    used = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] not in used)]
    del graph.node[:]
    graph.node.extend(kept)
    inits = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(inits)


def hardswish_as_clip(model) -> int:
    """Rewrite ``x * HardSigmoid(x)`` (paddle2onnx's hard-swish) as ``x * Clip(x + 3, 0, 6) / 6``.

    OpenVINO recognises the Clip form as HSwish and fuses it into the preceding convolution; the
    HardSigmoid form stays two separate kernels with layout reorders around them (PicoDet-S: 209
    reorders instead of 27, and slower than the reference export). Same values up to rounding.
    """
    from onnx import helper, numpy_helper

    graph = model.graph
    nodes = list(graph.node)
    producer = {o: i for i, n in enumerate(nodes) for o in n.output}
    uses: dict[str, int] = {}
    for name in [i for node in nodes for i in node.input] + [o.name for o in graph.output]:
        uses[name] = uses.get(name, 0) + 1
    replace: dict[int, list] = {}  # index of the Mul -> its replacement
    dropped: set[int] = set()       # indices of the HardSigmoids it absorbs
    for index, mul in enumerate(nodes):
        if mul.op_type != "Mul":
            continue
        for x, h in (mul.input, mul.input[::-1]):
            hs_index = producer.get(h)
            hs = nodes[hs_index] if hs_index is not None else None
            if hs is None or hs.op_type != "HardSigmoid" or hs.input[0] != x or uses.get(h) != 1:
                continue
            attrs = {a.name: helper.get_attribute_value(a) for a in hs.attribute}
            if not (np.isclose(attrs.get("alpha", 0.2), 1 / 6) and np.isclose(attrs.get("beta", 0.5), 0.5)):
                continue
            base = f"{mul.output[0]}_hswish"
            three, zero, six = (f"{base}_{k}" for k in ("three", "zero", "six"))
            graph.initializer.extend(numpy_helper.from_array(np.asarray(v, np.float32), name)
                                     for name, v in ((three, 3.0), (zero, 0.0), (six, 6.0)))
            replace[index] = [
                helper.make_node("Add", [x, three], [f"{base}_shift"]),
                helper.make_node("Clip", [f"{base}_shift", zero, six], [f"{base}_clip"]),
                helper.make_node("Mul", [x, f"{base}_clip"], [f"{base}_scaled"]),
                helper.make_node("Div", [f"{base}_scaled", six], [mul.output[0]]),
            ]
            dropped.add(hs_index)
            break
    if not replace:
        return 0
    rewritten = []
    for index, node in enumerate(nodes):
        if index not in dropped:
            rewritten.extend(replace.get(index, [node]))
    del graph.node[:]
    graph.node.extend(rewritten)
    return len(replace)


def simplify(model) -> dict[str, int]:
    """All passes, in order; returns how many nodes each one changed."""
    return {"identities_removed": drop_identities(model), "batchnorms_folded": fold_batchnorm(model),
            "constants_folded": fold_constant_arithmetic(model)}
