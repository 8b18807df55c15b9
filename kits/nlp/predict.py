"""Prediction on raw text: a model with its tokenizer and labels, batched by length.

The tokenizer and the label list come from the config (``train_dataset``), with what a training
run built (``vocab.txt``, ``labels.txt``) read from beside the weights or from ``trainer.output_dir``.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterable, Iterator, Sequence

import numpy as np

from kits.core.config import Config
from kits.core.errors import DataError
from kits.core.pretrained import load_into
from kits.core.schema import validate_trainer

from .data.context import LABELS_FILE, VOCAB_FILE, resolve_labels, resolve_tokenizer
from .data.labels import LabelList
from .task import NLPTask, task_for
from .tokenization import Tokenizer, pad_batch


@dataclass
class Pipeline:
    """``pipeline(texts) -> [dict]``: labels with scores, entities, or [MASK] fills, per text."""

    model: object
    task: NLPTask
    tokenizer: Tokenizer
    labels: LabelList | None
    section: dict
    batch_size: int = 32
    meta: dict = field(default_factory=dict)

    def __call__(self, texts: Sequence[str]) -> list[dict]:
        import paddle

        texts = list(texts)
        for i, text in enumerate(texts):
            if not text.strip():
                raise DataError(f"input {i + 1} is an empty text")
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths per batch
        results: list[dict | None] = [None] * len(texts)
        self.model.eval()
        for start in range(0, len(order), self.batch_size):
            picked = order[start:start + self.batch_size]
            batch_texts = [texts[i] for i in picked]
            rows = self.task.prepare(batch_texts, self.tokenizer, self.section)
            tensors = pad_batch([{k: r[k] for k in ("input_ids", "token_type_ids", "attention_mask")} for r in rows],
                                pad_id=self.tokenizer.pad_id)
            with paddle.no_grad():
                outputs = self.model({k: paddle.to_tensor(v) for k, v in tensors.items()})
            outputs = {k: np.asarray(v.numpy()) for k, v in outputs.items()}
            done = self.task.postprocess(outputs, rows, batch_texts, self.labels, self.tokenizer)
            for index, result in zip(picked, done):
                results[index] = result
        return results


def artifact_dir(cfg: Config, weights: str | os.PathLike | None) -> Path:
    """Beside the weights when a training run saved its vocab / labels there, else the output dir."""
    if weights is not None and Path(weights).is_file():
        folder = Path(weights).resolve().parent
        if (folder / VOCAB_FILE).is_file() or (folder / LABELS_FILE).is_file():
            return folder
    return Path(validate_trainer(cfg).output_dir)


def load_pipeline(cfg: Config, weights: str | os.PathLike | None = None) -> Pipeline:
    """Build the config's model with ``weights`` (default: the config's ``pretrained``) for prediction."""
    from kits.core.trainer import select_device

    task = task_for(cfg)
    task.validate(cfg)
    tc = validate_trainer(cfg)
    select_device(tc.device)
    model = task.build_model(cfg)
    source = weights or cfg.get("pretrained")
    if source:
        load_into(model, str(source), strict=bool(weights))
    model.eval()
    section = task.section(cfg, "train")
    ctx = task.context(cfg, "predict", artifact_dir(cfg, weights))
    where = f"{cfg.path}: train_dataset"
    tokenizer = resolve_tokenizer(section.get("tokenizer"), None, ctx, where)
    labels = None
    if "label_list" in task.datasets.signature(section["type"]).parameters:
        labels = resolve_labels(section.get("label_list"), section.get("root", "."), lambda: (), ctx, where,
                                outside_first="O")
        if not labels.names:
            raise DataError(f"{where}: no label list for prediction")
    return Pipeline(model, task, tokenizer, labels, section, tc.eval_batch_size or tc.batch_size,
                    meta={"weights": str(source) if source else None, "artifacts": str(ctx.directory)})


def _read_lines(source: str | os.PathLike, stdin: IO[str]) -> Iterator[str]:
    if str(source) == "-":
        yield from (line.rstrip("\r\n") for line in stdin)
        return
    path = Path(source)
    if not path.is_file():
        raise DataError(f"input file not found: {path}")
    with open(path, encoding="utf-8-sig") as fh:
        yield from (line.rstrip("\r\n") for line in fh)


def predict_lines(pipeline: Pipeline, lines: Iterable[str], chunk: int = 256) -> Iterator[dict]:
    """Results for every non-blank line, in order, computed ``chunk`` lines at a time."""
    pending: list[str] = []
    for line in lines:
        if line.strip():
            pending.append(line)
        if len(pending) >= chunk:
            yield from pipeline(pending)
            pending = []
    if pending:
        yield from pipeline(pending)


def predict_files(cfg: Config, weights: str | os.PathLike | None, inputs: Sequence[str | os.PathLike],
                  output: str | os.PathLike | None = None) -> Iterator[dict]:
    """Predict every non-blank line of the ``inputs`` files (``-`` is stdin); one dict per line.

    With ``output`` the results are also written there as JSON lines.
    """
    pipeline = load_pipeline(cfg, weights)
    sink = open(output, "w", encoding="utf-8") if output else None
    try:
        for source in inputs:
            for result in predict_lines(pipeline, _read_lines(source, sys.stdin)):
                if sink:
                    sink.write(json.dumps(result, ensure_ascii=False) + "\n")
                yield result
    finally:
        if sink:
            sink.close()
