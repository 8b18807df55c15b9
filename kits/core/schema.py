"""Validation of a loaded config before any work starts.

Fixed sections (``trainer``) are typed dataclasses; component sections (``model``, datasets,
``optimizer``, ``lr_scheduler``) are checked against the signature of the class their ``type``
names, recursively for nested components. Every error names the file, the key path and, for an
unknown key, the closest valid one.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from .config import Config
from .errors import ConfigError, did_you_mean
from .registry import Registry, accepted_kwargs

SECTIONS = ("kit", "model", "pretrained", "train_dataset", "val_dataset", "optimizer",
            "lr_scheduler", "trainer", "export", "slim")
DEVICES = ("auto", "cpu", "gpu")


@dataclass
class TrainerConfig:
    """The ``trainer`` section. Intervals count epochs when ``epochs`` is set, else iterations."""

    epochs: int | None = None
    iters: int | None = None
    batch_size: int = 8
    eval_batch_size: int | None = None
    num_workers: int = 2
    eval_interval: int = 1
    save_interval: int = 1
    log_interval: int = 10
    output_dir: str = "output"
    device: str = "auto"
    seed: int = 42
    amp: bool = False
    ema: bool = False
    ema_decay: float = 0.9998
    grad_accum: int = 1
    clip_grad_norm: float | None = None
    keep_last: int = 2
    best_metric: str | None = None
    best_mode: str = "max"
    early_stop_patience: int | None = None
    visualdl: bool = True
    progress: bool = True


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _hint_name(hint: Any) -> str:
    args = typing.get_args(hint)
    if args:
        return " or ".join(_hint_name(a) for a in args)
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def to_dataclass(cls: type, data: Mapping[str, Any] | None, cfg: Config, section: str):
    """Build dataclass ``cls`` from ``data``; unknown keys and wrong types are ConfigErrors."""
    data = dict(data or {})
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    for key, value in data.items():
        path = f"{section}.{key}"
        if key not in hints:
            raise ConfigError(f"{cfg.origin(path)}: unknown key '{path}'.{did_you_mean(key, names)} "
                              f"Valid keys of '{section}': {', '.join(names)}")
        if not _type_ok(value, hints[key]):
            raise ConfigError(f"{cfg.origin(path)}: '{path}' must be {_hint_name(hints[key])}, "
                              f"got {value!r} ({type(value).__name__})")
        if hints[key] is float or float in typing.get_args(hints[key]):
            data[key] = float(value) if value is not None else None
    return cls(**data)


def validate_trainer(cfg: Config) -> TrainerConfig:
    tc = to_dataclass(TrainerConfig, cfg.get("trainer"), cfg, "trainer")
    where = cfg.origin("trainer")
    if (tc.epochs is None) == (tc.iters is None):
        raise ConfigError(f"{where}: set exactly one of 'trainer.epochs' or 'trainer.iters'")
    if tc.device not in DEVICES:
        raise ConfigError(f"{cfg.origin('trainer.device')}: 'trainer.device' must be one of "
                          f"{', '.join(DEVICES)}, got '{tc.device}'.{did_you_mean(tc.device, DEVICES)}")
    if tc.best_mode not in ("max", "min"):
        raise ConfigError(f"{cfg.origin('trainer.best_mode')}: 'trainer.best_mode' must be max or min")
    for key in ("batch_size", "grad_accum", "eval_interval", "save_interval", "log_interval", "keep_last"):
        if getattr(tc, key) < 1:
            raise ConfigError(f"{cfg.origin('trainer.' + key)}: 'trainer.{key}' must be >= 1")
    return tc


def check_sections(cfg: Config, allowed: Sequence[str] = SECTIONS) -> None:
    for key in cfg:
        if key not in allowed:
            raise ConfigError(f"{cfg.origin(key)}: unknown top-level key '{key}'.{did_you_mean(key, allowed)} "
                              f"Valid sections: {', '.join(allowed)}")


def check_component(cfg: Config, section: str, registries: Iterable[Registry],
                    injected: Iterable[str] = (), extra: Iterable[str] = (), required: bool = True) -> None:
    """Check ``cfg[section]`` (a ``{type: ...}`` dict) against its class signature, recursively.

    ``injected`` are arguments the code passes itself (users may not set them); ``extra`` are
    keys consumed before building (e.g. ``lr`` of an optimizer).
    """
    node = cfg.get_path(section)
    if node is None:
        if required:
            raise ConfigError(f"{cfg.path}: missing required section '{section}'")
        return
    _check_node(cfg, section, node, list(registries), set(injected), set(extra))


def _find(registries: list[Registry], name: str):
    for reg in registries:
        if name in reg:
            return reg.get(name)
    return None


def _check_node(cfg: Config, path: str, node: Any, registries: list[Registry],
                injected: set[str], extra: set[str], nested: bool = False) -> None:
    if not isinstance(node, Mapping):
        raise ConfigError(f"{cfg.origin(path)}: '{path}' must be a mapping with a 'type' key, got {node!r}")
    if "type" not in node:
        raise ConfigError(f"{cfg.origin(path)}: '{path}' needs a 'type' key")
    target = _find(registries, node["type"])
    if target is None:
        names = sorted({n for reg in registries for n in reg.names()})
        raise ConfigError(f"{cfg.origin(path + '.type')}: unknown type '{node['type']}' in '{path}'."
                          f"{did_you_mean(node['type'], names)} Valid types: {', '.join(names)}")
    names, open_ended = accepted_kwargs(target)
    valid = (names - injected) | extra
    for key, value in node.items():
        if key == "type":
            continue
        sub = f"{path}.{key}"
        if key not in valid and not open_ended:
            raise ConfigError(f"{cfg.origin(sub)}: unknown key '{sub}' for {node['type']}."
                              f"{did_you_mean(key, valid)} Valid keys: {', '.join(sorted(valid))}")
        _check_children(cfg, sub, value, registries)
    if not nested:  # a parent often fills its components' sizes (in_channels, num_classes) itself
        _check_required(cfg, path, node, target, injected)


def _check_children(cfg: Config, path: str, value: Any, registries: list[Registry]) -> None:
    """Recurse into nested components: a ``{type: ...}`` dict, or a list of them (transforms)."""
    items = [(path, value)] if isinstance(value, Mapping) else \
        [(f"{path}[{i}]", v) for i, v in enumerate(value)] if isinstance(value, list) else []
    for sub, item in items:
        if isinstance(item, Mapping) and "type" in item:
            if _find(registries, item["type"]) is None:
                names = sorted({n for reg in registries for n in reg.names()})
                raise ConfigError(f"{cfg.origin(sub + '.type')}: unknown type '{item['type']}' in '{sub}'."
                                  f"{did_you_mean(item['type'], names)}")
            _check_node(cfg, sub, item, registries, set(), set(), nested=True)


def _check_required(cfg: Config, path: str, node: Mapping, target, injected: set[str]) -> None:
    for param in inspect.signature(target).parameters.values():
        if param.kind not in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY):
            continue
        if param.default is param.empty and param.name not in node and param.name not in injected:
            raise ConfigError(f"{cfg.origin(path)}: '{path}' ({node['type']}) is missing required key "
                              f"'{param.name}'")
