"""Error types and the did-you-mean helper shared by config, registries and loaders."""

from __future__ import annotations

import difflib
from typing import Iterable


class KitsError(Exception):
    """Base class of every error the suite raises on purpose."""


class ConfigError(KitsError, ValueError):
    """A configuration file, key, value or override is wrong."""


class DataError(KitsError, ValueError):
    """A dataset file or sample is missing, unreadable or inconsistent."""


class CheckpointError(KitsError, RuntimeError):
    """A checkpoint or weight file is missing, corrupt or does not fit the model."""


class TrainingError(KitsError, RuntimeError):
    """Training cannot go on (e.g. the loss became NaN)."""


def closest(name: str, choices: Iterable[str]) -> str | None:
    """Return the closest choice to ``name`` or None when nothing is close."""
    choices = [str(c) for c in choices]
    hits = difflib.get_close_matches(str(name), choices, n=1, cutoff=0.5)
    if not hits:
        lowered = {c.lower(): c for c in choices}
        hits = difflib.get_close_matches(str(name).lower(), list(lowered), n=1, cutoff=0.5)
        hits = [lowered[h] for h in hits]
    return hits[0] if hits else None


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix, or '' when no choice is close."""
    hit = closest(name, choices)
    return f" Did you mean '{hit}'?" if hit else ""
