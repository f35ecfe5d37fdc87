"""The pipelines package presents the names the rest of edgeorch imports, and leaves ``edgeorch.registry`` free."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import edgeorch
import edgeorch.pipelines as pipelines

ROOT = Path(edgeorch.__file__).resolve().parent
REPO = ROOT.parent


def _names_imported_from_the_package() -> set[tuple[str, str]]:
    """``(file, name)`` for each ``from edgeorch.pipelines import name`` (or ``..pipelines``) in edgeorch, tests, benchmarks."""
    found: set[tuple[str, str]] = set()
    for top in ("edgeorch", "tests", "benchmarks"):
        for path in (REPO / top).rglob("*.py"):
            if ROOT / "pipelines" in path.parents:
                continue
            text = path.read_text()
            if "pipelines import" not in text:  # no such import can be in it: skip parsing (most files)
                continue
            package = list(path.relative_to(REPO).parts[:-1])
            for node in ast.walk(ast.parse(text, str(path))):
                if not isinstance(node, ast.ImportFrom):
                    continue
                module = node.module or ""
                if node.level:
                    module = ".".join(package[: len(package) - (node.level - 1)] + [module])
                if module == "edgeorch.pipelines":
                    found.update((str(path.relative_to(REPO)), a.name) for a in node.names)
    return found


def test_every_name_importers_use_is_exported():
    imported = _names_imported_from_the_package()
    assert imported, "the scan found no importer: it is broken"
    missing = sorted((f, n) for f, n in imported if n not in pipelines.__all__)
    assert missing == []


def test_the_exports_resolve():
    for name in pipelines.__all__:
        assert getattr(pipelines, name) is not None, name


def test_the_top_level_name_registry_is_free_for_the_model_registry():
    assert importlib.util.find_spec("edgeorch.registry") is None
    assert pipelines.PipelineRegistry.__module__ == "edgeorch.pipelines.registry"
