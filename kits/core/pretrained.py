"""Named pretrained weights: a registry with provenance, sha256 checks and safe loading.

Bundled weights are safetensors (or npz) files, never pickles. A user's ``.pdparams`` file is a
pickle; it can still be loaded, and the log says so.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from .errors import CheckpointError, did_you_mean
from .fileio import atomic_path, cache_dir, sha256sum

log = logging.getLogger(__name__)
PACKAGE_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WeightSpec:
    """Provenance and location of one set of pretrained weights.

    ``file`` is relative to the ``kits`` package (bundled) or to the cache dir (derived);
    ``make`` builds a cache file on first use (e.g. converting an installed package's weights).
    """

    name: str
    file: str
    sha256: str
    source: str
    license: str
    model: str = ""
    url: str | None = None
    description: str = ""
    make: Callable[[Path], None] | None = field(default=None, compare=False, repr=False)


_WEIGHTS: dict[str, WeightSpec] = {}
_VERIFIED: dict[tuple[str, int, float], str] = {}


def register_weights(spec: WeightSpec) -> WeightSpec:
    if spec.name in _WEIGHTS and _WEIGHTS[spec.name] != spec:
        raise KeyError(f"pretrained weights '{spec.name}' registered twice")
    _WEIGHTS[spec.name] = spec
    return spec


def list_weights(prefix: str = "") -> list[str]:
    return sorted(n for n in _WEIGHTS if n.startswith(prefix))


def weight_spec(name: str) -> WeightSpec:
    try:
        return _WEIGHTS[name]
    except KeyError:
        raise CheckpointError(
            f"no pretrained weights named '{name}'.{did_you_mean(name, _WEIGHTS)} "
            f"Known: {', '.join(sorted(_WEIGHTS)) or '(none)'}; or give a file path."
        ) from None


def _verified_sha(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if key not in _VERIFIED:
        _VERIFIED[key] = sha256sum(path)
    return _VERIFIED[key]


def resolve(name_or_path: str | os.PathLike) -> Path:
    """Path of a registered weight name (sha256-checked, built on first use) or of a plain file."""
    text = str(name_or_path)
    if text in _WEIGHTS:
        return _resolve_spec(_WEIGHTS[text])
    path = Path(text).expanduser()
    if path.is_file():
        return path
    if os.sep in text or text.endswith((".safetensors", ".npz", ".pdparams")):
        raise CheckpointError(f"weight file not found: {path}")
    weight_spec(text)  # raises with the list of known names
    raise AssertionError("unreachable")


def _resolve_spec(spec: WeightSpec) -> Path:
    bundled = PACKAGE_ROOT / spec.file
    path = bundled if bundled.is_file() else cache_dir() / spec.file
    if not path.is_file():
        if spec.make is None:
            raise CheckpointError(f"weights '{spec.name}' missing: expected {bundled}")
        log.info("building weights '%s' into %s", spec.name, path)
        with atomic_path(path) as tmp:
            spec.make(tmp)
    actual = _verified_sha(path)
    if actual != spec.sha256:
        raise CheckpointError(
            f"sha256 mismatch for weights '{spec.name}' at {path}: expected {spec.sha256}, got {actual}. "
            "The file is corrupt or was replaced; delete it (cached files are rebuilt) or reinstall."
        )
    return path


def load_state(name_or_path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Read a weight file into ``{name: ndarray}`` (safetensors, npz, or a logged pickle)."""
    path = resolve(name_or_path)
    try:
        if path.suffix == ".safetensors":
            from safetensors.numpy import load_file

            return dict(load_file(str(path)))
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                return {k: data[k] for k in data.files}
        if path.suffix in (".pdparams", ".pdema"):
            return _load_pickle(path)
    except CheckpointError:
        raise
    except Exception as exc:  # corrupt or truncated files surface here
        raise CheckpointError(f"cannot read weights {path}: {exc}") from exc
    raise CheckpointError(f"unsupported weight format '{path.suffix}' ({path}); use .safetensors, .npz or .pdparams")


def _load_pickle(path: Path) -> dict[str, np.ndarray]:
    import paddle

    log.warning("loading %s with paddle.load: this unpickles the file; only load files you trust", path)
    state = paddle.load(str(path))
    if isinstance(state, Mapping) and "model" in state and isinstance(state["model"], Mapping):
        state = state["model"]
    return {k: np.asarray(v) for k, v in state.items() if hasattr(v, "shape")}


def save_state(state: Mapping[str, object], path: str | os.PathLike, metadata: Mapping[str, str] | None = None) -> Path:
    """Write ``{name: array-like}`` as safetensors atomically; returns the path."""
    from safetensors.numpy import save_file

    arrays = {k: np.ascontiguousarray(_to_numpy(v)) for k, v in state.items()}
    path = Path(path)
    with atomic_path(path) as tmp:
        save_file(arrays, str(tmp), metadata={str(k): str(v) for k, v in (metadata or {}).items()})
        _sort_header_metadata(tmp)
    return path


def _sort_header_metadata(path: Path) -> None:
    """Rewrite the header with sorted metadata in place.

    safetensors writes metadata in hash order, so the same weights would get a new sha256 on every
    write; sorted, a conversion is byte-for-byte reproducible. The header keeps its length (JSON
    allows the trailing spaces safetensors itself pads with).
    """
    import json
    import struct

    with open(path, "r+b") as fh:
        size = struct.unpack("<Q", fh.read(8))[0]
        header = json.loads(fh.read(size))
        if "__metadata__" not in header:
            return
        header["__metadata__"] = dict(sorted(header["__metadata__"].items()))
        text = json.dumps(header, separators=(",", ":")).encode()
        if len(text) > size:
            raise CheckpointError(f"cannot canonicalise the safetensors header of {path}")
        fh.seek(8)
        fh.write(text.ljust(size, b" "))


def _to_numpy(value: object) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


@dataclass
class LoadReport:
    """What happened when loading weights into a model."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[tuple[str, tuple, tuple]] = field(default_factory=list)

    def summary(self) -> str:
        text = f"loaded {len(self.loaded)} tensors"
        if self.mismatched:
            names = ", ".join(n for n, _, _ in self.mismatched[:4])
            text += f"; skipped {len(self.mismatched)} with another shape ({names}{', ...' if len(self.mismatched) > 4 else ''})"
        if self.missing:
            text += f"; {len(self.missing)} missing (kept initialised: {', '.join(self.missing[:4])}{', ...' if len(self.missing) > 4 else ''})"
        if self.unexpected:
            text += f"; {len(self.unexpected)} unused ({', '.join(self.unexpected[:4])}{', ...' if len(self.unexpected) > 4 else ''})"
        return text


# metadata of a weight file whose layers are narrower than its config builds (structured pruning)
PRUNED_KEY = "pruned_channels"


def read_metadata(name_or_path: str | os.PathLike) -> dict[str, str]:
    """The string metadata of a safetensors weight file ({} for other formats)."""
    path = resolve(name_or_path)
    if path.suffix != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="numpy") as fh:
            return dict(fh.metadata() or {})
    except Exception as exc:
        raise CheckpointError(f"cannot read weights {path}: {exc}") from exc


def narrow_to(model, state: Mapping[str, np.ndarray]) -> list[str]:
    """Give the layers of ``model`` the narrower shapes of a channel-pruned ``state``, in place;
    returns the names of the layers changed.

    Every tensor must be at most as large as the model's in each dimension (pruning removes
    channels, it never adds any, and it keeps the output layers' classes); a depthwise convolution
    keeps one group per channel. Anything else is a CheckpointError naming the tensor: a pruned
    model loads into the config it was pruned from, not into one with another class count.
    """
    plan = []  # checked in full before any layer changes: a refused file leaves the model as built
    for prefix, layer in model.named_sublayers(include_self=True):
        own = {n: t for n, t in {**layer._parameters, **layer._buffers}.items() if t is not None}
        shapes = {}
        for name, tensor in own.items():
            key = f"{prefix}.{name}" if prefix else name
            new, old = tuple(state[key].shape) if key in state else None, tuple(tensor.shape)
            if new is None or new == old:
                continue
            if len(new) != len(old) or any(a > b for a, b in zip(new, old)):
                raise CheckpointError(f"{key}: the pruned checkpoint's shape {new} is not a narrowing of the "
                                      f"model's {old} (a pruned model loads into the config it was pruned from)")
            shapes[name] = new
        if not shapes:
            continue
        depthwise = _is_depthwise(layer)
        if getattr(layer, "_groups", 1) > 1 and not depthwise:
            raise CheckpointError(f"{prefix}: a pruned grouped convolution that is not depthwise cannot be rebuilt")
        plan.append((prefix, layer, depthwise, [(own[name], new) for name, new in shapes.items()]))
    for _, layer, depthwise, tensors in plan:
        for tensor, new in tensors:
            _reshape_in_place(tensor, new)
        sync_channels(layer, depthwise)
    return [prefix for prefix, *_ in plan]


def _reshape_in_place(tensor, shape: tuple) -> None:
    """Give a parameter or buffer a new shape (zeros, filled by the load), keeping its identity:
    an optimizer or hook holding it still sees the same tensor."""
    import paddle

    place = tensor.place
    if place.is_cpu_place():
        place = paddle.CPUPlace()
    elif place.is_gpu_place():
        place = paddle.CUDAPlace(place.gpu_device_id())
    tensor.value().get_tensor().set(np.zeros(shape, dtype=tensor.numpy().dtype), place)


def _is_depthwise(layer) -> bool:
    weight = getattr(layer, "weight", None)
    return getattr(layer, "_groups", 1) > 1 and weight is not None and len(weight.shape) == 4 and weight.shape[1] == 1


def sync_channels(layer, depthwise: bool = False) -> None:
    """Update a layer's channel attributes to its (pruned) weight's shape."""
    import paddle.nn as nn

    weight = getattr(layer, "weight", None)
    if weight is None:
        return
    shape = list(weight.shape)
    if isinstance(layer, nn.Conv2DTranspose):
        layer._in_channels, layer._out_channels = shape[0], shape[1] * layer._groups
    elif isinstance(layer, nn.Conv2D):
        if depthwise:
            layer._groups = shape[0]
        layer._out_channels, layer._in_channels = shape[0], shape[1] * layer._groups
    elif isinstance(layer, (nn.BatchNorm1D, nn.BatchNorm2D, nn.BatchNorm3D, nn.SyncBatchNorm)):
        layer._num_features = shape[0]
    elif isinstance(layer, nn.PReLU) and layer._num_parameters > 1:
        layer._num_parameters = shape[0]


def load_into(model, name_or_path: str | os.PathLike | Mapping, *, strict: bool = False,
              skip_mismatched: bool = True) -> LoadReport:
    """Copy weights into a paddle Layer and report missing / unexpected / shape-mismatched keys.

    With ``skip_mismatched`` (fine-tuning to another class count) tensors whose shape differs are
    left as initialised; with ``strict`` any difference is an error.
    """
    import paddle

    if isinstance(name_or_path, Mapping):
        state = dict(name_or_path)
    else:
        path = resolve(name_or_path)  # once: a registered name is sha256-checked here
        state = load_state(path)
        if read_metadata(path).get(PRUNED_KEY) == "true":
            layers = narrow_to(model, state)
            log.info("pretrained: %d layers narrowed to the pruned checkpoint's channels", len(layers))
    own = model.state_dict()
    report = LoadReport()
    for key, param in own.items():
        if key not in state:
            report.missing.append(key)
            continue
        value = _to_numpy(state[key])
        if tuple(value.shape) != tuple(param.shape):
            report.mismatched.append((key, tuple(value.shape), tuple(param.shape)))
            continue
        param.set_value(paddle.to_tensor(value).astype(param.dtype))
        report.loaded.append(key)
    report.unexpected = sorted(set(state) - set(own))
    if strict and (report.missing or report.unexpected or report.mismatched):
        raise CheckpointError(f"weights do not match the model exactly: {report.summary()}")
    if report.mismatched and not skip_mismatched:
        raise CheckpointError(f"shape mismatch: {report.mismatched[:4]}")
    adapt = getattr(model, "adapt_mismatched", None)
    if report.mismatched and adapt is not None:  # e.g. class rows carried over by name
        adapt({key: _to_numpy(state[key]) for key, _, _ in report.mismatched})
    log.info("pretrained: %s", report.summary())
    return report
