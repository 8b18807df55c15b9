"""NLP metrics: accuracy / macro-F1 / confusion matrix, entity-level NER scores (seqeval), masked LM.

Each metric gets the evaluated dataset: class names, and for NER the gold tags of whole sentences
(so entities cut off by truncation count as missed).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from kits.core.task import Metric

from .tokenization import IGNORE_INDEX


def _numpy(value) -> np.ndarray:
    return value.numpy() if hasattr(value, "numpy") else np.asarray(value)


def confusion_matrix(gold: Sequence[int], pred: Sequence[int], num_classes: int) -> np.ndarray:
    """``[gold, predicted]`` counts."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(gold, dtype=np.int64), np.asarray(pred, dtype=np.int64)), 1)
    return matrix


def per_class_f1(matrix: np.ndarray) -> np.ndarray:
    tp = np.diag(matrix).astype(np.float64)
    predicted, actual = matrix.sum(0), matrix.sum(1)
    denom = predicted + actual
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def macro_f1(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur in the gold labels or the predictions (as scikit-learn)."""
    seen = (matrix.sum(0) + matrix.sum(1)) > 0
    return float(per_class_f1(matrix)[seen].mean()) if seen.any() else 0.0


def plot_confusion_matrix(matrix: np.ndarray, names: Sequence[str], path: str | Path, normalize: bool = True) -> Path:
    """Save a confusion matrix image (rows: gold, columns: predicted; row-normalised by default)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shown = matrix / np.maximum(matrix.sum(1, keepdims=True), 1) if normalize else matrix
    size = max(4.0, 0.45 * len(names) + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    ax.set_xticks(range(len(names)), names, rotation=90)
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    if len(names) <= 20:
        for (i, j), value in np.ndenumerate(matrix):
            ax.text(j, i, str(value), ha="center", va="center", fontsize=7,
                    color="white" if shown[i, j] > 0.5 else "black")
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class ClassificationMetric(Metric):
    """accuracy, macro_f1 and f1/<class>; writes the confusion matrix to ``image_path`` if given."""

    def __init__(self, class_names: Sequence[str], image_path: str | Path | None = None):
        self.class_names, self.image_path = list(class_names), image_path
        self.reset()

    def reset(self) -> None:
        self.gold: list[np.ndarray] = []
        self.pred: list[np.ndarray] = []

    def update(self, outputs: dict, batch: dict) -> None:
        self.pred.append(_numpy(outputs["logits"]).argmax(-1).reshape(-1))
        self.gold.append(_numpy(batch["labels"]).reshape(-1))

    def matrix(self) -> np.ndarray:
        gold = np.concatenate(self.gold) if self.gold else np.zeros(0, np.int64)
        pred = np.concatenate(self.pred) if self.pred else np.zeros(0, np.int64)
        return confusion_matrix(gold, pred, len(self.class_names))

    def compute(self) -> dict[str, float]:
        matrix = self.matrix()
        total = matrix.sum()
        out = {"accuracy": float(np.trace(matrix) / total) if total else 0.0, "macro_f1": macro_f1(matrix)}
        out.update({f"f1/{n}": float(f) for n, f in zip(self.class_names, per_class_f1(matrix))})
        if self.image_path is not None and total:
            plot_confusion_matrix(matrix, self.class_names, self.image_path)
        return out


def word_tags(token_tags: np.ndarray, starts: np.ndarray, names: Sequence[str]) -> list[str]:
    """Tag names per word from per-token tag ids; words without a token (or tag -1) are ``O``."""
    out = []
    for position in starts:
        tag = int(token_tags[position]) if position >= 0 else -1
        out.append(names[tag] if 0 <= tag < len(names) else "O")
    return out


def entity_scores(gold: list[list[str]], pred: list[list[str]], scheme: str = "BIO",
                  strict: bool = False) -> dict[str, float]:
    """Entity-level micro precision / recall / F1 and per-type F1 with seqeval.

    The default (conlleval) mode reads BIO, BIOES and mixtures; ``strict`` also requires valid
    transitions of ``scheme`` (an entity counts only when its tags are well-formed).
    """
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score
    from seqeval.scheme import IOB2, IOBES

    kw = {"mode": "strict", "scheme": IOBES if scheme == "BIOES" else IOB2} if strict else {}
    out = {"precision": float(precision_score(gold, pred, zero_division=0, **kw)),
           "recall": float(recall_score(gold, pred, zero_division=0, **kw)),
           "f1": float(f1_score(gold, pred, zero_division=0, **kw))}
    report = classification_report(gold, pred, output_dict=True, zero_division=0, **kw)
    out.update({f"f1/{k}": float(v["f1-score"]) for k, v in report.items() if not k.endswith(" avg")})
    return out


class NERMetric(Metric):
    """Entity precision / recall / F1 over whole sentences (``tags`` from a CRF, else argmax logits)."""

    def __init__(self, dataset, strict: bool = False):
        self.dataset, self.strict = dataset, strict
        self.reset()

    def reset(self) -> None:
        self.gold: list[list[str]] = []
        self.pred: list[list[str]] = []

    def update(self, outputs: dict, batch: dict) -> None:
        tags = _numpy(outputs["tags"]) if "tags" in outputs else _numpy(outputs["logits"]).argmax(-1)
        names = self.dataset.class_names
        for row, index in zip(tags, _numpy(batch["index"]).reshape(-1)):
            self.pred.append(word_tags(row, self.dataset.word_starts[index], names))
            self.gold.append(list(self.dataset.sentences[index].tags))

    def compute(self) -> dict[str, float]:
        return entity_scores(self.gold, self.pred, self.dataset.scheme, self.strict)


class MaskedLMMetric(Metric):
    """Accuracy, mean cross-entropy and perplexity of the masked tokens."""

    def reset(self) -> None:
        self.correct = self.count = 0
        self.nll = 0.0

    def __init__(self):
        self.reset()

    def update(self, outputs: dict, batch: dict) -> None:
        labels = _numpy(batch["labels"]).reshape(-1)
        keep = labels != IGNORE_INDEX
        logits = _numpy(outputs["logits"]).reshape(len(labels), -1)[keep].astype(np.float64)
        labels = labels[keep]
        top = logits.max(1, keepdims=True)
        log_z = top[:, 0] + np.log(np.exp(logits - top).sum(1))
        self.nll += float((log_z - logits[np.arange(len(labels)), labels]).sum())
        self.correct += int((logits.argmax(1) == labels).sum())
        self.count += len(labels)

    def compute(self) -> dict[str, float]:
        loss = self.nll / max(self.count, 1)
        return {"mlm_accuracy": self.correct / max(self.count, 1), "mlm_loss": loss,
                "perplexity": float(np.exp(min(loss, 50.0)))}
