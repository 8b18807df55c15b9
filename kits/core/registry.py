"""Explicit, flat registries: a name -> class table filled by explicit imports.

Each kit keeps its own registries in ``kits/<kit>/registry.py``. ``build(cfg)`` picks the class
from ``cfg['type']`` and passes the remaining keys as keyword arguments; nested component
configs stay plain dicts and the parent object builds them itself (config nesting mirrors
object nesting).
"""

from __future__ import annotations

import copy
import inspect
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError, did_you_mean


class Registry:
    """A named table of buildable classes or factory functions."""

    def __init__(self, name: str):
        self.name = name
        self._items: dict[str, Callable[..., Any]] = {}

    def register(self, obj: Callable | None = None, *, name: str | None = None):
        """Register ``obj`` under ``name`` (default: its ``__name__``); usable as a decorator."""

        def _add(target):
            key = name or target.__name__
            if key in self._items and self._items[key] is not target:
                raise KeyError(f"{self.name} registry already has '{key}'")
            self._items[key] = target
            return target

        return _add(obj) if obj is not None else _add

    def get(self, name: str) -> Callable[..., Any]:
        """Return the entry called ``name``; a miss lists valid names and the closest one."""
        try:
            return self._items[name]
        except KeyError:
            valid = ", ".join(sorted(self._items)) or "(none registered)"
            raise ConfigError(
                f"unknown {self.name} type '{name}'.{did_you_mean(name, self._items)} "
                f"Valid {self.name} types: {valid}"
            ) from None

    def build(self, cfg: Mapping[str, Any], **extra: Any) -> Any:
        """Build an object from ``{'type': Name, **kwargs}``; ``extra`` kwargs are added."""
        if not isinstance(cfg, Mapping) or "type" not in cfg:
            raise ConfigError(f"a {self.name} config needs a 'type' key, got {cfg!r}")
        kwargs = copy.deepcopy(dict(cfg))
        target = self.get(kwargs.pop("type"))
        kwargs.update(extra)
        _check_kwargs(self.name, target, kwargs)
        return target(**kwargs)

    def signature(self, name: str) -> inspect.Signature:
        return inspect.signature(self.get(name))

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.name!r}, {self.names()})"


def accepted_kwargs(target: Callable) -> tuple[set[str], bool]:
    """Names a callable accepts and whether it takes ``**kwargs``."""
    params = inspect.signature(target).parameters.values()
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    return names, any(p.kind is p.VAR_KEYWORD for p in params)


def _check_kwargs(kind: str, target: Callable, kwargs: Mapping[str, Any]) -> None:
    names, open_ended = accepted_kwargs(target)
    if open_ended:
        return
    for key in kwargs:
        if key not in names:
            raise ConfigError(
                f"{kind} '{target.__name__}' has no option '{key}'.{did_you_mean(key, names)} "
                f"Valid options: {', '.join(sorted(names))}"
            )
