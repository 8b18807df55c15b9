"""The NLP kit's adapters to the shared Trainer: one Task per kind of data.

``task_for(cfg)`` picks the adapter from the model's ``task_kind`` through the ``TASKS`` table:
``classification`` (SequenceClassifier), ``token_classification`` (TokenClassifier, BiGRUCRF) and
``masked_lm`` (MaskedLM). The shared parts live in ``NLPTask``:

- the tokenizer and label list are set once, in ``train_dataset``; the validation set inherits them
  (a label file then resolves against the training root), unless it sets its own;
- what the config leaves out is built by the training set and saved in ``trainer.output_dir``
  (``vocab.txt``, ``labels.txt``), where evaluation and prediction read it back;
- inputs are capped at the model's ``max_position`` and the tokenizer must fit its ``vocab_size``.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import numpy as np

from kits.core.config import Config
from kits.core.errors import ConfigError
from kits.core.registry import Registry
from kits.core.schema import validate_trainer
from kits.core.task import Task

from . import data, models  # noqa: F401  (fill the registries)
from .data.context import VOCAB_FILE, DataContext, resolve_labels, resolve_tokenizer
from .data.tagging import split_units, unit_spans
from .metrics import ClassificationMetric, MaskedLMMetric, NERMetric, word_tags
from .registry import DATASETS, ENCODERS, HEADS, MODELS, TOKENIZERS

TASKS = Registry("task")
INHERITED = ("tokenizer", "label_list")


def option(section: dict, name: str):
    """A dataset option as configured, else its class default (None when the class has no such option)."""
    if name in section:
        return section[name]
    param = inspect.signature(DATASETS.get(section["type"])).parameters.get(name)
    return None if param is None or param.default is param.empty else param.default


class NLPTask(Task):
    """Dataset building, inheritance of tokenizer / labels, and kind checks shared by the NLP tasks."""

    name = "nlp"
    kind = ""
    models = MODELS
    datasets = DATASETS
    components = (ENCODERS, HEADS, TOKENIZERS)

    def __init__(self):
        self.limits: dict = {}

    def validate(self, cfg: Config) -> None:
        super().validate(cfg)
        model_cls = self.models.get(cfg["model"]["type"])
        for split in ("train_dataset", "val_dataset"):
            section = cfg.get(split)
            if not section:
                continue
            if "context" in section:
                raise ConfigError(f"{cfg.origin(split + '.context')}: '{split}.context' is set by the task, "
                                  "not the config")
            data_kind = self.datasets.get(section["type"]).kind
            if data_kind != model_cls.task_kind:
                raise ConfigError(f"{cfg.origin(split + '.type')}: {section['type']} holds {data_kind} data but "
                                  f"{cfg['model']['type']} is a {model_cls.task_kind} model")
            special = option(section, "add_special_tokens")
            if special is not None and special != model_cls.special_tokens:
                raise ConfigError(f"{cfg.origin(split)}: {cfg['model']['type']} expects inputs "
                                  f"{'with' if model_cls.special_tokens else 'without'} [CLS]/[SEP]; set "
                                  f"{split}.add_special_tokens: {str(model_cls.special_tokens).lower()}")

    def build_model(self, cfg: Config):
        net = super().build_model(cfg)
        encoder = getattr(net, "encoder", net)
        self.limits = {"max_length": getattr(encoder, "max_position", None),
                       "vocab_size": getattr(encoder, "vocab_size", None)}
        return net

    def section(self, cfg: Config, split: str) -> dict | None:
        """The ``{split}_dataset`` section with the tokenizer / label list of the training set filled in."""
        section = cfg.get(f"{split}_dataset")
        if section is None:
            return None
        section, train = dict(section), cfg.get("train_dataset") or {}
        accepted = inspect.signature(self.datasets.get(section["type"])).parameters
        for key in INHERITED:
            if key in accepted and section.get(key) is None and train.get(key) is not None:
                value = train[key]
                if key == "label_list" and isinstance(value, str) and "root" in train:
                    value = str(Path(train["root"]) / value)
                section[key] = value
        return section

    def context(self, cfg: Config, split: str, directory: str | Path | None = None) -> DataContext:
        directory = directory if directory is not None else validate_trainer(cfg).output_dir
        return DataContext(Path(directory), writable=split == "train", **self.limits)

    def build_dataset(self, cfg: Config, split: str):
        section = self.section(cfg, split)
        return None if section is None else self.datasets.build(section, context=self.context(cfg, split))

    # -- export ------------------------------------------------------------------------------
    def deploy_spec(self, cfg: Config, model, directory: str | Path | None = None) -> dict:
        """Raw text in: ``Tokenize`` with the training tokenizer, whose vocab goes beside the model
        (``assets``); the task's results out. ``directory`` holds what training built (vocab.txt,
        labels.txt; default ``trainer.output_dir``), as for prediction."""
        section = self.section(cfg, "train") or {}
        ctx = self.context(cfg, "predict", directory)
        where = f"{cfg.path}: train_dataset"
        encoder = getattr(model, "encoder", model)
        vocab, tokenize = tokenize_op(section, ctx, where, getattr(encoder, "max_position", None))
        labels = None
        if "label_list" in self.datasets.signature(section["type"]).parameters:
            labels = resolve_labels(section.get("label_list"), section.get("root", "."), lambda: (), ctx, where,
                                    outside_first="O").names
        names = [item.name for item in model.input_spec()]
        ranges = {"input_ids": [0, int(encoder.vocab_size)], "attention_mask": [1, 2]}  # parity on full rows
        spec = {"task": self.kind, "config_hash": cfg.sha256(), "labels": labels,
                "preprocess": [{**tokenize, **self.tokenize_options(section)}], "assets": {VOCAB_FILE: str(vocab)},
                "example_shapes": {n: [1, 16] for n in names},
                "input_ranges": {n: r for n, r in ranges.items() if n in names}}
        return {**spec, **self.result_spec(model, labels)}

    def tokenize_options(self, section: dict) -> dict:
        """How this task's prediction encodes a text (``Tokenize`` options)."""
        return {"add_special_tokens": True}

    def result_spec(self, model, labels) -> dict:
        """The exported ``outputs`` and the ``postprocess`` ops that turn them into results."""
        return {"outputs": ["logits"], "postprocess": []}

    # -- prediction on raw text (used by the kit's predict) ----------------------------------
    def prepare(self, texts: list[str], tokenizer, section: dict) -> list[dict]:
        """Feature rows for raw input lines."""
        raise NotImplementedError

    def postprocess(self, outputs: dict, rows: list[dict], texts: list[str], labels, tokenizer) -> list[dict]:
        """One JSON-able result per input from the model's eval outputs (numpy arrays)."""
        raise NotImplementedError


@TASKS.register(name="classification")
class TextClassificationTask(NLPTask):
    """Single texts and text pairs -> one label; accuracy, macro-F1 and a confusion-matrix image."""

    name = kind = "classification"

    def build_metric(self, cfg, dataset):
        image = Path(validate_trainer(cfg).output_dir) / "confusion_matrix.png"
        return ClassificationMetric(dataset.class_names, image_path=image)

    def prepare(self, texts, tokenizer, section):
        if DATASETS.get(section["type"]).reads_pairs(section):  # "text_a<TAB>text_b" lines
            split = [t.split("\t", 1) + [""] * ("\t" not in t) for t in texts]
            return tokenizer.encode([a for a, _ in split], [b for _, b in split]).rows()
        return tokenizer.encode(texts).rows()

    def tokenize_options(self, section):
        return {"add_special_tokens": True, "pairs": bool(DATASETS.get(section["type"]).reads_pairs(section))}

    def result_spec(self, model, labels):
        top = {"type": "TopK", "k": min(5, len(labels or ()) or 5)}
        return {"outputs": ["logits"], "postprocess": [{"type": "Softmax"}, top]}

    def postprocess(self, outputs, rows, texts, labels, tokenizer):
        logits = outputs["logits"].astype(np.float64)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return [{"text": text, "label": labels.names[int(p.argmax())], "score": round(float(p.max()), 6)}
                for text, p in zip(texts, probs)]


@TASKS.register(name="token_classification")
class TokenClassificationTask(NLPTask):
    """Tags per word (character for Chinese); entity-level precision / recall / F1 with seqeval."""

    name = kind = "token_classification"

    def build_metric(self, cfg, dataset):
        return NERMetric(dataset)

    def prepare(self, texts, tokenizer, section):
        units = option(section, "units")
        encoded = tokenizer.encode_words([split_units(t, units) or ["?"] for t in texts],
                                         add_special_tokens=bool(option(section, "add_special_tokens")))
        rows = encoded.rows()
        for row, word_ids, text in zip(rows, encoded.word_ids, texts):
            row["spans"] = unit_spans(text, units)
            row["word_ids"] = word_ids
        return rows

    def tokenize_options(self, section):
        return {"add_special_tokens": bool(option(section, "add_special_tokens")), "units": option(section, "units")}

    def result_spec(self, model, labels):
        if getattr(model, "crf", None) is None:
            return {"outputs": ["logits"], "postprocess": [{"type": "TokenEntities"}]}
        return {"outputs": ["logits", "tag_mask", "transitions"],
                "postprocess": [{"type": "CRFDecode"}, {"type": "TokenEntities"}]}

    def postprocess(self, outputs, rows, texts, labels, tokenizer):
        from seqeval.metrics.sequence_labeling import get_entities

        from .data.tagging import first_tokens

        tags = outputs["tags"] if "tags" in outputs else outputs["logits"].argmax(-1)
        results = []
        for row, tag_row, text in zip(rows, tags, texts):
            spans = row["spans"]
            names = word_tags(tag_row, first_tokens(row["word_ids"], len(spans)), labels.names)
            entities = [{"type": kind, "start": spans[a][0], "end": spans[b][1], "text": text[spans[a][0]:spans[b][1]]}
                        for kind, a, b in get_entities(names)]
            results.append({"text": text, "entities": entities})
        return results


@TASKS.register(name="masked_lm")
class MaskedLMTask(NLPTask):
    """Masked-token pretraining on raw text; prediction fills the [MASK] tokens of the input."""

    name = kind = "masked_lm"
    top_k = 5

    def build_metric(self, cfg, dataset):
        return MaskedLMMetric()

    def prepare(self, texts, tokenizer, section):
        return tokenizer.encode(texts).rows()

    def postprocess(self, outputs, rows, texts, labels, tokenizer):
        results = []
        for row, logits, text in zip(rows, outputs["logits"], texts):
            fills = []
            for position in np.flatnonzero(np.asarray(row["input_ids"]) == tokenizer.mask_id):
                best = np.argsort(-logits[position])[: self.top_k]
                fills.append({"position": int(position), "tokens": [tokenizer.id_to_token(int(i)) for i in best]})
            results.append({"text": text, "masks": fills})
        return results


def tokenize_op(section: dict, ctx: DataContext, where: str, max_position: int | None) -> tuple[Path, dict]:
    """The vocab file of the training tokenizer and the ``Tokenize`` op that rebuilds it at run time."""
    from kits.core.fileio import sha256sum

    from .pretrained import VOCAB_PRESETS, vocab_file

    spec = dict(section.get("tokenizer") or {})
    tokenizer = resolve_tokenizer(spec, None, ctx, where)  # as prediction resolves it
    name, preset = spec.get("vocab"), {}
    if name is None:
        path = ctx.file(VOCAB_FILE)
    elif Path(name).is_file():
        path = Path(name)
    else:  # a pretrained encoder's name
        path, preset = vocab_file(name), VOCAB_PRESETS.get(name, {})
    default = TOKENIZERS.signature(spec["type"]).parameters["lowercase"].default
    limit = tokenizer.max_length if max_position is None else min(tokenizer.max_length, int(max_position))
    return path, {"type": "Tokenize", "vocab": VOCAB_FILE, "sha256": sha256sum(path), "kind": tokenizer.kind,
                  "lowercase": bool(preset.get("lowercase", spec.get("lowercase", default))), "max_length": limit}


def task_for(cfg: Config) -> NLPTask:
    """The adapter for the config's model (its ``task_kind``)."""
    model = cfg.get("model")
    if not isinstance(model, dict) or "type" not in model:
        raise ConfigError(f"{cfg.path}: missing required section 'model' (with a 'type')")
    return TASKS.get(MODELS.get(model["type"]).task_kind)()
