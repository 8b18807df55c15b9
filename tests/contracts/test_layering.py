"""The one layering direction: core <- export <- slim <- kits <- tools/deploy; kits never import each other.

kits.deploy (the light runtime) stands alone; others may use its numpy pre/post-processing so that
evaluation and deployment share one implementation. kits.slim sits above kits.export because a
compressed model is judged on its exported artifact, run by kits.deploy.
"""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "kits"
KITS = {"detection", "segmentation", "nlp"}
FORBIDDEN = {
    "core": {"slim", "export", "deploy"} | KITS,
    "slim": KITS,
    "export": {"slim"} | KITS,
    "deploy": {"core", "slim", "export"} | KITS,
    **{kit: KITS - {kit} for kit in KITS},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """Absolute names of the kits modules a file imports (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            names.add(target)
            names |= {f"{target}.{a.name}" for a in node.names}
    return {n for n in names if n.startswith("kits.")}


def files():
    return sorted(p for p in PKG.rglob("*.py"))


@pytest.mark.parametrize("path", files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_imports_point_one_way(path):
    layer = module_name(path).split(".")[1] if "." in module_name(path) else None
    if layer not in FORBIDDEN:
        return
    bad = sorted(n for n in imported(path) if n.split(".")[1] in FORBIDDEN[layer])
    assert not bad, f"{path.relative_to(ROOT)} ({layer}) must not import {bad}"


def test_the_checker_sees_relative_imports(tmp_path):
    assert "kits.core.registry" in imported(PKG / "core" / "task.py")


def run_python(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=True).stdout.strip()


def test_light_imports_do_not_load_paddle():
    code = "import sys, kits, kits.core, kits.core.config, kits.core.schema; print('paddle' in sys.modules)"
    assert run_python(code) == "False"


def test_deploy_runtime_does_not_load_paddle():
    if not (PKG / "deploy" / "__init__.py").is_file():
        pytest.skip("kits.deploy is not part of this tree yet")
    assert run_python("import sys, kits.deploy; print('paddle' in sys.modules)") == "False"
