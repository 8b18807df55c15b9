"""Sensitivity-driven float fallback for QDQ models: the activations that hurt most stay float.

One uint8 scale per activation tensor fails when a tensor mixes a few huge values with many small
ones (right after a detector's stem, values reach hundreds while most channels stay near zero).
Which tensors matter is measured, not guessed: each activation's Quantize/Dequantize pair is
kept alone (weights stay INT8) and the outputs are compared with FP32 as a signal-to-quantization-
noise ratio (SQNR, dB) on a few calibration samples. The worst pairs are then removed, in growing
numbers, until the whole model reaches the target SQNR or the budget of float tensors is spent.
Removing a pair means the consumers read the float tensor (clamped to the pair's range); engines
then run those layers in float with dequantized weights, which costs speed, so the report gives
both the SQNR and the count.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass, field

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class FallbackResult:
    """What the search did: the tensors left in float and the SQNR before and after."""

    float_tensors: list[str]
    sqnr_db: float
    sqnr_db_before: float
    single_sqnr_db: dict[str, float] = field(default_factory=dict)  # tensor -> SQNR with only its pair

    def as_dict(self) -> dict:
        worst = sorted(self.single_sqnr_db.items(), key=lambda kv: kv[1])[:10]
        return {"float_tensors": self.float_tensors, "sqnr_db": round(self.sqnr_db, 2),
                "sqnr_db_before": round(self.sqnr_db_before, 2),
                "worst_single_tensors_db": {k: round(v, 2) for k, v in worst}}


def activation_pairs(model) -> dict[str, list[tuple]]:
    """Float activation tensor -> its (QuantizeLinear, [DequantizeLinear...]) pairs in a QDQ model.
    Weights (initializers or constants behind a DequantizeLinear) are not activations."""
    constants = {t.name for t in model.graph.initializer}
    constants |= {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    readers = _readers(model)
    pairs: dict[str, list[tuple]] = {}
    for node in model.graph.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in constants:
            continue
        dqs = [r for r in readers.get(node.output[0], []) if r.op_type == "DequantizeLinear"]
        if dqs and len(dqs) == len(readers.get(node.output[0], [])):
            pairs.setdefault(node.input[0], []).append((node, dqs))
    return pairs


def _quant_range(graph, q) -> tuple[float, float] | None:
    """The float interval a QuantizeLinear clamps to, (qmin - zp) * scale .. (qmax - zp) * scale;
    None when its scale is not one constant."""
    from onnx import numpy_helper

    values = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name in q.input[1:]}
    scale = values.get(q.input[1])
    if scale is None or scale.size != 1:
        return None
    zp = values.get(q.input[2]) if len(q.input) > 2 else None
    info = np.iinfo(zp.dtype if zp is not None else np.uint8)
    z = float(zp.reshape(-1)[0]) if zp is not None else 0.0
    return float((info.min - z) * scale.reshape(-1)[0]), float((info.max - z) * scale.reshape(-1)[0])


def without_pairs(model, tensors) -> object:
    """A copy of ``model`` whose listed activation tensors are read in float.

    Each Quantize/Dequantize pair becomes a float Clip to the same range: only the rounding goes.
    The clamp must stay because quantizers fold a Relu (or Clip) into the pair behind it (a uint8
    zero point of 0 clamps at zero), so dropping the pair outright would drop the activation too.
    """
    from onnx import helper, numpy_helper

    out = copy.deepcopy(model)
    pairs = activation_pairs(out)
    drop, rename, clips = set(), {}, {}
    for tensor in tensors:
        for k, (q, dqs) in enumerate(pairs.get(tensor, [])):
            bounds = _quant_range(out.graph, q)
            if bounds is None:
                continue
            clipped = f"{tensor}.float_clip{k}"
            names = [f"{clipped}.min", f"{clipped}.max"]
            out.graph.initializer.extend([numpy_helper.from_array(np.array(b, np.float32), n)
                                          for b, n in zip(bounds, names)])
            clips.setdefault(tensor, []).append(helper.make_node("Clip", [tensor, *names], [clipped],
                                                                 name=f"{clipped}.Clip"))
            drop.add(id(q))
            for dq in dqs:
                drop.add(id(dq))
                rename[dq.output[0]] = clipped
    nodes = []
    for node in out.graph.node:
        if id(node) in drop:
            if node.op_type == "QuantizeLinear":  # the Clips take the first pair's place (topological order)
                nodes.extend(clips.pop(node.input[0], []))
            continue
        for i, name in enumerate(node.input):
            if name in rename:
                node.input[i] = rename[name]
        nodes.append(node)
    for output in out.graph.output:
        if output.name in rename:  # a model output behind a pair keeps its name through an Identity
            nodes.append(helper.make_node("Identity", [rename[output.name]], [output.name]))
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def sqnr_db(reference: list[np.ndarray], test: list[np.ndarray]) -> float:
    """The worst output's SQNR in dB (signal energy over error energy, summed over samples)."""
    worst = np.inf
    for ref, got in zip(zip(*reference), zip(*test)):
        signal = sum(float(np.square(r.astype(np.float64)).sum()) for r in ref)
        noise = sum(float(np.square(r.astype(np.float64) - g).sum()) for r, g in zip(ref, got))
        worst = min(worst, 10 * np.log10(max(signal, 1e-30) / max(noise, 1e-30)))
    return float(worst)


class _Runner:
    """Runs ONNX models from memory on fixed feeds in ONNX Runtime."""

    def __init__(self, feeds: list[dict], threads: int = 1):
        self.feeds, self.threads = feeds, threads

    def __call__(self, model) -> list[list[np.ndarray]]:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.log_severity_level = 3
        session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        return [session.run(None, feed) for feed in self.feeds]


COMPUTE = {"Conv", "MatMul", "Gemm", "ConvTranspose"}  # the layers quantization is for
# ops that move values without computing on them: a tensor's readers are the compute ops behind them
MOVERS = {"MaxPool", "Reshape", "Transpose", "Split", "Slice", "Concat", "Identity", "Squeeze", "Unsqueeze",
          "Flatten", "Resize", "Pad"}


def _readers(model) -> dict[str, list]:
    """Tensor name -> the nodes that take it as an input."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return readers


def compute_readers(model, tensors) -> list[str]:
    """Names of the Conv/MatMul/Gemm nodes that read ``tensors``, directly or through ops that only
    move values (pooling by max, reshapes, splits, concatenations), in graph order."""
    readers = _readers(model)
    found, stack, seen = set(), list(tensors), set()
    while stack:
        for node in readers.get(stack.pop(), []):
            if node.name in seen:
                continue
            seen.add(node.name)
            if node.op_type in COMPUTE:
                found.add(node.name)
            elif node.op_type in MOVERS:
                stack.extend(node.output)
    return [n.name for n in model.graph.node if n.name in found]


def sqnr_scorer(float_model, feeds: list[dict], threads: int = 1):
    """A function giving a model's worst-output SQNR against ``float_model`` on ``feeds``."""
    run = _Runner(feeds, threads)
    reference = run(float_model)
    return lambda model: sqnr_db(reference, run(model))


def search(float_model, qdq_model, feeds: list[dict], target_db: float, max_tensors: int,
           threads: int = 1) -> tuple[object, FallbackResult]:
    """Remove the worst activation pairs of ``qdq_model`` until its outputs reach ``target_db``
    SQNR against ``float_model`` on ``feeds`` (or ``max_tensors`` are float). Returns the model."""
    score = sqnr_scorer(float_model, feeds, threads)
    before = score(qdq_model)
    pairs = list(activation_pairs(qdq_model))
    result = FallbackResult([], before, before)
    if before >= target_db or not pairs or max_tensors <= 0:
        return qdq_model, result
    for tensor in pairs:  # one activation quantized at a time (weights stay INT8 throughout)
        alone = without_pairs(qdq_model, [t for t in pairs if t != tensor])
        result.single_sqnr_db[tensor] = score(alone)
    ranked = sorted(pairs, key=result.single_sqnr_db.get)
    limit, count = min(max_tensors, len(ranked)), 1
    while True:
        count = min(count, limit)
        candidate = without_pairs(qdq_model, ranked[:count])
        result.float_tensors, result.sqnr_db = ranked[:count], score(candidate)
        log.info("float fallback: %d activation tensors in float -> %.1f dB (target %.1f dB)",
                 count, result.sqnr_db, target_db)
        if result.sqnr_db >= target_db or count >= limit:
            return candidate, result
        count *= 2
