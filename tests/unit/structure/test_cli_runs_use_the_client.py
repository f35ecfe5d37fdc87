"""The CLI's run commands drive a daemon through the Python client (issue 19, point 6): they use
``backend.api`` (an ``edgeorch.Client``), never the low-level ``backend.client`` and its raw ops."""

from __future__ import annotations

import ast
from pathlib import Path

import edgeorch

RUNS = Path(edgeorch.__file__).resolve().parent / "cli" / "commands" / "runs.py"


def test_the_run_commands_never_send_raw_ops():
    raw = [f"line {node.lineno}: .{node.attr}" for node in ast.walk(ast.parse(RUNS.read_text()))
           if isinstance(node, ast.Attribute) and node.attr in ("client", "call", "stream")]
    assert raw == []
