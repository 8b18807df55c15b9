"""What every compression strategy shares: the context it works in and the Strategy contract.

A recipe is an ordered list of strategies. ``model``-stage strategies change the paddle model
before fine-tuning (prune, distill, qat); ``artifact``-stage strategies work on the exported
files (post-training quantization). The pipeline runs them in recipe order, fine-tunes through
the shared Trainer when any of them asks for it, exports, and measures what ships.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from kits.core.config import Config
from kits.core.registry import Registry
from kits.core.task import Task

STRATEGIES = Registry("compression strategy")


@dataclass
class SlimContext:
    """The state a recipe passes from one strategy to the next."""

    cfg: Config                    # the model config; fine-tuning overrides already applied
    task: Task
    model: Any                     # the paddle model; a strategy may replace it
    out_dir: Path
    baseline: Any = None           # the uncompressed model (eval mode): the default teacher
    callbacks: list = field(default_factory=list)     # extra Trainer callbacks (e.g. QAT schedules)
    needs_training: bool = False   # set by a strategy that must be followed by fine-tuning
    # A strategy that needs its own export (QAT -> INT8 ONNX) sets this: (ctx, out_dir) -> onnx path
    onnx_exporter: Callable | None = None
    precision: str = "fp32"        # of the artifact the pipeline ships
    notes: list[str] = field(default_factory=list)
    info: dict = field(default_factory=dict)          # per-strategy facts for the report


class Strategy:
    """One typed compression step, built from a recipe entry ``{type: Name, ...fields}``."""

    stage = "model"                # "model" or "artifact"

    def apply(self, ctx: SlimContext) -> None:
        """``model`` stage: change ``ctx.model`` (and set ``ctx.needs_training`` if it must be fine-tuned)."""
        raise NotImplementedError

    def after_training(self, ctx: SlimContext) -> None:
        """Undo training-only wrapping (e.g. a distillation teacher) before export."""

    def quantize_artifact(self, ctx: SlimContext, onnx_file: Path, out_dir: Path) -> Path:
        """``artifact`` stage: write a compressed ONNX model from ``onnx_file``; returns its path."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"type": type(self).__name__, **dataclasses.asdict(self)}
