"""The runtime's one entry point: deploy.yml + a backend -> results, and cross-backend checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .backends import BACKENDS, backend_info, create_backend, installed
from .errors import EngineMissingError, FormatMismatchError, InputError
from .ops import POSTPROCESS, PREPROCESS, PostContext, build_pipeline
from .spec import DeploySpec, load_spec


class Predictor:
    """Run an exported model directory with one backend.

    ``predict`` takes one item or a list (image paths, BGR arrays, or dicts of input arrays) and
    returns post-processed results; ``run_raw`` takes model input arrays and returns raw outputs.
    """

    def __init__(self, model_dir: str | Path, backend: str = "onnxruntime", threads: int | None = None,
                 device: str = "cpu", options: dict | None = None, format: str | None = None,
                 verify: bool = True):
        self.spec: DeploySpec = load_spec(model_dir)
        self.backend = backend
        self.format = format or pick_format(self.spec, backend)
        if verify:
            self.spec.verify(self.format)
        self.engine = create_backend(backend, self.spec, self.format, threads, device, options)
        self.pre = build_pipeline(self.spec.preprocess, PREPROCESS, base_dir=self.spec.model_dir)
        self.post = build_pipeline(self.spec.postprocess, POSTPROCESS)

    # -- raw tensors ------------------------------------------------------------------------
    def run_raw(self, tensors: list | tuple | dict) -> list[np.ndarray]:
        """Model inputs (a list in spec order, or a dict by name), batch axis included -> raw outputs."""
        if isinstance(tensors, dict):
            missing = [i.name for i in self.spec.inputs if i.name not in tensors]
            if missing:
                raise InputError(f"missing model inputs {missing}; the model takes "
                                 f"{[i.name for i in self.spec.inputs]}")
            tensors = [tensors[i.name] for i in self.spec.inputs]
        if len(tensors) != len(self.spec.inputs):
            raise InputError(f"the model takes {len(self.spec.inputs)} inputs, got {len(tensors)}")
        arrays = [_check_array(np.asarray(t), info, batched=True) for t, info in zip(tensors, self.spec.inputs)]
        return [np.asarray(out) for out in self.engine.run(arrays)]

    # -- items -> results -------------------------------------------------------------------
    def prepare(self, item: Any) -> dict:
        """Run the pre-processing ops on one item; returns the sample dict."""
        sample = _as_sample(item)
        for op in self.pre:
            sample = op(sample)
        return sample

    def tensors(self, sample: dict) -> list[np.ndarray]:
        """The batch-of-one model inputs of a pre-processed sample."""
        single = len(self.spec.inputs) == 1
        arrays = []
        for info in self.spec.inputs:
            key = info.name if info.name in sample else ("image" if single and "image" in sample else None)
            if key is None:
                raise InputError(f"the model needs input '{info.name}', but pre-processing gave only "
                                 f"{sorted(k for k in sample if not k.endswith('_shape'))}; "
                                 f"is this the right kind of input for a '{self.spec.task or 'this'}' model?")
            arrays.append(_check_array(np.asarray(sample[key]), info, batched=False))
        return arrays

    def postprocess(self, outputs: list[np.ndarray], sample: dict, index: int = 0) -> dict:
        ctx = PostContext({name: out[index] for name, out in zip(self.spec.outputs, outputs)}, sample,
                          self.spec.labels)
        for op in self.post:
            op(ctx)
        return ctx.result

    def predict(self, inputs: Any) -> dict | list[dict]:
        items = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        results = []
        for item in items:
            sample = self.prepare(item)
            results.append(self.postprocess(self.run_raw(self.tensors(sample)), sample))
        return results if isinstance(inputs, (list, tuple)) else results[0]


def pick_format(spec: DeploySpec, backend: str) -> str:
    info = backend_info(backend)
    for fmt in info.formats:
        if fmt in spec.models:
            return fmt
    raise FormatMismatchError(f"{spec.model_dir} holds the formats {sorted(spec.models)}, but backend "
                              f"'{backend}' runs {' or '.join(info.formats)}; re-export with "
                              f"--format {info.formats[0]}, or choose a backend for an exported format")


def _as_sample(item: Any) -> dict:
    if isinstance(item, dict):
        return dict(item)
    if isinstance(item, np.ndarray):
        return {"image": item}
    if isinstance(item, (str, Path)):
        return {"path": str(item)}
    raise InputError(f"cannot predict on a {type(item).__name__}; give an image path, a BGR image array "
                     "or a dict of input arrays")


def _check_array(array: np.ndarray, info, batched: bool) -> np.ndarray:
    rank = len(info.shape)
    if not batched and array.ndim == rank - 1:
        array = array[None]
    if array.ndim != rank:
        raise InputError(f"input '{info.name}' must have {rank} dims {info.shape}, got shape {list(array.shape)}")
    for got, want in zip(array.shape, info.shape):
        if want >= 0 and got != want:
            raise InputError(f"input '{info.name}' must have shape {info.shape} (-1: any), got {list(array.shape)}")
    if np.issubdtype(array.dtype, np.floating) and not info.dtype.startswith("float"):
        raise InputError(f"input '{info.name}' takes {info.dtype} values, got {array.dtype} data")
    return np.ascontiguousarray(array, dtype=info.dtype)


# -- cross-backend parity -------------------------------------------------------------------
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "int8-weights": 5e-2}


def output_diff(got: list[np.ndarray], want: list[np.ndarray]) -> tuple[float, float]:
    """(max abs diff, max scaled diff) over outputs; the scaled diff divides each output's max abs
    diff by max(1, its largest |value|).

    Tolerances apply to the scaled diff: float32 rounding grows with the values, and two engines
    summing a hundred convolutions in different orders differ by ~1e-5 *relative* (PicoDet's box
    logits reach 9 and differ by 3e-4), while outputs within [-1, 1] keep the absolute bound.
    """
    diff = scaled = 0.0
    for g, w in zip(got, want):
        if g.size == 0:
            continue
        d = float(np.max(np.abs(g.astype(np.float64) - w.astype(np.float64))))
        diff = max(diff, d)
        scaled = max(scaled, d / max(1.0, float(np.max(np.abs(w)))))
    return diff, scaled


def random_inputs(spec: DeploySpec, seed: int = 0) -> list[np.ndarray]:
    """Inputs of each input's example shape: N(0, 1) floats, integers in its ``range`` (default [0, 2))."""
    rng = np.random.default_rng(seed)
    arrays = []
    for info in spec.inputs:
        if info.dtype.startswith("float"):
            arrays.append(rng.standard_normal(info.example_shape).astype(info.dtype))
        else:
            low, high = info.range or (0, 2)
            arrays.append(rng.integers(low, high, size=info.example_shape).astype(info.dtype))
    return arrays


def _discrete(value: Any) -> Any:
    """The parts of a result that must agree exactly across backends (labels, masks, ids)."""
    if isinstance(value, dict):
        return {k: _discrete(v) for k, v in value.items() if not isinstance(v, float)}
    if isinstance(value, (list, tuple)):
        return [_discrete(v) for v in value if not isinstance(v, float)]
    if isinstance(value, np.ndarray):
        return value.tolist() if not np.issubdtype(value.dtype, np.floating) else None
    return value


def compare_backends(model_dir: str | Path, items: list | None = None, backends: list[str] | None = None,
                     threads: int | None = 1) -> list[dict]:
    """Run every installed backend on the same inputs and compare with the paddle backend.

    ``items`` are predict() inputs (default: random tensors of the example shapes). Returns one row
    per (backend, format) with the max abs diff of raw outputs, whether the discrete results agree,
    the same scaled by the outputs' magnitude (``output_diff``), and ``ok`` (scaled diff within the
    format's precision tolerance, results identical for fp32).
    """
    ref = Predictor(model_dir, "paddle", threads=threads)
    spec = ref.spec
    cases = [(random_inputs(spec), {})] if not items else [(ref.tensors(s), s) for s in map(ref.prepare, items)]
    expected = [(ref.run_raw(t), s) for t, s in cases]
    rows = []
    for name in backends or list(BACKENDS):
        for fmt in backend_info(name).formats:
            if fmt not in spec.models or (name, fmt) == ("paddle", ref.format):
                continue
            rows.append(_compare_one(model_dir, name, fmt, threads, cases, expected, ref))
    return rows


def _compare_one(model_dir, name, fmt, threads, cases, expected, ref) -> dict:
    precision = ref.spec.models[fmt].get("precision", "fp32")
    row = {"backend": name, "format": fmt, "precision": precision, "max_abs_diff": None, "max_scaled_diff": None,
           "tolerance": TOLERANCE.get(precision, 5e-2), "results_equal": None, "ok": False, "error": None}
    if not installed(name):
        row["error"] = f"not installed (pip install -e .[{backend_info(name).extra}])"
        return row
    try:
        predictor = Predictor(model_dir, name, threads=threads, format=fmt)
        diff, scaled, same = 0.0, 0.0, True
        for (tensors, sample), (want, _) in zip(cases, expected):
            got = predictor.run_raw(tensors)
            for g, w in zip(got, want):
                if g.shape != w.shape:
                    raise InputError(f"output shape {list(g.shape)} differs from paddle's {list(w.shape)}")
            d, sd = output_diff(got, want)
            diff, scaled = max(diff, d), max(scaled, sd)
            for i in range(want[0].shape[0]):
                same &= _discrete(ref.postprocess(got, sample, i)) == _discrete(ref.postprocess(want, sample, i))
    except (EngineMissingError, InputError, RuntimeError, ValueError) as exc:
        row["error"] = f"{type(exc).__name__}: {exc}"
        return row
    row.update(max_abs_diff=diff, max_scaled_diff=scaled, results_equal=bool(same),
               ok=scaled <= row["tolerance"] and (same or precision != "fp32"))
    return row
