"""``export()``: trace a model once, write every requested format and a self-describing deploy.yml."""

from __future__ import annotations

import importlib.metadata
import logging
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import yaml

from kits.core.errors import ConfigError, did_you_mean
from kits.core.fileio import atomic_path, sha256sum
from kits.deploy.errors import SpecError
from kits.deploy.predictor import output_diff
from kits.deploy.spec import SPEC_FILE, SPEC_VERSION, check_ops, load_spec

from .formats import FORMATS, Artifact, Job, plan

log = logging.getLogger(__name__)

SPEC_KEYS = ("task", "preprocess", "postprocess", "labels", "outputs", "example_shapes", "input_ranges",
             "config_hash", "assets")
DYNAMIC_DIM = 32       # example size of a dynamic non-batch dimension when the spec gives none
PARITY_TOLERANCE = 1e-4  # on the scaled diff (kits.deploy.predictor.output_diff)


class ExportResult(dict):
    """format -> main model file; ``deploy_file``, ``parity`` (engine -> max abs diff) and ``notes``."""

    def __init__(self, paths: dict[str, Path], deploy_file: Path, parity: dict[str, float], notes: list[str]):
        super().__init__(paths)
        self.deploy_file, self.parity, self.notes = deploy_file, parity, notes


def export(model, spec: dict, out_dir: str | Path, formats: Iterable[str] | str = ("onnx",),
           options: dict | None = None) -> ExportResult:
    """Export ``model.export_forward`` (traced with ``model.input_spec()``) to ``formats`` in ``out_dir``.

    ``spec`` holds what the runtime needs beside the graph: ``preprocess`` / ``postprocess`` op lists,
    ``labels``, ``task``, optional ``outputs`` names, ``example_shapes`` / ``input_ranges`` per input
    (for dynamic dims and integer inputs) and ``config_hash``. ``options`` maps a format to its options.
    """
    steps = plan(formats, options)
    spec = check_spec(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).unlink(missing_ok=True)  # a failed re-export must not leave a stale, valid-looking dir
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        job = make_job(model, spec, out)
        reference, example = reference_outputs(job)
        job.outputs = output_names(spec, len(reference))
        exporters = [(name, fmt.exporter(**opts)) for name, fmt, opts in steps]
        for _, exporter in exporters:
            exporter.check(job)
        artifacts = {}
        for name, exporter in exporters:
            log.debug("exporting %s", name)
            artifacts[name] = exporter.run(job)
            job.files[name] = artifacts[name].files
        parity = onnx_parity(job, example, reference)
        for name in ("paddle", "paddle-legacy"):
            if name in artifacts:
                artifacts[name].info["runtime_options"] = {"onednn": onednn_works(job, name, example, reference)}
        deploy_file = write_deploy_yml(job, spec, steps, artifacts, parity)
    finally:
        if was_training:
            model.train()
    paths = {name: a.files[0] for name, a in artifacts.items()}
    return ExportResult(paths, deploy_file, parity, job.notes)


def export_from_onnx(onnx_file: str | Path, model, spec: dict, out_dir: str | Path,
                     formats: Iterable[str] | str = ("onnx",), options: dict | None = None,
                     precision: str = "fp32") -> ExportResult:
    """Package an ONNX file made outside the exporter (e.g. INT8 from a quantizer) like ``export``:
    ``model.onnx``, the formats derived from it and deploy.yml. ``model`` supplies the input spec."""
    import shutil

    steps = [s for s in plan(formats, options) if s[0] != "paddle"]
    bad = [name for name, fmt, _ in steps if name != "onnx" and "onnx" not in fmt.needs]
    if bad:
        raise ConfigError(f"format(s) {', '.join(bad)} are not made from ONNX; "
                          f"from an ONNX file only {', '.join(n for n, f in FORMATS.items() if 'onnx' in f.needs)} can be")
    spec = check_spec(spec)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / SPEC_FILE).unlink(missing_ok=True)
    job = make_job(model, spec, out)
    job.outputs = output_names(spec, len(spec.get("outputs") or _onnx_outputs(onnx_file)))
    target = out / "model.onnx"
    if Path(onnx_file).resolve() != target.resolve():
        shutil.copyfile(onnx_file, target)
    job.files["onnx"] = [target]
    artifacts = {}
    for name, fmt, opts in steps:
        art = Artifact([target]) if name == "onnx" else fmt.exporter(**opts).run(job)
        art.precision = precision
        artifacts[name] = art
        job.files[name] = art.files
    deploy_file = write_deploy_yml(job, spec, steps, artifacts, {})
    return ExportResult({name: a.files[0] for name, a in artifacts.items()}, deploy_file, {}, job.notes)


def _onnx_outputs(onnx_file) -> list[str]:
    import onnx

    return [o.name for o in onnx.load(str(onnx_file), load_external_data=False).graph.output]


def check_spec(spec: dict | None) -> dict:
    spec = dict(spec or {})
    for key in spec:
        if key not in SPEC_KEYS:
            raise ConfigError(f"unknown deploy spec key '{key}'.{did_you_mean(key, SPEC_KEYS)} "
                              f"Valid keys: {', '.join(SPEC_KEYS)}")
    try:
        check_ops(spec.get("preprocess") or [], spec.get("postprocess") or [])
    except SpecError as exc:
        raise ConfigError(f"deploy spec: {exc}") from None
    return spec


def make_job(model, spec: dict, out: Path) -> Job:
    input_spec = list(model.input_spec())
    inputs = []
    for i, item in enumerate(input_spec):
        if not item.name:
            raise ConfigError(f"{type(model).__name__}.input_spec()[{i}] needs a name (InputSpec(..., name=...))")
        shape = [-1 if d is None or d < 0 else int(d) for d in item.shape]
        default = [d if d >= 0 else (1 if k == 0 else DYNAMIC_DIM) for k, d in enumerate(shape)]
        example = list((spec.get("example_shapes") or {}).get(item.name, default))
        if len(example) != len(shape) or any(s >= 0 and s != e for s, e in zip(shape, example)):
            raise ConfigError(f"example_shapes.{item.name}={example} does not fit the input shape {shape}")
        rng = (spec.get("input_ranges") or {}).get(item.name)
        inputs.append({"name": item.name, "dtype": str(item.dtype).replace("paddle.", ""), "shape": shape,
                       "example_shape": example, "range": list(rng) if rng else None})
    return Job(model, input_spec, out, inputs, [])


def example_inputs(inputs: list[dict], seed: int = 0) -> list[np.ndarray]:
    """Random inputs; batch 2 where the batch dim is dynamic, so the check exercises it."""
    rng = np.random.default_rng(seed)
    arrays = []
    for info in inputs:
        shape = list(info["example_shape"])
        if info["shape"][0] < 0:
            shape[0] = 2
        if info["dtype"].startswith("float"):
            arrays.append(rng.standard_normal(shape).astype(info["dtype"]))
        else:
            low, high = info["range"] or (0, 2)
            arrays.append(rng.integers(low, high, size=shape).astype(info["dtype"]))
    return arrays


def reference_outputs(job: Job) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Run the dygraph model once: output count and names, and the reference for the parity check."""
    import paddle

    example = example_inputs(job.inputs)
    with paddle.no_grad():
        outs = job.model.export_forward(*[paddle.to_tensor(a) for a in example])
    outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
    reference = [o.numpy() for o in outs]
    return reference, example


def output_names(spec: dict, count: int) -> list[str]:
    names = list(spec.get("outputs") or [f"output_{i}" for i in range(count)])
    if len(names) != count:
        raise ConfigError(f"deploy spec names {len(names)} outputs {names}, but export_forward returns {count}")
    return names


def onnx_parity(job: Job, example: list[np.ndarray], reference: list[np.ndarray]) -> dict[str, float]:
    if "onnx" not in job.files:
        return {}
    try:
        import onnxruntime as ort
    except ImportError:
        job.notes.append("parity not checked: onnxruntime is not installed")
        return {}
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(job.files["onnx"][0]), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {info["name"]: a for info, a in zip(job.inputs, example)})
    diff, scaled = output_diff(got, reference)
    if scaled > PARITY_TOLERANCE:
        job.notes.append(f"onnx parity: max abs diff {diff:.3g} ({scaled:.3g} scaled by the outputs' magnitude) "
                         f"against paddle exceeds {PARITY_TOLERANCE}")
        log.warning(job.notes[-1])
    return {"onnxruntime": diff}


def onednn_works(job: Job, fmt: str, example: list[np.ndarray], reference: list[np.ndarray]) -> bool:
    """Whether Paddle Inference runs this graph with oneDNN kernels and the same results.

    oneDNN is several times faster on CPU for matmul-heavy graphs (a MiniLM encoder: 2.8x), but
    paddle 3.3's oneDNN executor rejects some PIR attributes (PicoDet's interpolation), so export
    tries it once and deploy.yml records the answer as the runtime's default.
    """
    from paddle import inference

    from kits.deploy.backends.paddle_backend import cpu_config, run_predictor

    files = {p.suffix: p for p in job.files[fmt]}
    model = files.get(".json") or files.get(".pdmodel")
    try:
        got = run_predictor(inference.create_predictor(cpu_config(model, files[".pdiparams"], onednn=True)), example)
    except Exception as exc:  # noqa: BLE001 - any failure means "run it without oneDNN"
        job.notes.append(f"{fmt}: oneDNN off by default ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})")
        return False
    diff, scaled = output_diff(got, reference)
    if scaled > PARITY_TOLERANCE:
        job.notes.append(f"{fmt}: oneDNN off by default (max abs diff {diff:.3g} against paddle)")
        return False
    return True


def _versions(names: list[str]) -> dict[str, str]:
    found = {}
    for dist in dict.fromkeys(names):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            pass
    return found


class _Dumper(yaml.SafeDumper):
    """Short lists of numbers and strings (shapes, mean/std) on one line."""


def _represent_list(dumper, data):
    flow = len(data) <= 16 and all(isinstance(v, (int, float, str, type(None))) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_Dumper.add_representer(list, _represent_list)


def write_deploy_yml(job: Job, spec: dict, steps, artifacts: dict, parity: dict) -> Path:
    models: dict[str, Any] = {}
    for name, fmt, opts in steps:
        art = artifacts[name]
        models[name] = {"engine": fmt.engine, "files": [p.name for p in art.files], "precision": art.precision,
                        "sha256": {p.name: sha256sum(p) for p in art.files}, "options": opts, **art.info}
    tools = [t for name, fmt, _ in steps for t in fmt.tools] + (["onnxruntime"] if parity else [])
    data = {
        "format_version": SPEC_VERSION,
        "task": spec.get("task", ""),
        "inputs": job.inputs,
        "outputs": job.outputs,
        "preprocess": spec.get("preprocess") or [],
        "postprocess": spec.get("postprocess") or [],
        "labels": list(spec["labels"]) if spec.get("labels") is not None else None,
        "models": models,
        "source": {"config_hash": spec.get("config_hash")},
        "versions": _versions(tools),
        "parity": {k: float(v) for k, v in parity.items()},
        "notes": job.notes,
    }
    path = job.out_dir / SPEC_FILE
    with atomic_path(path) as tmp:
        tmp.write_text(yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True), encoding="utf-8")
    load_spec(job.out_dir)  # what the runtime will read must validate
    return path
