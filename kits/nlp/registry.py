"""The NLP kit's component tables, filled by explicit imports in ``models/__init__.py`` and
``data/__init__.py``."""

from kits.core.registry import Registry

MODELS = Registry("model")  # task models: forward(batch) -> losses / predictions
ENCODERS = Registry("encoder")  # text encoders: token ids -> hidden states
HEADS = Registry("head")  # hidden states -> logits
TOKENIZERS = Registry("tokenizer")
DATASETS = Registry("dataset")

__all__ = ["MODELS", "ENCODERS", "HEADS", "TOKENIZERS", "DATASETS"]
