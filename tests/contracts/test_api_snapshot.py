"""Each kit's public API is snapshotted in docs/api/<kit>.md; a change must regenerate the docs."""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("api_docs", ROOT / "tools" / "api_docs.py")
api_docs = importlib.util.module_from_spec(spec)
spec.loader.exec_module(api_docs)


@pytest.mark.parametrize("kit", api_docs.KITS)
def test_public_api_matches_its_docs(kit):
    committed = (ROOT / "docs" / "api" / f"{kit}.md").read_text(encoding="utf-8")
    assert api_docs.render(kit) == committed, (
        f"the public API of kits.{kit} changed: review it, then run `python tools/api_docs.py`")


@pytest.mark.parametrize("kit", api_docs.KITS)
def test_public_api_stays_small(kit):
    module = importlib.import_module(f"kits.{kit}.api")
    assert 10 <= len(module.__all__) <= 30
    missing = [name for name in module.__all__ if not hasattr(module, name)]
    assert not missing
