"""Fills the NLP registries: every model, encoder and head is imported here explicitly."""

from .. import pretrained  # noqa: F401  (registers named weights and PretrainedEncoder)
from .bigru_crf import BiGRUCRF
from .crf import CRF
from .encoder import TransformerEncoder, mean_pool
from .heads import ClassificationHead, MaskedLMHead, TokenHead
from .tasks import MaskedLM, SequenceClassifier, TokenClassifier

__all__ = ["BiGRUCRF", "CRF", "TransformerEncoder", "mean_pool", "ClassificationHead", "MaskedLMHead", "TokenHead",
           "MaskedLM", "SequenceClassifier", "TokenClassifier"]
