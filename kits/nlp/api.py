"""The NLP kit's public API.

    from kits import nlp
    nlp.train("configs/nlp/bigru_crf_resume_ner.yml")
    pipe = nlp.load_model("configs/nlp/bigru_crf_resume_ner.yml",
                          "output/bigru_crf_resume_ner/best_model.safetensors")
    pipe(["高勇，男，中国国籍"])   # -> [{'text': ..., 'entities': [{'type': 'NAME', 'start': 0, 'end': 2, ...}]}]
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Iterable, Iterator, Sequence

from kits.core import runner
from kits.core.config import Config
from kits.core.pretrained import list_weights

from .data import (CoNLLDataset, JsonlClassificationDataset, LabelList, MaskedLMDataset, NERDataset,
                   TextClassificationDataset, TextPairDataset)
from .models import BiGRUCRF, MaskedLM, SequenceClassifier, TokenClassifier, TransformerEncoder
from .predict import Pipeline, artifact_dir, load_pipeline
from .predict import predict_files as _predict_files
from .registry import DATASETS, MODELS
from .task import task_for
from .tokenization import Tokenizer

__all__ = [
    "train", "evaluate", "compress", "export", "predict", "predict_files", "load_model", "list_models",
    "list_pretrained", "task_for",
    "Pipeline", "Tokenizer", "LabelList", "TextClassificationDataset", "TextPairDataset",
    "JsonlClassificationDataset", "NERDataset", "CoNLLDataset", "MaskedLMDataset", "TransformerEncoder",
    "SequenceClassifier", "TokenClassifier", "BiGRUCRF", "MaskedLM", "MODELS", "DATASETS",
]


def _cfg(config, overrides: Iterable[str] = ()) -> Config:
    return runner.as_config(config, overrides)


def train(config: str | os.PathLike | Config | dict, overrides: Iterable[str] = (), resume=None,
          dry_run: bool = False) -> dict:
    """Train (or with ``dry_run`` only validate and build) from a config; returns a summary dict."""
    return runner.run_train(config, task_for, overrides, resume, dry_run)


def evaluate(config, weights: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> dict:
    """Metrics of ``weights`` on the config's ``val_dataset``: accuracy / macro-F1, entity P/R/F1, or MLM."""
    cfg = _cfg(config, overrides)
    return runner.evaluate(cfg, task_for(cfg), weights=weights)

def compress(config, recipe, weights: str | os.PathLike | None = None, overrides: Iterable[str] = (),
             recipe_overrides: Iterable[str] = (), output: str | os.PathLike | None = None) -> dict:
    """Compress the model with a recipe from ``configs/slim/`` (see kits.slim); returns the report
    of baseline vs compressed, both measured as exported files in the target engines."""
    from kits.slim import compress as run_compress

    return run_compress(config, recipe, task_for, weights=weights, overrides=overrides,
                        recipe_overrides=recipe_overrides, output=output)



def load_model(config, weights: str | os.PathLike | None = None, overrides: Iterable[str] = ()) -> Pipeline:
    """A prediction pipeline: the config's model with ``weights``, its tokenizer and its labels."""
    return load_pipeline(_cfg(config, overrides), weights)


def export(config, weights: str | os.PathLike | None = None, formats: Sequence[str] = ("onnx",),
           output: str | os.PathLike | None = None, options: dict | None = None, overrides: Iterable[str] = ()):
    """Export the model with ``weights`` to inference formats plus ``deploy.yml`` and the tokenizer's
    vocab (see kits.export); ``kits.deploy.Predictor(output).predict("some text")`` then takes raw text.

    CRF taggers export their emissions, tag mask and CRF table; Viterbi runs in the runtime.
    """
    from kits.export import export as run_export

    cfg = _cfg(config, overrides)
    pipeline = load_model(cfg, weights)
    out = Path(output) if output else Path(cfg["trainer"]["output_dir"]) / "export"
    spec = pipeline.task.deploy_spec(cfg, pipeline.model, directory=artifact_dir(cfg, weights))
    result = run_export(pipeline.model, spec, out, formats, options)
    for name, source in spec.get("assets", {}).items():  # files the runtime reads beside the model
        if Path(source).resolve() != (out / name).resolve():
            shutil.copyfile(source, out / name)
    return result


def predict(model: Pipeline | str | os.PathLike | Config, texts: Sequence[str],
            weights: str | os.PathLike | None = None) -> list[dict]:
    """Predict raw texts with a Pipeline (or a config + ``weights``); one dict per text."""
    pipeline = model if isinstance(model, Pipeline) else load_model(model, weights)
    return pipeline(texts)


def predict_files(cfg, weights: str | os.PathLike | None, inputs: Sequence[str | os.PathLike],
                  output: str | os.PathLike | None = None) -> Iterator[dict]:
    """Results for every non-blank line of the ``inputs`` files (``-``: stdin), also written to ``output``."""
    return _predict_files(_cfg(cfg), weights, inputs, output)


def list_models() -> list[str]:
    return MODELS.names()


def list_pretrained() -> list[str]:
    from .pretrained import ENCODER_PRESETS

    return [n for n in list_weights() if n in ENCODER_PRESETS]
