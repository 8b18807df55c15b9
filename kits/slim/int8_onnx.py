"""INT8 QDQ ONNX from a trained QAT model.

The model's float graph is exported the usual way (PIR program -> paddle2onnx) with its
quantizers switched off; then every quantized Conv / MatMul / Gemm gets its weight stored as
int8 behind a ``DequantizeLinear`` and a ``QuantizeLinear`` + ``DequantizeLinear`` pair on its
input (uint8 with a zero point, or int8 behind a ``Clip`` for abs-max inputs), with the scales
the QAT model trained. paddle2onnx names weight tensors after the
paddle parameters, which ties each ONNX node to its layer exactly. ONNX Runtime and OpenVINO
(which reads QDQ pairs as its own int8 ops) run the file.

Why not paddle2onnx's own INT8 path: 2.x aborts on int8 ``quantize_linear`` ("Only support e4m3
or e5m2 now"); 1.3.1 on the legacy ``.pdmodel`` rewrites the quantization for ONNX Runtime's
fusion patterns: it drops the input QDQ of every conv whose output is not quantized as well (all
of them in a native QAT model) and re-derives weight scales after folding BatchNorm, so most
layers end up float (9 of 129 convs kept QDQ on a 64x64 PicoDet) and the outputs differ from the
trained graph (max diff 0.37, against 0.005 for paddle.inference on the same program).

The check: a deep quantized network amplifies single rounding flips (an input lying on a rounding
boundary, computed a few ulps apart by two engines) into differences of the size of the
quantization noise, so the end-to-end difference is reported but not judged. Judged are (1) the
float graph against the model with quantizers off and (2) every quantized layer on its own: the
ONNX layer output against the paddle layer run on the ONNX layer input.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from kits.deploy.predictor import output_diff as float_diff
from kits.export.formats import ExportError

log = logging.getLogger(__name__)

WEIGHT_OPS = {"Conv": 1, "MatMul": 1, "Gemm": 1}   # ONNX op -> input index of the weight
INT8_FILE = "model_int8.onnx"
FLOAT_TOLERANCE = 1e-3   # the float graph only differs by float rounding


class Int8ExportError(ExportError):
    """The QAT model cannot be written as INT8 ONNX, or the file disagrees with the trained graph."""


@dataclass
class QuantPoint:
    """What one fake-quantized layer needs in ONNX."""

    layer: str                 # dotted name in the model
    weight: str                # paddle parameter name = the ONNX tensor name of the weight
    weight_scale: np.ndarray   # abs max per output channel (or one value)
    axis: int                  # output-channel axis of the weight; -1: one scale per tensor
    weight_bits: int
    input_scale: float | None  # abs max of a symmetric int8 input; None: not symmetric
    input_bits: int = 8
    input_step: float | None = None   # step of an asymmetric uint8 input (with input_zero_point)
    input_zero_point: int = 0

    @property
    def input_quantized(self) -> bool:
        return self.input_scale is not None or self.input_step is not None


@dataclass
class Probe:
    """Where one quantized layer sits in the ONNX graph (for the per-layer check)."""

    layer: str
    source: str                # the layer's float input, before its QDQ
    output: str                # the Conv / MatMul / Gemm output
    has_bias: bool             # whether the node adds the layer's bias itself


def quant_points(model) -> list[QuantPoint]:
    """One entry per wrapped Conv2D / Linear with a weight quantizer."""
    from .qat import quantized_layers

    points = []
    for name, layer in quantized_layers(model).items():
        wq, aq = layer.weight_quanter, layer.activation_quanter
        if wq is None:
            continue
        weight = layer.weight.numpy()
        axis = int(wq.quant_axis())
        if axis >= 0:
            scale = np.abs(weight).max(axis=tuple(i for i in range(weight.ndim) if i != axis))
        else:
            scale = np.abs(weight).max().reshape(1)
        point = QuantPoint(name, layer.weight.name, scale.astype(np.float32), axis, int(wq.bit_length()), None)
        if hasattr(aq, "qparams"):  # asymmetric uint8
            step, zero_point = (t.numpy().reshape(-1)[0] for t in aq.qparams())
            point.input_step, point.input_zero_point = float(step), int(zero_point)
        elif aq is not None:
            point.input_scale, point.input_bits = float(aq.scales().numpy().reshape(-1)[0]), int(aq.bit_length())
        points.append(point)
    return points


@contextlib.contextmanager
def float_graph(model) -> Iterator[None]:
    """Switch the quantizers of a QAT model off (it computes in float) and back on at exit."""
    from .qat import quantized_layers

    saved = []
    for layer in quantized_layers(model).values():
        saved.append((layer, layer.weight_quanter, layer.activation_quanter))
        layer.weight_quanter = None
        layer.activation_quanter = None
    try:
        yield
    finally:
        for layer, wq, aq in saved:
            layer.weight_quanter, layer.activation_quanter = wq, aq


# -- ONNX graph surgery ---------------------------------------------------------------------
def _onnx_scale(scale: np.ndarray, bits: int) -> tuple[np.ndarray, int]:
    """Paddle keeps the abs max; ONNX wants the step (abs max / qmax). Zero scales become 1."""
    qmax = (1 << (bits - 1)) - 1
    return np.where(scale > 0, scale, 1.0).astype(np.float32) / qmax, qmax


def _const_value(graph, name: str):
    """The value of the initializer or Constant node output called ``name`` (None if computed)."""
    from onnx import numpy_helper

    for init in graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in graph.node:
        if node.op_type == "Constant" and list(node.output) == [name]:
            attr = next((a for a in node.attribute if a.name == "value"), None)
            return None if attr is None else numpy_helper.to_array(attr.t)
    return None


def _weight_axis(node, point: QuantPoint) -> int:
    if point.axis >= 0 and node.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        return 1 - point.axis  # Gemm holds a Linear weight as [out, in] when transB=1
    return point.axis


def _quantize_weight(graph, point: QuantPoint, node):
    """Initializers for the int8 weight, its scale and zero point; returns the DequantizeLinear."""
    from onnx import helper, numpy_helper

    weight = _const_value(graph, point.weight)
    if weight is None:
        raise Int8ExportError(f"the weight {point.weight} of layer {point.layer} is computed in the ONNX graph, "
                              "not stored: it cannot be quantized")
    axis = _weight_axis(node, point)
    if axis >= 0 and weight.shape[axis] != point.weight_scale.size:
        raise Int8ExportError(f"layer {point.layer}: ONNX weight {point.weight} has shape {weight.shape}, "
                              f"which does not fit {point.weight_scale.size} channel scales")
    step, qmax = _onnx_scale(point.weight_scale, point.weight_bits)
    shape = [1] * weight.ndim
    if axis >= 0:
        shape[axis] = -1
    q = np.clip(np.rint(weight / step.reshape(shape)), -qmax, qmax).astype(np.int8)
    step = step if axis >= 0 else step.reshape(())
    names = [f"{point.weight}.int8", f"{point.weight}.scale", f"{point.weight}.zero_point"]
    graph.initializer.extend([numpy_helper.from_array(q, names[0]), numpy_helper.from_array(step, names[1]),
                              numpy_helper.from_array(np.zeros(step.shape, np.int8), names[2])])
    kwargs = {"axis": axis} if axis >= 0 else {}
    return helper.make_node("DequantizeLinear", names, [f"{point.weight}.dequantized"],
                            name=f"{point.weight}.DequantizeLinear", **kwargs)


def _qdq_input(graph, point: QuantPoint, node, k: int) -> list:
    """QuantizeLinear + DequantizeLinear on the node's input 0 (behind a Clip if int8), rewired;
    returns the nodes.

    The Clip to [-abs_max, abs_max] is what paddle's abs-max quantizer does; without it
    QuantizeLinear would map inputs below -abs_max to -128 instead of -127. uint8 saturates at
    0 and 255 exactly as the min-max quantizer clips.
    """
    from onnx import helper, numpy_helper

    base = f"{point.layer}.input.{k}"
    nodes, source = [], node.input[0]
    if point.input_step is not None:
        step = np.array(point.input_step, np.float32)
        zero_point = np.array(point.input_zero_point, np.uint8)
    else:
        steps, qmax = _onnx_scale(np.array([point.input_scale]), point.input_bits)
        step, zero_point = steps.reshape(()), np.zeros((), np.int8)
        bound = np.float32(step * qmax)
        graph.initializer.extend([numpy_helper.from_array(np.array(-bound, np.float32), f"{base}.min"),
                                  numpy_helper.from_array(np.array(bound, np.float32), f"{base}.max")])
        nodes.append(helper.make_node("Clip", [source, f"{base}.min", f"{base}.max"], [f"{base}.clipped"],
                                      name=f"{base}.Clip"))
        source = f"{base}.clipped"
    graph.initializer.extend([numpy_helper.from_array(step, f"{base}.scale"),
                              numpy_helper.from_array(zero_point, f"{base}.zero_point")])
    q = helper.make_node("QuantizeLinear", [source, f"{base}.scale", f"{base}.zero_point"],
                         [f"{base}.quantized"], name=f"{base}.QuantizeLinear")
    dq = helper.make_node("DequantizeLinear", [f"{base}.quantized", f"{base}.scale", f"{base}.zero_point"],
                          [f"{base}.dequantized"], name=f"{base}.DequantizeLinear")
    node.input[0] = f"{base}.dequantized"
    return nodes + [q, dq]


def _weight_users(graph, points: list[QuantPoint]) -> dict[str, list[int]]:
    """Weight name -> positions of the Conv/MatMul/Gemm nodes using it; errors on unknown patterns."""
    by_weight = {p.weight for p in points}
    users: dict[str, list[int]] = {}
    for pos, node in enumerate(graph.node):
        idx = WEIGHT_OPS.get(node.op_type)
        if idx is not None and len(node.input) > idx and node.input[idx] in by_weight:
            users.setdefault(node.input[idx], []).append(pos)
    tensors = {t for node in graph.node for t in list(node.input) + list(node.output)}
    missing = [f"{p.layer} ({p.weight})" for p in points if p.weight not in users and p.weight in tensors]
    if missing:
        raise Int8ExportError(f"{len(missing)} quantized layers have weights that feed no Conv/MatMul/Gemm node "
                              f"of the ONNX graph, so they cannot be quantized there: {', '.join(missing[:5])}")
    return users


def insert_qdq(model_proto, points: list[QuantPoint]) -> tuple[dict, list[Probe]]:
    """Quantize weights and inputs of the layers in ``points`` in place; returns counts and probes.

    A layer whose weight is absent from the graph is one ``export_forward`` does not use (e.g. the
    pooler of a token tagger); it is listed in ``layers_not_in_graph``.
    """
    graph = model_proto.graph
    users = _weight_users(graph, points)
    nodes = list(graph.node)
    head, before, probes = [], {}, []
    for point in (p for p in points if p.weight in users):
        dq = _quantize_weight(graph, point, nodes[users[point.weight][0]])
        head.append(dq)
        for k, pos in enumerate(users[point.weight]):
            node = nodes[pos]
            probes.append(Probe(point.layer, node.input[0], node.output[0], len(node.input) > 2))
            node.input[WEIGHT_OPS[node.op_type]] = dq.output[0]
            if point.input_quantized:
                before[pos] = _qdq_input(graph, point, node, k)
    # topological order: weight dequantizers first, each input QDQ right before its node
    ordered = head + [n for pos, node in enumerate(nodes) for n in before.get(pos, []) + [node]]
    del graph.node[:]
    graph.node.extend(ordered)
    _drop_dead_constants(graph, set(users))
    counts = {"quantized_weights": len(head), "quantized_inputs": len(before),
              "layers_not_in_graph": [p.layer for p in points if p.weight not in users]}
    return counts, probes


def _drop_dead_constants(graph, names: set[str]) -> None:
    """Remove the float copies of quantized weights that no node reads any more."""
    used = {i for node in graph.node for i in node.input} | {o.name for o in graph.output}
    dead = {n for n in names if n not in used}
    keep = [n for n in graph.node if not (n.op_type == "Constant" and set(n.output) <= dead)]
    inits = [i for i in graph.initializer if i.name not in dead]
    del graph.node[:]
    graph.node.extend(keep)
    del graph.initializer[:]
    graph.initializer.extend(inits)


# -- running and comparing ------------------------------------------------------------------
def onnxruntime_outputs(model, inputs: dict[str, np.ndarray], optimize: bool = True,
                        names: list[str] | None = None) -> list[np.ndarray]:
    """Outputs of ONNX Runtime (CPU) for a path or a ModelProto. ``optimize=False`` runs every node
    as written (no int8 kernel fusion): the file's exact meaning, independent of the CPU."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    source = str(model) if isinstance(model, (str, Path)) else model.SerializeToString()
    session = ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])
    return session.run(names, inputs)


def output_diff(got: list[np.ndarray], reference: list[np.ndarray]) -> float:
    """Worst output difference: max abs diff relative to max(1, |reference|) for float outputs,
    the fraction of differing elements for integer outputs (e.g. tag ids)."""
    worst = 0.0
    for g, r in zip(got, reference):
        if np.issubdtype(r.dtype, np.floating):
            d = float_diff([g], [r])[1]
        else:
            d = float(np.mean(g != r)) if r.size else 0.0
        worst = max(worst, d)
    return worst


def relative_rms(got: np.ndarray, ref: np.ndarray) -> float:
    """||got - ref|| / ||ref||: robust to the few rounding flips two engines may disagree on."""
    err = float(np.linalg.norm((got.astype(np.float64) - ref).ravel()))
    return err / max(float(np.linalg.norm(ref.ravel().astype(np.float64))), 1e-12) if err else 0.0


def layer_diffs(model, proto, probes: list[Probe], feeds: dict) -> dict[str, float]:
    """Per quantized layer: relative RMS difference of the ONNX output against the paddle layer
    run on the same (ONNX) input."""
    import onnx
    import paddle

    from .qat import quantized_layers

    probe_model = onnx.ModelProto()
    probe_model.CopyFrom(proto)
    names = list(dict.fromkeys(n for p in probes for n in (p.source, p.output)))
    probe_model.graph.output.extend(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None)
                                    for n in names)
    values = dict(zip(names, onnxruntime_outputs(probe_model, feeds, optimize=False, names=names)))
    layers, diffs = quantized_layers(model), {}
    for probe in probes:
        layer = layers[probe.layer]
        with paddle.no_grad():
            sim = layer(paddle.to_tensor(values[probe.source])).numpy()
        if layer.bias is not None and not probe.has_bias:  # paddle2onnx adds the bias in a later node
            shape = [1] * sim.ndim
            shape[1 if getattr(layer, "_data_format", None) == "NCHW" else -1] = -1
            sim = sim - layer.bias.numpy().reshape(shape)
        diffs[probe.layer] = max(diffs.get(probe.layer, 0.0), relative_rms(values[probe.output], sim))
    return diffs


# -- export -----------------------------------------------------------------------------------
def _job_spec(spec: dict | None) -> dict:
    return {k: v for k, v in (spec or {}).items() if k in ("outputs", "example_shapes", "input_ranges")}


def float_onnx(model, spec: dict, directory: Path):
    """The float ONNX of the QAT model (quantizers off) through the regular exporter, checked
    against the float model; returns (job, example inputs, fake-quantized outputs, float outputs)."""
    from kits.export.exporter import make_job, output_names, reference_outputs
    from kits.export.formats import OnnxExporter, PaddleExporter

    job = make_job(model, _job_spec(spec), directory)
    reference, example = reference_outputs(job)           # the fake-quantized outputs
    job.outputs = output_names(_job_spec(spec), len(reference))
    with float_graph(model):
        float_reference, _ = reference_outputs(job)
        job.files["paddle"] = PaddleExporter().run(job).files
        # unsimplified: the trained scales belong to the paddle weights, BatchNorm not folded in
        job.files["onnx"] = OnnxExporter(simplify=False).run(job).files
    feeds = {i["name"]: a for i, a in zip(job.inputs, example)}
    diff = output_diff(onnxruntime_outputs(job.files["onnx"][0], feeds), float_reference)
    if diff > FLOAT_TOLERANCE:
        raise Int8ExportError(f"paddle2onnx converted the float graph of {type(model).__name__} wrongly: "
                              f"ONNX Runtime differs from paddle by {diff:.3g}")
    return job, feeds, reference, float_reference


def write_int8_onnx(model, spec: dict, path: Path) -> dict:
    """Export, quantize and check layer by layer; returns the facts (raises on a broken layer)."""
    import onnx

    points = quant_points(model)
    if not points:
        raise Int8ExportError(f"{type(model).__name__} has no quantized layer: apply the QAT strategy first")
    with tempfile.TemporaryDirectory() as tmp:
        job, feeds, reference, float_reference = float_onnx(model, spec, Path(tmp))
        proto = onnx.load(str(job.files["onnx"][0]))
    counts, probes = insert_qdq(proto, points)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
    diffs = layer_diffs(model, proto, probes, feeds)
    worst = max(diffs, key=diffs.get)
    return {**counts, "worst_layer": worst, "layer_diff": diffs[worst], "feeds": feeds, "reference": reference,
            "quantization_error": output_diff(float_reference, reference)}


def export_int8_onnx(model, spec: dict, out_dir, tolerance: float = 0.01, info: dict | None = None) -> Path:
    """Write ``out_dir/model_int8.onnx`` from a trained QAT model; returns its path.

    ``spec`` is the task's deploy spec (its ``outputs`` name the graph outputs). Raises
    :class:`Int8ExportError` when a quantized layer of the file differs from its paddle layer by
    more than ``tolerance`` (relative RMS), or when the file run node by node differs from the
    fake-quantized model (``onnx_diff``, see :func:`output_diff`) by more than twice the
    quantization error itself (fake-quantized against float, ``quantization_error``) and more
    than ``tolerance``. ONNX Runtime with its int8 kernels (``onnxruntime_diff``) is reported only:
    on CPUs without VNNI (AVX2 only) int8 kernels sum u8*s8 pairs in int16 and saturate with
    8-bit weights; ``weight_bits: 7`` avoids that. The facts go to ``info['qat_export']``.
    """
    from .qat import modes_kept

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / INT8_FILE
    with modes_kept(model):
        model.eval()
        facts = write_int8_onnx(model, spec, path)
    feeds, reference = facts.pop("feeds"), facts.pop("reference")
    facts["onnx_diff"] = output_diff(onnxruntime_outputs(path, feeds, optimize=False), reference)
    facts["onnxruntime_diff"] = output_diff(onnxruntime_outputs(path, feeds), reference)
    facts.update(tolerance=tolerance, file=path.name)
    if info is not None:
        info["qat_export"] = facts
    log.info("INT8 ONNX %s: %d weights, %d inputs quantized; worst layer %s differs by %.3g; end to end %.3g "
             "(ONNX Runtime int8 kernels %.3g)", path, facts["quantized_weights"], facts["quantized_inputs"],
             facts["worst_layer"], facts["layer_diff"], facts["onnx_diff"], facts["onnxruntime_diff"])
    if facts["layer_diff"] > tolerance:
        raise Int8ExportError(f"the INT8 ONNX layer {facts['worst_layer']} disagrees with the fake-quantized layer: "
                              f"relative difference {facts['layer_diff']:.3g} > tolerance {tolerance}; {path} is "
                              "kept for inspection")
    if facts["onnx_diff"] > max(tolerance, 2 * facts["quantization_error"]):
        raise Int8ExportError(f"the INT8 ONNX model disagrees with the fake-quantized model by "
                              f"{facts['onnx_diff']:.3g}, more than twice the quantization error "
                              f"({facts['quantization_error']:.3g}); {path} is kept for inspection")
    return path
