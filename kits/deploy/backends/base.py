"""What every backend shares: the engine import check, option checks and quiet engine banners."""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import DeployError, EngineMissingError, did_you_mean


def require(module: str, extra: str, engine: str | None = None):
    """Import an engine module or say which pip extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise EngineMissingError(f"the {engine or module} engine is not installed ({exc}); install it with "
                                 f"`pip install -e .[{extra}]`") from None


@contextlib.contextmanager
def quiet_fds() -> Iterator[None]:
    """Send C-level stdout/stderr to /dev/null: some engines print banners that would mix into JSON output."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 1)
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, null):
            os.close(fd)


class Backend:
    """Runs one exported format; ``run`` takes and returns numpy arrays in the spec's order."""

    name = ""
    devices: tuple[str, ...] = ("cpu",)
    option_names: tuple[str, ...] = ()

    def __init__(self, spec, fmt: str, threads: int | None = None, device: str = "cpu"):
        if device not in self.devices:
            raise DeployError(f"backend '{self.name}' runs on {', '.join(self.devices)}, not '{device}'."
                              f"{did_you_mean(device, self.devices)}")
        self.spec, self.fmt, self.threads, self.device = spec, fmt, threads, device

    @classmethod
    def check_options(cls, options: dict) -> None:
        for key in options:
            if key not in cls.option_names:
                raise DeployError(f"backend '{cls.name}' has no option '{key}'.{did_you_mean(key, cls.option_names)} "
                                  f"Valid options: {', '.join(cls.option_names) or '(none)'}")

    def file(self, *suffixes: str) -> Path:
        """The exported file of this format ending with one of ``suffixes``."""
        for path in self.spec.files(self.fmt):
            if path.name.endswith(suffixes):
                return path
        raise DeployError(f"deploy.yml lists no {'/'.join(suffixes)} file for format '{self.fmt}'")

    def run(self, tensors: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError
