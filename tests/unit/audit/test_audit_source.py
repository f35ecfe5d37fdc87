"""Reading a log page by page: verification and export see one consistent view while records keep coming."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from edgeorch.audit import source as source_mod
from edgeorch.audit.keyfile import key_path
from edgeorch.audit.sealer import Sealer
from edgeorch.audit.source import StoreSource, export_source, verify_source
from edgeorch.store import Store


class GrowingSource(StoreSource):
    """A daemon's log that gets a new record (and a seal) after each page is read, as a live daemon's would."""

    def __init__(self, store: Store, sealer: Sealer, key_file: Path) -> None:
        super().__init__(store.audit, key_file)
        self.sealer = sealer
        self.pages = 0

    def records(self, **query):
        rows = super().records(**query)
        self.pages += 1
        self.audit.record(None, "meanwhile", f"page:{self.pages}")
        self.sealer.seal()
        return rows


@pytest.fixture
def log(tmp_path: Path):
    store = Store(tmp_path / "edgeorch.db")
    sealer = Sealer(store.audit, key_path(tmp_path), clock=lambda: 1_700_000_000.0)
    key0 = sealer.init(None)
    for i in range(10):
        store.audit.record("scheduler", "tick", f"n:{i}")
        if i % 4 == 3:
            sealer.seal()
    yield store, sealer, key0, key_path(tmp_path)
    store.close()


def test_verification_reads_in_pages_up_to_the_head_it_started_from(log, monkeypatch):
    store, sealer, key0, key_file = log
    monkeypatch.setattr(source_mod, "PAGE", 3)
    src = GrowingSource(store, sealer, key_file)
    report, state = verify_source(src, key0=key0)
    assert report.ok, report.problems
    assert report.head_seq == state["head"] == 11 and src.pages == 4  # 3 + 3 + 3 + 2
    assert store.audit.head()[0] == 15  # the records appended meanwhile are left for the next verification


def test_an_export_in_pages_holds_every_record_once(log, monkeypatch):
    store, _, _, key_file = log
    monkeypatch.setattr(source_mod, "PAGE", 4)
    out = io.StringIO()
    header = export_source(StoreSource(store.audit, key_file), out, exported_at="2024-01-01T00:00:00.000000Z")
    lines = [json.loads(x) for x in out.getvalue().splitlines()]
    seqs = [x["seq"] for x in lines if x["type"] == "record"]
    assert seqs == list(range(1, 12)) and header["records"] == 11
    assert [x["type"] for x in lines][:1] == ["header"] and sum(x["type"] == "seal" for x in lines) == header["seals"]
