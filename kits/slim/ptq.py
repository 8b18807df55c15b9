"""Post-training quantization of the exported ONNX model with ONNX Runtime's quantizer or NNCF.

Static INT8 (QDQ) calibrated on training samples that went through the validation transforms, or
dynamic (weights-only INT8, activations quantized at run time; the usual choice for
Transformers). The QDQ file runs in ONNX Runtime and in OpenVINO (which reads the QDQ pairs as
its own low-precision ops). NNCF, OpenVINO's own quantizer, places the QDQ pairs where OpenVINO's
INT8 kernels want them and corrects the biases the rounding shifts.
"""

from __future__ import annotations

import contextlib
import copy
import fnmatch
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path

from kits.core.errors import ConfigError, did_you_mean

from .base import STRATEGIES, SlimContext, Strategy
from .fallback import COMPUTE

log = logging.getLogger(__name__)

# Calibration algorithms: ONNX Runtime's names, plus the names PaddleSlim users know for the same idea
ALGOS = {"minmax": "MinMax", "abs_max": "MinMax", "avg": "MinMax", "entropy": "Entropy", "kl": "Entropy",
         "percentile": "Percentile", "hist": "Percentile", "distribution": "Distribution",
         "mse": "MinMax"}  # mse: MinMax with each activation's range replaced (kits/slim/mse_calib.py)
# NNCF's activation range estimators for the same names (None: its default, min/max)
NNCF_RANGES = {"minmax": None, "abs_max": None, "avg": "MEAN_MINMAX", "percentile": "MEAN_QUANTILE",
               "hist": "MEAN_QUANTILE", "mse": "HISTOGRAM"}
TYPES = ("int8", "uint8")
FORMATS = ("qdq", "qoperator")
QUANTIZERS = ("onnxruntime", "nncf")
PRESETS = ("mixed", "performance")   # NNCF: asymmetric / symmetric activations
NARROW_MARGIN_DB = 0.5  # SQNR a one-layer fallback may give up against the whole-tensor one (it is faster)
NARROW_MAX_READERS = 8  # more readers than this: the tensor-level fallback stays


@STRATEGIES.register
@dataclass
class PTQ(Strategy):
    """INT8 post-training quantization of the exported model.

    algo: minmax (= abs_max), avg (min/max averaged over calibration batches), entropy (= KL),
    percentile (= hist), distribution, mse (per activation the range with the least squared
    quantization error; NNCF: its histogram search). calib_samples: training samples used for calibration.
    quant_format: ``qoperator`` (QLinearConv and friends: what ONNX Runtime runs fastest on CPU) or
    ``qdq`` (Quantize/Dequantize pairs: what OpenVINO and TensorRT read). op_types: ONNX op types to
    quantize (null: every type the quantizer supports). exclude: glob patterns of ONNX node names
    kept in float; keep_outputs_float also keeps the output layers in float (the last Conv/MatMul
    before each output and the reshapes after it: scores and box-distribution bins need more than
    256 levels). dynamic: weights-only quantization without calibration.

    fallback_sqnr_db (QDQ only; null: off) keeps in float the activations that hurt most, measured
    one by one on ``fallback_samples`` calibration samples, until the outputs reach this
    signal-to-noise ratio against FP32 or ``fallback_max_tensors`` are float (kits/slim/fallback.py).

    reduce_range (default true) stores 7-bit weights. x86 CPUs without VNNI (AVX2, AVX-512 before
    Cascade Lake) multiply uint8 activations by int8 weights with an instruction that adds pairs
    of products in int16 and saturates; with full 8-bit per-channel weights the saturation wrecks
    the model in ONNX Runtime and OpenVINO alike (ESPNet on CamVid: 42% of pixels kept against 97%
    with 7-bit weights). Only on VNNI/AMX or ARM targets is ``false`` worth its extra bit.

    quantizer: ``onnxruntime`` (everything above) or ``nncf`` (static QDQ only; NNCF chooses the
    ranges, per-channel weights, bias correction; ``preset`` mixed or performance; ``reduce_range``
    is its overflow fix, extended to the depthwise weights NNCF leaves 8-bit (OpenVINO saturates on
    them too: PicoDet fell to 0.11 mAP in OpenVINO, 0.71 with them 7-bit); ``exclude`` /
    ``keep_outputs_float`` become its ignored scope; ``model_type: transformer`` turns on its
    Transformer handling: SmoothQuant, float softmax/norms).
    """

    stage = "artifact"

    algo: str = "minmax"
    calib_samples: int = 32
    per_channel: bool = True
    reduce_range: bool = True
    activation_type: str = "uint8"
    weight_type: str = "int8"
    percentile: float = 99.999
    quant_format: str = "qdq"
    op_types: list | None = None
    exclude: list = field(default_factory=list)
    keep_outputs_float: bool = True
    dynamic: bool = False
    fallback_sqnr_db: float | None = None
    fallback_max_tensors: int = 16
    fallback_samples: int = 8
    quantizer: str = "onnxruntime"
    preset: str = "mixed"
    model_type: str | None = None

    def __post_init__(self):
        if self.quantizer not in QUANTIZERS:
            raise ConfigError(f"PTQ.quantizer must be one of {', '.join(QUANTIZERS)}, got {self.quantizer!r}."
                              f"{did_you_mean(str(self.quantizer), QUANTIZERS)}")
        if self.preset not in PRESETS:
            raise ConfigError(f"PTQ.preset must be one of {', '.join(PRESETS)}, got {self.preset!r}")
        if self.model_type not in (None, "transformer"):
            raise ConfigError(f"PTQ.model_type must be null or transformer, got {self.model_type!r}")
        if self.model_type is not None and self.quantizer != "nncf":
            raise ConfigError("PTQ.model_type is an option of quantizer nncf")
        if self.algo.lower() not in ALGOS:
            raise ConfigError(f"PTQ.algo '{self.algo}' is unknown.{did_you_mean(self.algo, ALGOS)} "
                              f"Valid: {', '.join(ALGOS)}")
        if self.quantizer == "nncf":
            if self.algo.lower() not in NNCF_RANGES:
                raise ConfigError(f"PTQ.algo '{self.algo}' is not offered by quantizer nncf; "
                                  f"it takes {', '.join(NNCF_RANGES)}")
            unsupported = [k for k, bad in (("dynamic", self.dynamic), ("quant_format", self.quant_format != "qdq"))
                           if bad]
            if unsupported:
                raise ConfigError(f"PTQ with quantizer nncf: {', '.join(unsupported)} belong to the onnxruntime "
                                  f"quantizer (NNCF writes static QDQ)")
        for key in ("activation_type", "weight_type"):
            if getattr(self, key) not in TYPES:
                raise ConfigError(f"PTQ.{key} must be one of {', '.join(TYPES)}, got {getattr(self, key)!r}")
        if self.quant_format not in FORMATS:
            raise ConfigError(f"PTQ.quant_format must be one of {', '.join(FORMATS)}, got {self.quant_format!r}."
                              f"{did_you_mean(str(self.quant_format), FORMATS)}")
        if not isinstance(self.calib_samples, int) or self.calib_samples < 1:
            raise ConfigError(f"PTQ.calib_samples must be a positive integer, got {self.calib_samples!r}")
        if self.fallback_sqnr_db is not None and (self.dynamic or self.quant_format != "qdq"):
            raise ConfigError("PTQ.fallback_sqnr_db needs static QDQ quantization (quant_format: qdq, dynamic: false)")

    def apply(self, ctx: SlimContext) -> None:  # nothing to do on the paddle model
        ctx.precision = "int8"

    def quantize_artifact(self, ctx: SlimContext, onnx_file: Path, out_dir: Path) -> Path:
        import onnx
        from onnxruntime import quantization as q

        out = Path(out_dir) / "model_int8.onnx"
        types = {"int8": q.QuantType.QInt8, "uint8": q.QuantType.QUInt8}
        common = {"op_types_to_quantize": self.op_types, "per_channel": self.per_channel,
                  "reduce_range": self.reduce_range, "weight_type": types[self.weight_type]}
        # shape inference + graph clean-up first; it also turns the exporter's Constant weights into
        # initializers, the only weights the quantizers quantize (dynamic would silently keep all in float)
        prepared = Path(out_dir) / "model_prepared.onnx"
        q.shape_inference.quant_pre_process(str(onnx_file), str(prepared), skip_symbolic_shape=True)
        model = onnx.load(str(prepared))
        excluded = self._excluded(model)
        if self.quantizer == "nncf":
            calib = self._quantize_nncf(ctx, copy.deepcopy(model), excluded, out)  # model stays the float reference
        elif self.dynamic:
            # the dynamic quantizer splits a Gemm into '<name>_MatMul' + '<name>_Add' before it matches names
            split = [f"{n.name}_{part}" for n in model.graph.node if n.name in excluded and n.op_type == "Gemm"
                     for part in ("MatMul", "Add")]
            q.quantize_dynamic(str(prepared), str(out), nodes_to_exclude=excluded + split, **common)
            ctx.info["ptq"] = {"dynamic": True}
        else:
            names = [i.name for i in model.graph.input]
            options, info = self._calibration_options(ctx, prepared, names)
            reader = _Reader(ctx, names, self.calib_samples)
            fmt = q.QuantFormat.QDQ if self.quant_format == "qdq" else q.QuantFormat.QOperator
            q.quantize_static(str(prepared), str(out), reader, quant_format=fmt,
                              activation_type=types[self.activation_type], nodes_to_exclude=excluded,
                              calibrate_method=getattr(q.CalibrationMethod, ALGOS[self.algo.lower()]),
                              extra_options=options, **common)
            ctx.info["ptq"] = {"calibration_samples": reader.seen, "algo": self.algo, **info}
        if self.fallback_sqnr_db is not None:
            feeds = self._fall_back(ctx, model, out)
            if self.quantizer == "nncf":
                self._narrow_fallback(ctx, model, excluded, calib, feeds, out)
        prepared.unlink(missing_ok=True)
        ctx.info["ptq"]["float_nodes"] = excluded
        log.info("PTQ wrote %s (%d nodes kept in float)", out, len(excluded))
        return out

    def _calibration_options(self, ctx: SlimContext, prepared: Path, names: list[str]) -> tuple[dict, dict]:
        """ONNX Runtime's extra options for ``algo`` (mse: a range per activation, measured first)."""
        options = {"CalibMovingAverage": self.algo.lower() == "avg", "CalibPercentile": self.percentile}
        if self.algo.lower() != "mse":
            return options, {}
        from .mse_calib import mse_overrides

        overrides, clipped = mse_overrides(prepared, _Reader(ctx, names, self.calib_samples), self.op_types)
        return {**options, "TensorQuantOverrides": overrides}, {"mse_ranges": len(overrides),
                                                                "mse_clipped": len(clipped)}

    def _quantize_nncf(self, ctx: SlimContext, model, excluded: list[str], out: Path) -> list[dict]:
        """NNCF's INT8 model written to ``out``; returns the calibration feeds for another pass."""
        import onnx

        reader = _Reader(ctx, [i.name for i in model.graph.input], self.calib_samples)
        feeds = list(iter(reader.get_next, None))
        quantized, halved = self._nncf(model, feeds, excluded)
        onnx.save(quantized, str(out))
        ctx.info["ptq"] = {"calibration_samples": reader.seen, "quantizer": "nncf", "algo": self.algo,
                           "preset": self.preset,
                           "model_type": self.model_type, "weights_made_7bit": halved}
        return feeds

    def _nncf(self, model, feeds: list[dict], ignored: list[str]):
        import nncf
        from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

        fix = OverflowFix.ENABLE if self.reduce_range else OverflowFix.DISABLE
        advanced = {"overflow_fix": fix}
        if NNCF_RANGES[self.algo.lower()]:
            from nncf.quantization.range_estimator import RangeEstimatorParametersSet

            advanced["activations_range_estimator_params"] = getattr(RangeEstimatorParametersSet,
                                                                     NNCF_RANGES[self.algo.lower()])
        nncf.set_log_level(logging.WARNING)  # its per-node INFO lines would land on stdout
        with contextlib.redirect_stdout(sys.stderr):  # and its progress bars: stdout may carry JSON
            quantized = nncf.quantize(model, nncf.Dataset(feeds), preset=nncf.QuantizationPreset(self.preset),
                                      target_device=nncf.TargetDevice.CPU, subset_size=len(feeds),
                                      model_type=nncf.ModelType.TRANSFORMER if self.model_type else None,
                                      ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
                                      advanced_parameters=AdvancedQuantizationParameters(**advanced))
        return quantized, seven_bit_weights(quantized) if self.reduce_range else 0

    def _fall_back(self, ctx: SlimContext, float_model, out: Path) -> list[dict]:
        """The measured fallback on the written model; returns the feeds it measured on."""
        import onnx

        from .fallback import search

        reader = _Reader(ctx, [i.name for i in float_model.graph.input], self.fallback_samples)
        feeds = list(iter(reader.get_next, None))
        model, result = search(float_model, onnx.load(str(out)), feeds, float(self.fallback_sqnr_db),
                               self.fallback_max_tensors)
        onnx.save(model, str(out))
        ctx.info["ptq"]["fallback"] = result.as_dict()
        return feeds

    def _narrow_fallback(self, ctx: SlimContext, float_model, excluded: list[str], calib: list[dict],
                         feeds: list[dict], out: Path) -> None:
        """NNCF: leave a single layer that reads the fallback's float tensors in float instead of all.

        A tensor read in float makes every layer behind it float; often one reader is what the
        rounding hurts (a depthwise convolution gives each channel its own output, so channels far
        below the tensor's range lose everything, while a 1x1 convolution mixes them). Each reader is
        tried alone in NNCF's ignored scope; the best is kept when its outputs are within
        ``NARROW_MARGIN_DB`` of the fallback's SQNR against FP32.
        """
        import onnx

        from .fallback import compute_readers, sqnr_scorer

        fallback = ctx.info["ptq"]["fallback"]
        readers = compute_readers(float_model, fallback["float_tensors"])
        if not readers or len(readers) > NARROW_MAX_READERS:  # each reader costs one more NNCF run
            return
        score = sqnr_scorer(float_model, feeds)
        tried = {}
        for node in readers:
            quantized, _ = self._nncf(copy.deepcopy(float_model), calib, excluded + [node])
            tried[node] = (score(quantized), quantized)
        best = max(tried, key=lambda n: tried[n][0])
        fallback["readers_sqnr_db"] = {n: round(v[0], 2) for n, v in tried.items()}
        if tried[best][0] >= fallback["sqnr_db"] - NARROW_MARGIN_DB:
            onnx.save(tried[best][1], str(out))
            fallback.update(float_tensors=[], float_layers=[best], sqnr_db=round(tried[best][0], 2))

    def _excluded(self, model) -> list[str]:
        named = [n.name for n in model.graph.node if any(fnmatch.fnmatch(n.name, p) for p in self.exclude)]
        return sorted(set(named) | (output_layers(model) if self.keep_outputs_float else set()))


def seven_bit_weights(model) -> int:
    """Requantize every int8 weight that uses more than 7 bits to 7 bits (twice the scale), in place;
    returns how many weight tensors changed."""
    import numpy as np
    from onnx import numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    changed = 0
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" or node.input[0] not in inits or node.input[1] not in inits:
            continue
        weight = numpy_helper.to_array(inits[node.input[0]])
        if weight.dtype != np.int8 or np.abs(weight.astype(np.int16)).max() <= 64:
            continue
        scale = numpy_helper.to_array(inits[node.input[1]])
        narrow = np.clip(np.round(weight.astype(np.float32) / 2), -64, 63).astype(np.int8)
        inits[node.input[0]].CopyFrom(numpy_helper.from_array(narrow, node.input[0]))
        inits[node.input[1]].CopyFrom(numpy_helper.from_array((scale * 2).astype(scale.dtype), node.input[1]))
        changed += 1
    return changed


# ops that only move or squash values: the output layer is the compute op behind them
PASS_THROUGH = {"Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Sigmoid", "Softmax", "Concat",
                "Identity", "Split", "Slice"}


def output_layers(model) -> set[str]:
    """Nodes from each model output back to (and including) the first Conv/MatMul/Gemm, through
    reshapes, activations and constant bias adds: the layers whose values the post-processing reads
    directly (scores, box bins, logits)."""
    producer = {o: n for n in model.graph.node for o in n.output}
    constant = {t.name for t in model.graph.initializer}
    for node in model.graph.node:  # graph order is topological: constants fold forward
        if all(i in constant for i in node.input if i):
            constant.update(node.output)
    found, stack, seen = set(), [o.name for o in model.graph.output], set()
    while stack:
        node = producer.get(stack.pop())
        if node is None or node.name in seen:
            continue
        seen.add(node.name)
        if node.op_type in COMPUTE:
            found.add(node.name)
        elif node.op_type in PASS_THROUGH or (node.op_type in ("Add", "Mul") and constant & set(node.input)):
            found.add(node.name)
            stack.extend(node.input)
    return found


class _Reader:
    """ONNX Runtime's CalibrationDataReader protocol over the kit's calibration batches."""

    def __init__(self, ctx: SlimContext, names: list[str], samples: int):
        from .deployed import calibration_batches

        self.batches = calibration_batches(ctx.task, ctx.cfg, samples, batch_size=1, names=names)
        self.seen = 0

    def get_next(self):
        feed = next(self.batches, None)
        if feed is not None:
            self.seen += 1
        return feed
