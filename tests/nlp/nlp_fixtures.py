"""Hand-written NLP fixtures (tiny files written into a temp dir) and a tiny-config builder."""

from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / ".." / "shared"

SENTIMENT = [
    ("the movie was great", "pos"), ("i liked it a lot", "pos"), ("a wonderful film", "pos"),
    ("great acting and a fine story", "pos"), ("what a lovely surprise", "pos"), ("fun from start to end", "pos"),
    ("the best film this year", "pos"), ("i loved every minute", "pos"),
    ("the movie was bad", "neg"), ("i hated it", "neg"), ("a boring film", "neg"),
    ("bad acting and a dull plot", "neg"), ("what a waste of time", "neg"), ("dull from start to end", "neg"),
    ("the worst film this year", "neg"), ("i hated every minute", "neg"),
]

# characters + BIO tags: PER (person), LOC (place), ORG (organisation)
NER_BIO = [
    ("张三在北京工作", "B-PER I-PER O B-LOC I-LOC O O"),
    ("李四去上海", "B-PER I-PER O B-LOC I-LOC"),
    ("王五加入华为公司", "B-PER I-PER O O B-ORG I-ORG I-ORG I-ORG"),
    ("我住在广州", "O O O B-LOC I-LOC"),
    ("赵六是老师", "B-PER I-PER O O O"),
    ("腾讯在深圳", "B-ORG I-ORG O B-LOC I-LOC"),
    ("他在杭州读书", "O O B-LOC I-LOC O O"),
    ("张三和李四是朋友", "B-PER I-PER O B-PER I-PER O O O"),
]


def bioes(tags: str) -> str:
    """The BIOES form of a BIO tag string (single-token entities S-, last tokens E-)."""
    seq = tags.split()
    out = []
    for i, tag in enumerate(seq):
        nxt = seq[i + 1] if i + 1 < len(seq) else "O"
        continues = nxt.startswith("I-")
        if tag.startswith("B-"):
            out.append(tag if continues else "S-" + tag[2:])
        elif tag.startswith("I-"):
            out.append(tag if continues else "E-" + tag[2:])
        else:
            out.append(tag)
    return " ".join(out)


def write_tsv(folder: Path, name: str, rows, header: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + ["\t".join(r) for r in rows]
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_ner(folder: Path, name: str, rows=NER_BIO, scheme: str = "BIO") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "w", encoding="utf-8") as fh:
        for text, tags in rows:
            tags = bioes(tags) if scheme == "BIOES" else tags
            fh.write(json.dumps({"text": list(text), "label": tags.split()}, ensure_ascii=False) + "\n")
    return path


def sentiment_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "sentiment"
    write_tsv(folder, "train.tsv", SENTIMENT, header="text\tlabel")
    write_tsv(folder, "dev.tsv", SENTIMENT[::3], header="text\tlabel")
    return folder


def ner_dir(tmp_path: Path, scheme: str = "BIO") -> Path:
    folder = tmp_path / f"ner_{scheme}"
    write_ner(folder, "train.json", scheme=scheme)
    write_ner(folder, "dev.json", NER_BIO[:4], scheme=scheme)
    return folder


def tiny_trainer(tmp_path: Path, iters: int = 30, **extra) -> dict:
    return {"iters": iters, "batch_size": 4, "num_workers": 0, "output_dir": str(tmp_path / "out"),
            "eval_interval": iters, "save_interval": iters, "log_interval": 1, "visualdl": False,
            "progress": False, "device": "cpu", "seed": 0, **extra}


TINY_ENCODER = dict(type="TransformerEncoder", vocab_size=64, hidden_size=32, num_layers=1, num_heads=2,
                    intermediate_size=64, max_position=64, dropout=0.0)


def classifier_config(tmp_path: Path, iters: int = 30, pretrained: str | None = None, vocab: str | None = None) -> dict:
    root = str(sentiment_dir(tmp_path))
    tokenizer = {"type": "WordPiece", "min_freq": 1, "max_size": 64, **({"vocab": vocab} if vocab else {})}
    cfg = {"kit": "nlp",
           "model": {"type": "SequenceClassifier", "num_classes": 2, "encoder": dict(TINY_ENCODER),
                     "head": {"pooling": "mean", "dropout": 0.0}},
           "train_dataset": {"type": "TextClassificationDataset", "root": root, "list": "train.tsv", "header": True,
                             "tokenizer": tokenizer},
           "val_dataset": {"type": "TextClassificationDataset", "root": root, "list": "dev.tsv", "header": True},
           "optimizer": {"type": "AdamW", "lr": 0.003}, "trainer": tiny_trainer(tmp_path, iters)}
    if pretrained:
        cfg["pretrained"] = pretrained
    return cfg


def bigru_config(tmp_path: Path, iters: int = 30, scheme: str = "BIO") -> dict:
    root = str(ner_dir(tmp_path, scheme))
    return {"kit": "nlp",
            "model": {"type": "BiGRUCRF", "vocab_size": 64, "num_classes": 7 if scheme == "BIO" else 8,
                      "embed_dim": 32, "hidden_size": 32, "dropout": 0.0},
            "train_dataset": {"type": "NERDataset", "root": root, "list": "train.json", "add_special_tokens": False,
                              "tokenizer": {"type": "Chars", "max_size": 64}},
            "val_dataset": {"type": "NERDataset", "root": root, "list": "dev.json", "add_special_tokens": False},
            "optimizer": {"type": "Adam", "lr": 0.02}, "trainer": tiny_trainer(tmp_path, iters, best_metric="f1")}
