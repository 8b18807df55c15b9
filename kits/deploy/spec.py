"""Read and validate ``deploy.yml``, the self-description written beside every exported model."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from .errors import SpecError, did_you_mean

SPEC_FILE = "deploy.yml"
SPEC_VERSION = 1
DTYPES = ("float32", "float16", "int64", "int32", "uint8", "bool")
KEYS = {"format_version": True, "task": False, "inputs": True, "outputs": True, "preprocess": False,
        "postprocess": False, "labels": False, "models": True, "source": False, "versions": False,
        "parity": False, "notes": False}


@dataclass
class InputInfo:
    name: str
    dtype: str
    shape: list[int]                 # -1 marks a dynamic dimension
    example_shape: list[int]         # a concrete shape used for parity checks and fixed-shape engines
    range: list[int] | None = None   # [low, high) of integer inputs (token ids), None for floats

    @property
    def dynamic(self) -> bool:
        return any(d < 0 for d in self.shape)


@dataclass
class DeploySpec:
    model_dir: Path
    inputs: list[InputInfo]
    outputs: list[str]
    models: dict[str, dict]
    task: str = ""
    preprocess: list[dict] = field(default_factory=list)
    postprocess: list[dict] = field(default_factory=list)
    labels: list[str] | None = None
    source: dict = field(default_factory=dict)
    versions: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def with_example_shapes(self, shapes: dict[str, list[int]]) -> "DeploySpec":
        """A copy whose named inputs take these example shapes (each must fit the input's shape)."""
        unknown = sorted(set(shapes) - {i.name for i in self.inputs})
        if unknown:
            raise SpecError(f"no input named {', '.join(unknown)}; inputs: {', '.join(i.name for i in self.inputs)}")
        inputs = []
        for info in self.inputs:
            shape = list(shapes.get(info.name, info.example_shape))
            fits = len(shape) == len(info.shape) and all(d < 0 or d == s for d, s in zip(info.shape, shape))
            if not fits:
                raise SpecError(f"input '{info.name}' has shape {info.shape} (-1: dynamic); {shape} does not fit")
            inputs.append(replace(info, example_shape=shape))
        return replace(self, inputs=inputs)

    def files(self, fmt: str) -> list[Path]:
        return [self.model_dir / name for name in self.models[fmt]["files"]]

    def verify(self, fmt: str) -> None:
        """Check every file of ``fmt`` exists and matches the sha256 recorded at export."""
        for path in self.files(fmt):
            if not path.is_file():
                raise SpecError(f"{path} is listed in {SPEC_FILE} but missing; re-export the model")
            want = self.models[fmt].get("sha256", {}).get(path.name)
            if want and _sha256(path) != want:
                raise SpecError(f"{path} does not match the sha256 in {SPEC_FILE} (corrupt or replaced file)")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_spec(model_dir: str | Path) -> DeploySpec:
    """Read ``model_dir/deploy.yml`` with ``yaml.safe_load`` and validate it."""
    model_dir = Path(model_dir)
    path = model_dir / SPEC_FILE
    if not path.is_file():
        raise SpecError(f"{model_dir} has no {SPEC_FILE}: it is not an exported model directory "
                        "(export one with tools/export.py)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SpecError(f"{path} is not valid YAML: {exc}") from None
    return parse_spec(data, model_dir, str(path))


def parse_spec(data: Any, model_dir: Path, where: str = SPEC_FILE) -> DeploySpec:
    if not isinstance(data, dict):
        raise SpecError(f"{where}: expected a mapping at the top level")
    for key in data:
        if key not in KEYS:
            raise SpecError(f"{where}: unknown key '{key}'.{did_you_mean(key, KEYS)}")
    for key, required in KEYS.items():
        if required and key not in data:
            raise SpecError(f"{where}: missing required key '{key}'")
    if data["format_version"] != SPEC_VERSION:
        raise SpecError(f"{where}: format_version {data['format_version']} is not supported "
                        f"(this runtime reads version {SPEC_VERSION})")
    inputs = [_input(item, where) for item in _list(data, "inputs", where)]
    outputs = [str(name) for name in _list(data, "outputs", where)]
    models = data["models"]
    if not isinstance(models, dict) or not models:
        raise SpecError(f"{where}: 'models' must map each exported format to its files")
    for fmt, entry in models.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("files"), list):
            raise SpecError(f"{where}: models.{fmt} needs a 'files' list")
    for kind in ("preprocess", "postprocess"):
        for op in data.get(kind) or []:
            if not isinstance(op, dict) or "type" not in op:
                raise SpecError(f"{where}: every {kind} op must be a mapping with a 'type', got {op!r}")
    return DeploySpec(model_dir=model_dir, inputs=inputs, outputs=outputs, models=models,
                      task=str(data.get("task") or ""), preprocess=list(data.get("preprocess") or []),
                      postprocess=list(data.get("postprocess") or []), labels=data.get("labels"),
                      source=data.get("source") or {}, versions=data.get("versions") or {},
                      parity=data.get("parity") or {}, notes=list(data.get("notes") or []))


def check_ops(preprocess: list[dict], postprocess: list[dict]) -> None:
    """Build every op once so a typo in an op name or option fails at export, not on the device."""
    from .ops import POSTPROCESS, PREPROCESS, build_pipeline

    build_pipeline(preprocess, PREPROCESS)
    build_pipeline(postprocess, POSTPROCESS)


def _list(data: dict, key: str, where: str) -> list:
    value = data[key]
    if not isinstance(value, list) or not value:
        raise SpecError(f"{where}: '{key}' must be a non-empty list")
    return value


def _input(item: Any, where: str) -> InputInfo:
    if not isinstance(item, dict) or not {"name", "dtype", "shape"} <= set(item):
        raise SpecError(f"{where}: each input needs name, dtype and shape, got {item!r}")
    if item["dtype"] not in DTYPES:
        raise SpecError(f"{where}: input '{item['name']}' has dtype {item['dtype']!r}; "
                        f"supported: {', '.join(DTYPES)}")
    shape = [int(d) for d in item["shape"]]
    example = [int(d) for d in item.get("example_shape") or [1 if d < 0 else d for d in shape]]
    if len(example) != len(shape) or any(s >= 0 and s != e for s, e in zip(shape, example)):
        raise SpecError(f"{where}: input '{item['name']}' example_shape {example} does not fit shape {shape}")
    return InputInfo(str(item["name"]), item["dtype"], shape, example, item.get("range"))
