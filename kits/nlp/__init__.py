"""NLP kit: text classification, NER (softmax, CRF, BiGRU-CRF) and masked-LM pretraining."""

from .api import *  # noqa: F401,F403
from .api import __all__  # noqa: F401
