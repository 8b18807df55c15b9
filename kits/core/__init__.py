"""The shared foundation: config, registries, trainer, checkpoints, pretrained weights.

Only light modules are imported here; ``kits.core.trainer`` (paddle) is imported on use.
"""

from .errors import CheckpointError, ConfigError, DataError, KitsError, TrainingError
from .registry import Registry

__all__ = ["CheckpointError", "ConfigError", "DataError", "KitsError", "TrainingError", "Registry"]
