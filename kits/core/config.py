"""YAML configs: ``_base_`` inheritance, ``-o`` overrides, origins for error messages.

Rules:
- files are read with a ``yaml.SafeLoader`` only (``safe_load`` semantics; ``1e-3`` is a float);
- ``_base_`` is one path or a list of paths, relative to the file that names them; bases are
  merged in order, then the file itself on top (recursively);
- dicts merge key by key; a dict holding ``_replace_: true`` replaces the inherited dict whole;
- ``-o a.b.c=value`` sets one key; the value is parsed as a YAML literal (``1e-3``, ``[1, 2]``,
  ``true``, ``null``), so strings need no quotes.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from .errors import ConfigError

BASE_KEY = "_base_"
REPLACE_KEY = "_replace_"


class Config(dict):
    """A plain nested dict plus where it came from.

    ``origins`` maps dotted key paths to the file (or ``-o``) that set them, so errors can name
    the file a user has to edit.
    """

    def __init__(self, data: Mapping[str, Any] = (), path: str | None = None,
                 origins: Mapping[str, str] | None = None):
        super().__init__(data)
        self.path = path
        self.origins = dict(origins or {})

    def origin(self, key_path: str) -> str:
        """The file (or override) that set ``key_path`` or its closest parent."""
        parts = key_path.split(".")
        for end in range(len(parts), 0, -1):
            hit = self.origins.get(".".join(parts[:end]))
            if hit:
                return hit
        return self.path or "<config>"

    def get_path(self, key_path: str, default: Any = None) -> Any:
        node: Any = self
        for part in key_path.split("."):
            if not isinstance(node, Mapping) or part not in node:
                return default
            node = node[part]
        return node

    def to_yaml(self) -> str:
        return yaml.safe_dump(_plain(self), sort_keys=False, allow_unicode=True)

    def sha256(self) -> str:
        """A hash of the resolved config (key order ignored), recorded in exports and checkpoints."""
        import hashlib

        text = yaml.safe_dump(_plain(self), sort_keys=True, allow_unicode=True)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-3`` as a float (YAML 1.1 needs ``1.0e-3``)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def safe_load(text_or_stream) -> Any:
    """``yaml.safe_load`` semantics (no arbitrary objects) plus ``1e-3`` floats."""
    return yaml.load(text_or_stream, Loader=_Loader)  # noqa: S506 - _Loader is a SafeLoader


def read_yaml(path: str | os.PathLike) -> dict:
    """Read one YAML mapping with the safe loader; errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        with open(path, encoding="utf-8") as fh:
            data = safe_load(fh)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        raise ConfigError(f"{path}: invalid YAML at {where}: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping of sections, got {type(data).__name__}")
    return data


def merge(base: dict, update: Mapping, origins: dict, source: str | None, prefix: str = "") -> dict:
    """Deep-merge ``update`` into a copy of ``base``, recording the source of every set key.

    ``source=None`` merges an already-loaded base tree whose origins are recorded.
    """
    out = copy.deepcopy(base)
    for key, value in update.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value.get(REPLACE_KEY):
            value = {k: v for k, v in value.items() if k != REPLACE_KEY}
            out[key] = copy.deepcopy(value)
            _mark(origins, path, value, source)
        elif isinstance(value, Mapping) and isinstance(out.get(key), dict):
            if source:
                origins.setdefault(path, source)
            out[key] = merge(out[key], value, origins, source, prefix=f"{path}.")
        else:
            out[key] = copy.deepcopy(value)
            _mark(origins, path, value, source)
    return out


def _mark(origins: dict, path: str, value: Any, source: str | None) -> None:
    if source is None:
        return
    origins[path] = source
    if isinstance(value, Mapping):
        for key, sub in value.items():
            _mark(origins, f"{path}.{key}", sub, source)


def _load_tree(path: Path, origins: dict, chain: tuple[Path, ...]) -> dict:
    path = path.resolve()
    if path in chain:
        loop = " -> ".join(str(p) for p in chain + (path,))
        raise ConfigError(f"_base_ inheritance loop: {loop}")
    data = read_yaml(path)
    bases = data.pop(BASE_KEY, [])
    if isinstance(bases, str):
        bases = [bases]
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise ConfigError(f"{path}: _base_ must be a path or a list of paths, got {bases!r}")
    merged: dict = {}
    for base in bases:
        base_path = (path.parent / base)
        if not base_path.is_file():
            raise ConfigError(f"{path}: _base_ file not found: {base} (looked for {base_path})")
        merged = merge(merged, _load_tree(base_path, origins, chain + (path,)), origins, None)
    return merge(merged, data, origins, str(path))


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value`` into a key path and a YAML-literal value."""
    if "=" not in text:
        raise ConfigError(f"bad override '{text}': expected KEY=VALUE, e.g. trainer.epochs=10")
    key, raw = text.split("=", 1)
    key = key.strip()
    parts = key.split(".")
    if not key or any(not p for p in parts):
        raise ConfigError(f"bad override '{text}': empty key segment in '{key}'")
    try:
        value = safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"bad override '{text}': value is not a YAML literal ({exc})") from None
    return parts, value


def apply_overrides(cfg: Config, overrides: Iterable[str]) -> Config:
    """Apply ``-o`` overrides in order; intermediate sections are created as needed, and a number
    picks a list item (``strategies.0.ratio=0.4``)."""
    for text in overrides:
        parts, value = parse_override(text)
        node: dict | list = cfg
        for i, part in enumerate(parts[:-1]):
            if isinstance(node, list):
                child = node[_list_index(node, part, text, parts[:i])]
            else:
                child = node.get(part)
                if child is None:
                    child = node[part] = {}
            if not isinstance(child, (dict, list)):
                where = ".".join(parts[: i + 1])
                raise ConfigError(f"bad override '{text}': '{where}' is a {type(child).__name__}, not a section")
            node = child
        if isinstance(node, list):
            node[_list_index(node, parts[-1], text, parts[:-1])] = value
        else:
            node[parts[-1]] = value
        _mark(cfg.origins, ".".join(parts), value, f"-o {text}")
    return cfg


def _list_index(items: list, part: str, text: str, parents: list[str]) -> int:
    if not part.isdigit() or int(part) >= len(items):
        raise ConfigError(f"bad override '{text}': '{'.'.join(parents)}' is a list of {len(items)} items; "
                          f"pick one by its index 0..{len(items) - 1}, got '{part}'")
    return int(part)


def load_config(path: str | os.PathLike, overrides: Iterable[str] = ()) -> Config:
    """Read a config file with its ``_base_`` chain and apply ``-o`` overrides (not yet validated)."""
    origins: dict[str, str] = {}
    data = _load_tree(Path(path), origins, ())
    cfg = Config(data, path=str(path), origins=origins)
    return apply_overrides(cfg, overrides)
