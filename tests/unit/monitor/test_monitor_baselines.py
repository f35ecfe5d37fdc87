"""Baselines: versions in a real state file, references a drift task may name, and a drift task comparing the
shipped drifted batch with a stored baseline and with a model's training data (in process, no daemon)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from edgeorch.errors import DataError, NotFoundError, UsageError
from edgeorch.kernels.kinds import run_task
from edgeorch.monitor import baselines
from edgeorch.store import Store

DATA = Path(__file__).resolve().parents[3] / "examples" / "data"


@pytest.fixture
def store(tmp_path: Path):
    s = Store(tmp_path / "state.db")
    yield s
    s.close()


def test_versions_are_numbered_per_name_recorded_and_audited(store) -> None:
    for n in (1, 2):
        row = store.baselines.add("houses", profile='{"x": %d}' % n, sha256=f"h{n}", source={"path": "/d.csv"},
                                  columns=["area"], rows=10 * n, actor="alice (uid 1000)")
        assert row["version"] == n and "profile" not in row
    assert store.baselines.get("houses")["version"] == 2
    assert store.baselines.get("houses", 1, profile=True)["profile"] == '{"x": 1}'
    assert [b["name"] for b in store.baselines.listing()] == ["houses"]
    assert store.baselines.listing()[0]["versions"] == 2
    with pytest.raises(NotFoundError, match="has no version 7.*from 1 to 2"):
        store.baselines.get("houses", 7)
    with pytest.raises(NotFoundError, match="no baseline named 'flats'.*one of houses"):
        store.baselines.versions("flats")
    assert [r["action"] for r in store.audit.records(action="baseline_set")] == ["baseline_set"] * 2


@pytest.mark.parametrize("text, parsed", [
    ("baseline:houses", ("baseline", "houses", None)),
    ("baseline:houses@3", ("baseline", "houses", "3")),
    ("model:house_prices", ("model", "house_prices", None)),
    ("model:house_prices@canary", ("model", "house_prices", "canary")),
    ("../data/houses.csv", None),
])
def test_references_are_recognised(text: str, parsed) -> None:
    assert baselines.parse_reference(text) == parsed


@pytest.mark.parametrize("text", ["baseline:", "baseline:houses@", "baseline:houses@two", "model:a b"])
def test_a_malformed_reference_names_itself(text: str) -> None:
    with pytest.raises(DataError) as exc:
        baselines.parse_reference(text)
    assert exc.value.field == "reference" and exc.value.value == text and "baseline:NAME" in exc.value.expected


def test_a_pipeline_with_a_malformed_reference_is_invalid(tmp_path: Path) -> None:
    from edgeorch.pipelines import validate_path

    (tmp_path / "p.toml").write_text('name = "p"\n[tasks.d]\nkind = "drift"\n[tasks.d.options]\n'
                                     'reference = "baseline:houses@latest"\ncurrent = "b.csv"\n')
    report = validate_path(tmp_path)
    assert not report.ok
    assert any(e.field and e.field.endswith("reference") and e.value == "baseline:houses@latest"
               for e in report.errors), [e.render() for e in report.errors]


def test_bad_names_are_usage_errors() -> None:
    with pytest.raises(UsageError, match="not a valid baseline name"):
        baselines.check_name("my baseline")


def test_a_drift_task_compares_with_a_stored_baseline(store, monkeypatch) -> None:
    snap = baselines.snapshot_file(DATA / "houses.csv")
    assert snap.rows == 2000 and snap.columns == ("area", "rooms", "age", "distance_km", "region", "price")
    assert snap.source["file_sha256"] == hashlib.sha256((DATA / "houses.csv").read_bytes()).hexdigest()
    store.baselines.add("houses", profile=snap.profile, sha256=snap.sha256, source=snap.source,
                        columns=snap.columns, rows=snap.rows)
    monkeypatch.setenv(baselines.STATE_FILE_ENV, str(store.path))
    doc = run_task("drift", {"reference": "baseline:houses", "current": str(DATA / "houses_drifted.csv"),
                             "on_violation": "warn"})
    assert doc["verdict"] == "violation" and doc["summary"]["share"] >= 0.5
    assert "(reference: baseline:houses)" in doc["message"]
    with pytest.raises(NotFoundError, match="no version 2"):
        run_task("drift", {"reference": "baseline:houses@2", "current": str(DATA / "houses_new.csv")})
    with pytest.raises(DataError, match="per-column overrides"):
        run_task("drift", {"reference": "baseline:houses", "current": str(DATA / "houses_new.csv"),
                           "methods": {"area": "ks"}})


def test_a_model_reference_is_the_champions_training_data_checked_by_hash(store, tmp_path, monkeypatch) -> None:
    data = tmp_path / "train.csv"
    shutil.copy(DATA / "houses.csv", data)
    model = tmp_path / "m.bin"
    model.write_text("m")
    digest = hashlib.sha256(data.read_bytes()).hexdigest()
    store.models.register("house", artifact={"kind": "file", "path": str(model), "sha256": "0" * 64, "size": 1},
                          metrics={"rmse": 30.0},
                          source={"inputs": [{"kind": "file", "path": str(data), "sha256": digest}]})
    monkeypatch.setenv(baselines.STATE_FILE_ENV, str(store.path))
    with pytest.raises(NotFoundError, match="no version with alias champion"):
        baselines.resolve_reference("model:house")
    store.models.move_alias("house", "champion", 1, action="promote", actor="t", reason="t")
    ref = baselines.resolve_reference("model:house")
    assert ref.path == str(data) and "version 1" in ref.describe
    doc = run_task("drift", {"reference": "model:house", "current": str(DATA / "houses_drifted.csv"),
                             "on_violation": "warn"})
    assert doc["verdict"] == "violation"
    data.write_text("area\n1\n")  # the training data changed since: refused, naming both hashes
    with pytest.raises(DataError, match="changed since it was trained"):
        baselines.resolve_reference("model:house")
    with pytest.raises(NotFoundError, match="no model named 'flat'"):
        baselines.resolve_reference("model:flat")
