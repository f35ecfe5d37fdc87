"""contrib/'s Grafana dashboard and Prometheus alert rules name only metrics the daemon exports.

The names come from a real daemon's ``metrics`` op (every family, with or
without samples), so renaming a metric without updating contrib/ fails here.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

CONTRIB = Path(__file__).resolve().parents[3] / "contrib"
METRIC = re.compile(r"\bedgeorch_[a-z0-9_]+")


def _exported(daemon) -> set[str]:
    names = set()
    for fam in daemon.call("metrics", {"format": "json"})["families"]:
        names.add(fam["name"])
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(fam["type"], [])
        names.update(fam["name"] + s for s in suffixes)
    return names


def _rules() -> list[dict]:
    doc = yaml.safe_load((CONTRIB / "prometheus" / "edgeorch-alerts.yml").read_text())
    return [r for g in doc["groups"] for r in g["rules"]]


def _dashboard() -> dict:
    return json.loads((CONTRIB / "grafana" / "edgeorch-dashboard.json").read_text())


def test_alert_rules_and_dashboard_use_only_exported_metrics(workspace, daemon):
    daemon.start()
    exported = _exported(daemon)
    used = {name: "alert " + r["alert"] for r in _rules() for name in METRIC.findall(r["expr"])}
    dash = _dashboard()
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in dash["templating"]["list"] if "definition" in v]
    used.update({name: "dashboard" for e in exprs for name in METRIC.findall(e)})
    unknown = {name: where for name, where in used.items() if name not in exported}
    assert not unknown, f"not exported by the daemon: {unknown}"
    assert len(used) > 25  # the files really cover the metrics


def test_each_alert_rule_is_complete():
    rules = _rules()
    assert len({r["alert"] for r in rules}) == len(rules)
    for r in rules:
        assert r["expr"].strip() and r["labels"]["severity"] in ("critical", "warning", "info"), r["alert"]
        assert r["annotations"]["summary"], r["alert"]


def test_the_dashboard_is_importable_in_shape():
    dash = _dashboard()
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for p in dash["panels"]:
        pos = p["gridPos"]
        assert pos["x"] + pos["w"] <= 24, p["title"]
        for t in p.get("targets", []):
            assert t["expr"] and t["refId"] and t["datasource"]["uid"] == "${datasource}", p["title"]
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "instance", "pipeline"}
