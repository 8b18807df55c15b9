"""Compression: structured pruning, quantization-aware training, post-training quantization and
distillation, composed by recipe files and judged on the exported model.

Importing this package imports paddle but not PaddleSlim (loaded when a pruning step runs).
"""

from . import distill, prune, ptq, qat  # noqa: F401  (register the strategies)
from .base import STRATEGIES, SlimContext, Strategy
from .pipeline import CompressionError, compress
from .recipe import Recipe, ReportConfig, load_recipe

__all__ = ["compress", "load_recipe", "Recipe", "ReportConfig", "STRATEGIES", "Strategy", "SlimContext",
           "CompressionError"]
