"""Label lists: read from a file, given inline, or collected from training data and saved."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

from kits.core.errors import DataError


class LabelList:
    """An ordered list of label names; the position is the class id."""

    def __init__(self, names: Sequence[str], source: str = "<inline>"):
        names = [str(n) for n in names]
        if not names:
            raise DataError(f"{source}: the label list is empty")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise DataError(f"{source}: duplicate labels {dupes}")
        self.names, self.source = names, source
        self._ids = {n: i for i, n in enumerate(names)}

    @classmethod
    def from_file(cls, path: str | Path) -> "LabelList":
        path = Path(path)
        if not path.is_file():
            raise DataError(f"label list not found: {path}")
        names = [line.strip() for line in path.read_text(encoding="utf-8-sig").splitlines() if line.strip()]
        return cls(names, str(path))

    @classmethod
    def collect(cls, labels: Iterable[str], source: str, outside_first: str | None = None) -> "LabelList":
        """Sorted distinct labels (``outside_first``, e.g. the NER tag ``O``, goes first)."""
        names = sorted(set(labels))
        if outside_first in names:
            names = [outside_first] + [n for n in names if n != outside_first]
        return cls(names, f"labels collected from {source}")

    def index(self, name: str, where: str) -> int:
        """The id of ``name``; ``where`` (``file:line``) is named when it is not in the list."""
        try:
            return self._ids[name]
        except KeyError:
            shown = ", ".join(self.names[:20]) + (", ..." if len(self.names) > 20 else "")
            raise DataError(f"{where}: label '{name}' is not in the label list ({self.source}: {shown})") from None

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(f"{n}\n" for n in self.names), encoding="utf-8")
        return path

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self):
        return iter(self.names)

    def __eq__(self, other) -> bool:
        return isinstance(other, LabelList) and other.names == self.names

    def __repr__(self) -> str:
        return f"LabelList({self.names!r})"
