"""The daemon package's shape: wiring in app.py, one module per group of ops, collaborators passed in.

Static checks (``ast``, no daemon started): they guard the structure that
lets each group of ops be read and tested on its own. The ops' behaviour is
covered over the real socket by the other tests of this folder.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import edgeorch
from edgeorch.daemon import ops
from edgeorch.daemon.app import Daemon

ROOT = Path(edgeorch.__file__).resolve().parent
GROUPS = [ops.StatusOps, ops.PipelineOps, ops.RunOps, ops.EventOps, ops.InputOps, ops.DatasetOps, ops.GcOps,
          ops.MetricsOps, ops.AuditOps, ops.ModelOps, ops.PrivacyOps]

OPS_SERVED = {
    "status", "resources", "pipelines.list", "pipelines.show", "pipelines.validate", "pipelines.pause",
    "pipelines.resume", "reload", "trigger", "runs.list", "runs.show", "logs", "cancel", "retry", "events",
    "inputs.list", "inputs.requeue", "gc", "gc.apply", "metrics", "datasets.list", "datasets.show", "datasets.add",
    "datasets.prune", "audit.list", "audit.state", "audit.verify", "audit.init", "audit.seal", "audit.prune", "audit.restore_key",
    "audit.acknowledge_restore",
    "models.list", "models.show", "models.versions", "models.diff", "models.why", "models.promote", "models.rollback",
    "models.observe", "models.unblock", "privacy.show", "privacy.spend",
}
"""The daemon's ops besides the control server's own (ping, version, ops); docs/protocol.md documents each."""


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every edgeorch module ``path`` imports, type-level and function-level imports included."""
    rel = path.relative_to(ROOT.parent).with_suffix("")
    package = list(rel.parts[:-1])  # a module's package; for __init__.py, the package itself
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return names


def test_nothing_imports_the_daemon_back():
    """Only the CLI starts the daemon; no module it builds (ops, triggers, engine, ...) imports it."""
    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in ("daemon", "cli"):
            continue
        if any(n == "edgeorch.daemon" or n.startswith("edgeorch.daemon.") for n in _imported_modules(path)):
            offenders.append(str(rel))
    assert offenders == []


def test_ops_never_import_the_wiring():
    for path in (ROOT / "daemon" / "ops").glob("*.py"):
        names = _imported_modules(path)
        assert "edgeorch.daemon.app" not in names and "edgeorch.daemon.Daemon" not in names, path.name


def test_each_group_receives_its_collaborators_not_the_daemon():
    for group in GROUPS:
        params = inspect.signature(group.__init__).parameters
        assert "daemon" not in params, group.__name__
        for p in list(params.values())[1:]:
            assert p.kind is inspect.Parameter.KEYWORD_ONLY, (group.__name__, p.name)
            assert "Daemon" not in str(p.annotation), (group.__name__, p.name)


def test_every_op_is_served_from_one_table_row():
    rows = [spec for group in GROUPS for spec in group.OPS]
    names = [spec.name for spec in rows]
    assert len(names) == len(set(names))
    assert set(names) == OPS_SERVED
    for group in GROUPS:
        for spec in group.OPS:
            method = getattr(group, spec.method)
            assert inspect.isasyncgenfunction(method) is spec.streaming, spec.name
            assert spec.streaming or inspect.iscoroutinefunction(method), spec.name
            assert spec.access in ("read", "act") and spec.help, spec.name


def test_the_wiring_builds_every_group():
    """Each group of ops is built in Daemon._op_groups, so none is left unregistered."""
    source = inspect.getsource(Daemon._op_groups)
    for group in GROUPS:
        assert f"{group.__name__}(" in source, group.__name__
