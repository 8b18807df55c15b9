"""Errors of the light runtime (it stands alone, so it does not use kits.core.errors)."""

from __future__ import annotations

import difflib
from typing import Iterable


class DeployError(Exception):
    """Base class of every error the runtime raises on purpose."""


class SpecError(DeployError, ValueError):
    """deploy.yml is missing, malformed or names something the runtime does not know."""


class EngineMissingError(DeployError, ImportError):
    """The inference engine a backend needs is not installed."""


class FormatMismatchError(DeployError, ValueError):
    """The model directory holds no format the chosen backend can run."""


class InputError(DeployError, ValueError):
    """An input is of the wrong kind, dtype or shape for the model."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean X?' suffix, or '' when nothing is close."""
    hits = difflib.get_close_matches(str(name), [str(c) for c in choices], n=1, cutoff=0.5)
    return f" Did you mean '{hits[0]}'?" if hits else ""
