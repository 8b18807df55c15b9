"""NLP datasets; importing this module registers them in ``DATASETS``."""

from .base import TextDataset
from .bucketing import bucket_order
from .classification import JsonlClassificationDataset, TextClassificationDataset, TextPairDataset
from .context import DataContext, resolve_labels, resolve_tokenizer
from .labels import LabelList
from .mlm import MaskedLMDataset
from .tagging import CoNLLDataset, NERDataset, split_units

__all__ = ["TextDataset", "TextClassificationDataset", "TextPairDataset", "JsonlClassificationDataset",
           "NERDataset", "CoNLLDataset", "MaskedLMDataset", "LabelList", "DataContext", "resolve_labels",
           "resolve_tokenizer", "bucket_order", "split_units"]
