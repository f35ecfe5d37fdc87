"""Every argument an op's handler reads is declared in its group's ``OPS`` (``OpSpec.args``), so the server's
refusal of undeclared keys (finding 2 of the tester's report) never refuses a key an op takes."""

from __future__ import annotations

import ast
import importlib
import pathlib

import pytest

import edgeorch.daemon.ops as ops_package
from edgeorch.daemon.ops.base import OpSpec

MODULES = sorted(p.stem for p in pathlib.Path(ops_package.__file__).parent.glob("*.py")
                 if p.stem not in ("__init__", "base"))
READERS = {"arg", "time_arg", "_version"}


def _keys_read(source: str) -> set[str]:
    """The literal keys the module reads from ``args``: ``arg(args, "k", ...)``, ``args.get("k")``, ``args["k"]``."""
    keys: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                and node.args[0].id == "args" and isinstance(node.args[1], ast.Constant):
            func = node.func
            if isinstance(func, ast.Name) and func.id in READERS:
                keys.add(node.args[1].value)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get" \
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "args" and node.args \
                and isinstance(node.args[0], ast.Constant):
            keys.add(node.args[0].value)
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "args" \
                and isinstance(node.slice, ast.Constant):
            keys.add(node.slice.value)
    return keys


@pytest.mark.parametrize("name", MODULES)
def test_each_key_a_group_reads_is_declared_by_its_ops(name: str) -> None:
    module = importlib.import_module(f"edgeorch.daemon.ops.{name}")
    specs = [spec for obj in vars(module).values() if isinstance(getattr(obj, "OPS", None), tuple)
             for spec in obj.OPS if isinstance(spec, OpSpec)]
    assert specs, name
    declared = {key for spec in specs for key in spec.args}
    read = _keys_read(pathlib.Path(module.__file__).read_text())  # type: ignore[arg-type]
    assert read <= declared, f"{name}: read but not declared: {sorted(read - declared)}"
    assert declared <= read | {"reason"}, f"{name}: declared but never read: {sorted(declared - read - {'reason'})}"
