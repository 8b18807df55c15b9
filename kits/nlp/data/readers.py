"""Line-numbered readers of the NLP file formats; every error names the file and the line.

Readers yield ``(line_number, fields)``; blank lines are skipped (CoNLL uses them as sentence
breaks). Text is read as UTF-8 (a byte-order mark is ignored).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Iterator, Sequence

from kits.core.errors import DataError

FORMATS = ("tsv", "csv")


def data_path(root: str | Path, name: str | Path) -> Path:
    """``name`` relative to ``root`` (absolute names stay); a missing file is a DataError."""
    path = Path(root) / name
    if not path.is_file():
        raise DataError(f"data file not found: {path}")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    with open(path, encoding="utf-8-sig") as fh:
        for number, line in enumerate(fh, 1):
            yield number, line.rstrip("\r\n")


def read_columns(path: Path, num_columns: int, names: Sequence[str], format: str = "tsv",
                 header: bool = False) -> Iterator[tuple[int, list[str]]]:
    """Rows of exactly ``num_columns`` fields from a TSV (split on tabs) or CSV (quoted) file."""
    if format not in FORMATS:
        raise DataError(f"unknown format '{format}' for {path}; choose one of {', '.join(FORMATS)}")
    rows = _csv_rows(path) if format == "csv" else ((n, line.split("\t")) for n, line in _lines(path))
    sep = "commas" if format == "csv" else "tabs"
    for number, fields in rows:
        if header and number == 1:
            continue
        if not any(f.strip() for f in fields):
            continue
        if len(fields) != num_columns:
            raise DataError(f"{path}:{number}: expected {num_columns} columns ({', '.join(names)}) separated "
                            f"by {sep}, found {len(fields)}")
        yield number, fields


def _csv_rows(path: Path) -> Iterator[tuple[int, list[str]]]:
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        start = 1
        for fields in reader:
            yield start, fields
            start = reader.line_num + 1


def read_jsonl(path: Path, fields: Sequence[str]) -> Iterator[tuple[int, dict]]:
    """JSON objects, one per line, that have every key in ``fields``."""
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{number}: expected a JSON object, got {type(obj).__name__}")
        missing = [f for f in fields if f not in obj]
        if missing:
            raise DataError(f"{path}:{number}: missing field(s) {missing}; the line has {sorted(obj)}")
        yield number, obj


def read_conll(path: Path, token_column: int = 0, tag_column: int = -1,
               delimiter: str | None = None) -> Iterator[tuple[int, list[str], list[str]]]:
    """Sentences of a CoNLL column file as ``(first_line, tokens, tags)``; ``-DOCSTART-`` is skipped."""
    tokens: list[str] = []
    tags: list[str] = []
    start = 0
    for number, line in _lines(path):
        if not line.strip():
            if tokens:
                yield start, tokens, tags
            tokens, tags = [], []
            continue
        fields = line.split(delimiter)
        if fields[0] == "-DOCSTART-":
            continue
        need = max(token_column, tag_column) + 1 if tag_column >= 0 else max(token_column + 1, -tag_column)
        if len(fields) < max(need, 2):
            raise DataError(f"{path}:{number}: expected a token and a tag column, found {len(fields)} column(s)")
        if not tokens:
            start = number
        tokens.append(fields[token_column])
        tags.append(fields[tag_column])
    if tokens:
        yield start, tokens, tags


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """Non-blank lines of a plain text file."""
    for number, line in _lines(path):
        if line.strip():
            yield number, line
