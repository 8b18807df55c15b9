"""The export formats: one typed exporter class per format and the FORMATS table that names them.

Formats derived from ONNX (openvino, mnn, ncnn, tensorrt) reuse the one ONNX file, which itself is
converted from the Paddle PIR model; ``needs`` says what a format is built from.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from kits.core.errors import ConfigError, KitsError, did_you_mean

from .onnx_passes import simplify

ONNX_OPSET = 13  # one fixed opset: read by every engine of the stack (MNN, pnnx, OpenVINO, TensorRT)


class ExportError(KitsError, RuntimeError):
    """A converter failed or cannot handle this model."""


@dataclass(frozen=True)
class Option:
    type: type
    default: Any = None
    choices: tuple | None = None
    help: str = ""

    def check(self, fmt: str, key: str, value: Any) -> Any:
        if value is None and self.default is None:
            return None
        ok = isinstance(value, self.type) and not (self.type is int and isinstance(value, bool))
        if not ok or (self.choices is not None and value not in self.choices):
            allowed = ", ".join(map(repr, self.choices)) if self.choices else self.type.__name__
            raise ConfigError(f"export option {fmt}.{key}={value!r} is invalid; expected {allowed}")
        return value


@dataclass
class Job:
    """What exporters share: the model, its described inputs/outputs and the files written so far."""

    model: Any
    input_spec: list
    out_dir: Path
    inputs: list[dict]          # name, dtype, shape (-1 dynamic), example_shape, range
    outputs: list[str]
    files: dict[str, list[Path]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass
class Artifact:
    files: list[Path]
    precision: str = "fp32"
    info: dict = field(default_factory=dict)


class Exporter:
    def __init__(self, **options):
        self.options = options

    def check(self, job: Job) -> None:
        """Refuse a model the format cannot hold before anything is written."""

    def run(self, job: Job) -> Artifact:
        raise NotImplementedError


def require(module: str, extra: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ExportError(f"{module} is needed for this export format ({exc}); "
                          f"install it with `pip install -e .[{extra}]`") from None


@contextlib.contextmanager
def captured() -> Iterator[list[str]]:
    """Capture C-level stdout/stderr of converters (they print a lot); the list gets the text."""
    text: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    with tempfile.TemporaryFile(mode="w+b") as sink:
        saved = [os.dup(1), os.dup(2)]
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield text
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text.append(sink.read().decode("utf-8", "replace"))


def tail(log: list[str], lines: int = 15) -> str:
    return "\n".join("".join(log).strip().splitlines()[-lines:])


# -- Paddle ---------------------------------------------------------------------------------
def _trace_and_save(job: Job, stem: str) -> None:
    import paddle

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "What you save is a function..."
        static = paddle.jit.to_static(job.model.export_forward, input_spec=job.input_spec, full_graph=True)
        paddle.jit.save(static, str(job.out_dir / stem))


class PaddleExporter(Exporter):
    """Paddle 3 PIR program (``model.json`` + ``model.pdiparams``) for Paddle Inference."""

    def run(self, job: Job) -> Artifact:
        try:
            _trace_and_save(job, "model")
        except Exception as exc:
            raise ExportError(f"tracing {type(job.model).__name__}.export_forward failed: {exc}") from exc
        files = [job.out_dir / "model.json", job.out_dir / "model.pdiparams"]
        if not files[0].is_file():
            raise ExportError("paddle.jit.save wrote no model.json: the PIR API is off in this process "
                              "(FLAGS_enable_pir_api=0); export in a process without that flag")
        return Artifact(files)


class LegacyExporter(Exporter):
    """Legacy program (``model_legacy.pdmodel``) for tools that cannot read PIR (OpenVINO, PaddleSlim PTQ)."""

    def run(self, job: Job) -> Artifact:
        from ..core.compat import legacy_program_ir

        try:
            with legacy_program_ir():
                _trace_and_save(job, "model_legacy")
        except Exception as exc:
            first = str(exc).strip().splitlines()[-1].strip() if str(exc).strip() else type(exc).__name__
            raise ExportError(f"paddle-legacy: Paddle's legacy program IR cannot trace this model ({first}); "
                              "use the 'paddle' (PIR) or 'onnx' format") from exc
        (job.out_dir / "model_legacy.pdiparams.info").unlink(missing_ok=True)
        return Artifact([job.out_dir / "model_legacy.pdmodel", job.out_dir / "model_legacy.pdiparams"])


# -- ONNX and the formats derived from it ---------------------------------------------------
def rename_outputs(graph, names: list[str]) -> None:
    """Give the graph outputs the model's output names (paddle2onnx calls them fetch_name_N)."""
    mapping = {out.name: new for out, new in zip(graph.output, names)}
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
    for out in graph.output:
        out.name = mapping.get(out.name, out.name)


class OnnxExporter(Exporter):
    """ONNX (fixed opset ``ONNX_OPSET``) through paddle2onnx from the PIR program."""

    def run(self, job: Job) -> Artifact:
        p2o = require("paddle2onnx", "onnx")
        onnx = require("onnx", "onnx")
        model_file, params_file = job.files["paddle"]
        error = None
        with captured() as log:
            try:  # optimize_tool 'none': the polygraphy pass would pip-install packages at run time
                data = p2o.export(str(model_file), str(params_file), None, opset_version=ONNX_OPSET,
                                  auto_upgrade_opset=False, enable_onnx_checker=True, optimize_tool="none")
            except Exception as exc:  # paddle2onnx logs its own errors and may fail later on its way out
                data, error = None, exc
        if not data:
            raise ExportError(f"paddle2onnx could not convert the model ({error}):\n{tail(log)}")
        model = onnx.load_from_string(data)
        rename_outputs(model.graph, job.outputs)
        changes = simplify(model) if self.options.get("simplify", True) else {}
        onnx.checker.check_model(model)
        path = job.out_dir / "model.onnx"
        onnx.save(model, str(path))
        return Artifact([path], info={"opset": ONNX_OPSET, **changes})


class OpenVINOExporter(Exporter):
    """OpenVINO IR (``model.xml`` + ``model.bin``), fp32 unless ``fp16``."""

    def run(self, job: Job) -> Artifact:
        ov = require("openvino", "openvino")
        import onnx

        from .onnx_passes import hardswish_as_clip

        graph = onnx.load(str(job.files["onnx"][0]))
        hardswish_as_clip(graph)  # the form OpenVINO fuses into convolutions
        staged = job.out_dir / "openvino_input.onnx"
        onnx.save(graph, str(staged))
        try:
            # Core.read_model parses the ONNX with the same frontend as convert_model, without the
            # usage-data reporting that convert_model does unless a user opted out
            model = ov.Core().read_model(str(staged))
        finally:
            staged.unlink(missing_ok=True)
        # then the offline passes convert_model applies: without them an INT8 QDQ PicoDet read
        # from ONNX ran to wrong outputs on an AVX2 CPU (0.09 mAP; 0.71 with them, as in ONNX Runtime)
        from openvino._offline_transformations import (apply_moc_transformations,
                                                       compress_quantize_weights_transformation)

        apply_moc_transformations(model, cf=False, smart_reshape=True)
        compress_quantize_weights_transformation(model)
        xml = job.out_dir / "model.xml"
        ov.save_model(model, str(xml), compress_to_fp16=bool(self.options["fp16"]))
        return Artifact([xml, xml.with_suffix(".bin")], "fp16" if self.options["fp16"] else "fp32")


class MNNExporter(Exporter):
    """MNN (``model.mnn``), optionally with 8-bit weights."""

    def run(self, job: Job) -> Artifact:
        # The converter module itself: the ``mnnconvert`` wrapper pip-installs a logging SDK and uploads usage data
        with captured():  # the module prints a CPU-feature banner on import
            tools = require("_tools", "mnn")
        path = job.out_dir / "model.mnn"
        args = ["mnnconvert", "-f", "ONNX", "--modelFile", str(job.files["onnx"][0]), "--MNNModel", str(path),
                "--bizCode", "paddlekits"]
        bits = self.options["weight_quant_bits"]
        if bits:
            args += ["--weightQuantBits", str(bits)]
        with captured() as log:
            ok = tools.mnnconvert(args)
        if not ok or not path.is_file():
            raise ExportError(f"MNN could not convert the model:\n{tail(log)}")
        return Artifact([path], f"int{bits}-weights" if bits else "fp32")


def pnnx_binary() -> str:
    """The converter binary bundled in the pnnx wheel (its Python wrapper needs torch; the binary does not)."""
    spec = importlib.util.find_spec("pnnx")
    if spec is None or not spec.submodule_search_locations:
        raise ExportError("the ncnn format needs pnnx; install it with `pip install --no-deps pnnx`")
    binary = Path(list(spec.submodule_search_locations)[0]) / "pnnx"
    if not binary.is_file():
        raise ExportError(f"the pnnx wheel has no converter binary at {binary}")
    return str(binary)


def ncnn_blobs(param: Path) -> tuple[list[str], list[str], list[str]]:
    """Input blobs, output blobs (pnnx names them out0, out1...) and layer types of an ncnn graph."""
    inputs, blobs, types = [], set(), []
    for line in param.read_text().splitlines()[2:]:
        parts = line.split()
        n_in, n_out = int(parts[2]), int(parts[3])
        types.append(parts[0])
        outs = parts[4 + n_in: 4 + n_in + n_out]
        blobs.update(outs)
        if parts[0] == "Input":
            inputs += outs
    outputs = sorted((b for b in blobs if re.fullmatch(r"out\d+", b)), key=lambda b: int(b[3:]))
    return inputs, outputs, types


class NcnnExporter(Exporter):
    """ncnn (``model.ncnn.param`` + ``.bin``) through the pnnx binary, for fixed input shapes."""

    def check(self, job: Job) -> None:
        ints = [f"{i['name']} ({i['dtype']})" for i in job.inputs if not i["dtype"].startswith("float")]
        if ints:
            raise ExportError(f"ncnn holds every tensor as float and cannot take integer inputs "
                              f"{', '.join(ints)}; export this model to onnx, openvino or mnn instead")

    def run(self, job: Job) -> Artifact:
        shapes = self.options["input_shapes"] or [i["example_shape"] for i in job.inputs]
        if len(shapes) != len(job.inputs):
            raise ConfigError(f"ncnn.input_shapes needs one shape per input ({len(job.inputs)}), got {shapes}")
        param, weights = job.out_dir / "model.ncnn.param", job.out_dir / "model.ncnn.bin"
        with tempfile.TemporaryDirectory() as tmp:  # pnnx writes intermediate files we do not keep
            t = Path(tmp)
            cmd = [pnnx_binary(), str(job.files["onnx"][0]),
                   "inputshape=" + ",".join(f"[{','.join(map(str, s))}]f32" for s in shapes),
                   f"ncnnparam={param}", f"ncnnbin={weights}", f"pnnxparam={t / 'm.pnnx.param'}",
                   f"pnnxbin={t / 'm.pnnx.bin'}", f"pnnxpy={t / 'm_pnnx.py'}", f"pnnxonnx={t / 'm.pnnx.onnx'}",
                   f"ncnnpy={t / 'm_ncnn.py'}", f"fp16={int(self.options['fp16'])}"]
            proc = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0 or not param.is_file():
            raise ExportError(f"pnnx failed (exit {proc.returncode}):\n{(proc.stdout + proc.stderr)[-2000:]}")
        inputs, outputs, types = ncnn_blobs(param)
        self._check_loadable(types)
        if len(outputs) != len(job.outputs):
            raise ExportError(f"the ncnn graph has outputs {outputs}, expected {len(job.outputs)}")
        return Artifact([param, weights], "fp16" if self.options["fp16"] else "fp32",
                        {"inputs": inputs, "outputs": outputs, "input_shapes": [list(s) for s in shapes]})

    @staticmethod
    def _check_loadable(types: list[str]) -> None:
        if importlib.util.find_spec("ncnn") is None:
            return
        import ncnn

        unknown = sorted({t for t in types if ncnn.layer_to_index(t) < 0})
        if unknown:
            raise ExportError(f"pnnx produced layers ncnn cannot run: {', '.join(unknown)}")


# -- TensorRT -------------------------------------------------------------------------------
def gpu_present() -> bool:
    if not shutil.which("nvidia-smi"):
        return False
    return subprocess.run(["nvidia-smi", "-L"], capture_output=True).returncode == 0


class TensorRTExporter(Exporter):
    """A TensorRT build script over the ONNX file, plus Paddle Inference TensorRT settings in deploy.yml.

    The engine is built here only when trtexec and a GPU are present; TensorRT engines are tied to
    the GPU and TensorRT version, so normally the script runs on the target machine.
    """

    def shapes(self, job: Job) -> dict[str, dict[str, list[int]]]:
        ranges = {}
        for info in job.inputs:
            shape, example = info["shape"], info["example_shape"]
            if all(d >= 0 for d in shape):
                continue
            low = [1 if d < 0 else d for d in shape]
            high = list(example)
            if shape[0] < 0:
                high[0] = max(self.options["max_batch"], example[0])
            high = list((self.options["max_shapes"] or {}).get(info["name"], high))
            ranges[info["name"]] = {"min": low, "opt": list(example), "max": high}
        return ranges

    def run(self, job: Job) -> Artifact:
        onnx_file = job.files["onnx"][0]
        shapes, fp16 = self.shapes(job), self.options["fp16"]
        flags = [f"--onnx={onnx_file.name}", "--saveEngine=model.engine",
                 f"--memPoolSize=workspace:{self.options['workspace_mb']}M"]
        for key in ("min", "opt", "max"):
            if shapes:
                flags.append(f"--{key}Shapes=" + ",".join(f"{n}:{'x'.join(map(str, r[key]))}"
                                                          for n, r in shapes.items()))
        flags += ["--fp16"] if fp16 else []
        script = job.out_dir / "build_tensorrt.sh"
        script.write_text("#!/bin/sh\n# Build the TensorRT engine on the machine that runs it "
                          "(needs TensorRT's trtexec and an NVIDIA GPU).\nset -e\ncd \"$(dirname \"$0\")\"\n"
                          f"trtexec {' '.join(flags)}\n")
        script.chmod(0o755)
        files, built = [script], False
        if shutil.which("trtexec") and gpu_present():
            proc = subprocess.run(["sh", str(script)], capture_output=True, text=True, timeout=3600)
            if proc.returncode != 0:
                raise ExportError(f"trtexec failed:\n{(proc.stdout + proc.stderr)[-2000:]}")
            files.append(job.out_dir / "model.engine")
            built = True
        else:
            job.notes.append("tensorrt: no GPU/TensorRT here, so model.engine was not built; "
                             "run build_tensorrt.sh on the target machine")
        trt = {"precision": "fp16" if fp16 else "fp32", "workspace_mb": self.options["workspace_mb"],
               "max_batch": self.options["max_batch"], "min_subgraph_size": 3, "shapes": shapes}
        return Artifact(files, trt["precision"], {"onnx": onnx_file.name, "engine_file": "model.engine",
                                                  "engine_built": built, "paddle_trt": trt})


# -- the table ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Format:
    exporter: type[Exporter]
    suffix: str
    engine: str                                  # what runs it (a kits.deploy backend, or TensorRT)
    options: dict[str, Option] = field(default_factory=dict)
    needs: tuple[str, ...] = ()                  # formats it is converted from
    tools: tuple[str, ...] = ()                  # distributions whose versions deploy.yml records


FORMATS: dict[str, Format] = {
    "paddle": Format(PaddleExporter, ".json", "paddle", tools=("paddlepaddle", "paddlepaddle-gpu")),
    "paddle-legacy": Format(LegacyExporter, ".pdmodel", "paddle", tools=("paddlepaddle", "paddlepaddle-gpu")),
    "onnx": Format(OnnxExporter, ".onnx", "onnxruntime",
                   {"simplify": Option(bool, True, help="fold BatchNorm into Conv and constant arithmetic, drop Identity nodes")},
                   needs=("paddle",), tools=("paddle2onnx", "onnx")),
    "openvino": Format(OpenVINOExporter, ".xml", "openvino", {"fp16": Option(bool, False, help="fp16 weights")},
                       needs=("onnx",), tools=("openvino",)),
    "mnn": Format(MNNExporter, ".mnn", "mnn",
                  {"weight_quant_bits": Option(int, None, (8, None), "8: int8 weights, fp32 compute")},
                  needs=("onnx",), tools=("MNN",)),
    "ncnn": Format(NcnnExporter, ".ncnn.param", "ncnn",
                   {"input_shapes": Option(list, None, help="one fixed shape per input (default: example shapes)"),
                    "fp16": Option(bool, False, help="fp16 weight storage")},
                   needs=("onnx",), tools=("pnnx", "ncnn")),
    "tensorrt": Format(TensorRTExporter, ".engine", "tensorrt",
                       {"fp16": Option(bool, False), "workspace_mb": Option(int, 1024),
                        "max_batch": Option(int, 1), "max_shapes": Option(dict, None, help="input -> max shape")},
                       needs=("onnx",), tools=("tensorrt",)),
}


def plan(formats, options: dict | None = None) -> list[tuple[str, Format, dict]]:
    """Validate format names and options; return (name, format, options) with sources first."""
    if isinstance(formats, str):
        formats = [formats]
    options = dict(options or {})
    for name in list(formats) + list(options):
        if name not in FORMATS:
            raise ConfigError(f"unknown export format '{name}'.{did_you_mean(name, FORMATS)} "
                              f"Valid formats: {', '.join(FORMATS)}")
    ordered: list[str] = []

    def visit(name: str) -> None:
        for dep in FORMATS[name].needs:
            visit(dep)
        if name not in ordered:
            ordered.append(name)

    for name in formats:
        visit(name)
    steps = []
    for name in ordered:
        fmt, given = FORMATS[name], dict(options.get(name) or {})
        for key in given:
            if key not in fmt.options:
                valid = ", ".join(fmt.options) or "(none)"
                raise ConfigError(f"export format '{name}' has no option '{key}'.{did_you_mean(key, fmt.options)} "
                                  f"Valid options: {valid}")
        resolved = {key: opt.check(name, key, given.get(key, opt.default)) for key, opt in fmt.options.items()}
        steps.append((name, fmt, resolved))
    return steps
