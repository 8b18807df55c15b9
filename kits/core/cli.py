"""What every ``tools/*.py`` script shares: arguments, logging, kit lookup and clean errors."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import Callable

from .errors import ConfigError, KitsError, did_you_mean

KITS = ("detection", "segmentation", "nlp")


def quiet_environment() -> None:
    """Silence paddle's C++ logging and noisy import-time warnings before paddle is imported."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("FLAGS_call_stack_level", "1")
    import warnings

    warnings.filterwarnings("ignore", message=".*ccache.*")
    warnings.filterwarnings("ignore", message=".*Setuptools is replacing distutils.*")


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the shared ``-c CONFIG`` and ``-o KEY=VALUE ...`` options."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("-c", "--config", required=True, help="YAML config file")
    ap.add_argument("-o", "--opt", nargs="+", default=[], metavar="KEY=VALUE",
                    help="override config keys, e.g. -o trainer.epochs=10 optimizer.lr=0.01")
    return ap


def setup_logging(level: int = logging.INFO) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S", force=True)


def kit_api(cfg):
    """The ``api`` module of the kit a config names with its top-level ``kit`` key."""
    name = cfg.get("kit")
    if name not in KITS:
        raise ConfigError(f"{cfg.path}: top-level 'kit' must be one of {', '.join(KITS)}, got {name!r}."
                          f"{did_you_mean(str(name), KITS)}")
    return importlib.import_module(f"kits.{name}.api")


def pop_option(overrides: list[str], key: str) -> tuple[list[str], str | None]:
    """Take a tool option given as ``-o key=value`` (e.g. ``weights``) out of the config overrides."""
    rest, value = [], None
    for item in overrides:
        if item.split("=", 1)[0].strip() == key:
            value = item.split("=", 1)[1] if "=" in item else ""
        else:
            rest.append(item)
    return rest, value


def main(run: Callable[[], object]) -> None:
    """Run a tool body; expected errors print one clear line and exit 2, without a traceback."""
    try:
        run()
    except KitsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
