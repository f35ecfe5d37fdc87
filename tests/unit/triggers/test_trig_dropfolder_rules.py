"""Drop-folder rules without real I/O: [[watch]] validation, names, settling, batching, reconcile."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest

from edgeorch.errors import ConfigError, PipelineError
from edgeorch.triggers.drop import (
    Batcher,
    InputRecord,
    SettleTracker,
    WatchSpec,
    check_watch,
    check_watch_set,
    check_watches,
    is_candidate,
    name_problem,
    reconcile,
)

# -- [[watch]] tables -----------------------------------------------------------


def test_full_watch_table():
    spec, errors = check_watch({"folder": "drop", "pipeline": "ingest", "patterns": ["*.csv", "*.parquet"],
                                "mode": "batch", "batch_size": 50, "batch_window": "30s", "settle": "2s",
                                "max_size": "1G", "param": "data", "env": "DATA_FILE",
                                "skip_duplicates": False}, "config.toml", "watch[0]", base=Path("/srv"))
    assert errors == []
    assert spec == WatchSpec(folder=Path("/srv/drop"), pipeline="ingest", patterns=("*.csv", "*.parquet"),
                             mode="batch", batch_size=50, batch_window=30.0, settle=2.0, max_size=1 << 30,
                             param="data", env="DATA_FILE", skip_duplicates=False)


def test_watch_defaults():
    spec, errors = check_watch({"folder": "/data/in", "pipeline": "p"}, "config.toml")
    assert errors == [] and spec is not None
    assert (spec.patterns, spec.mode, spec.settle, spec.max_size, spec.param, spec.env, spec.skip_duplicates) == (
        ("*",), "per_file", 1.0, None, "input", "EDGEORCH_INPUT", True)


@pytest.mark.parametrize("table, field, fragment", [
    ({"pipeline": "p"}, "watch[0].folder", "is required"),
    ({"folder": "/d"}, "watch[0].pipeline", "is required"),
    ({"folder": "/d", "pipeline": "p", "mode": "per-file"}, "watch[0].mode", "did you mean 'per_file'"),
    ({"folder": "/d", "pipeline": "p", "pattern": ["*.csv"]}, "watch[0].pattern", "did you mean 'patterns'"),
    ({"folder": "/d", "pipeline": "p", "patterns": "*.csv"}, "watch[0].patterns", "an array of strings"),
    ({"folder": "/d", "pipeline": "p", "patterns": []}, "watch[0].patterns", "must not be empty"),
    ({"folder": "/d", "pipeline": "p", "patterns": ["in/*.csv"]}, "watch[0].patterns", "file-name glob"),
    ({"folder": "/d", "pipeline": "p", "settle": "soon"}, "watch[0].settle", "not a valid duration"),
    ({"folder": "/d", "pipeline": "p", "max_size": "huge"}, "watch[0].max_size", "not a valid size"),
    ({"folder": "/d", "pipeline": "p", "batch_size": 5}, "watch[0].batch_size", "mode = \"batch\" only"),
    ({"folder": "/d", "pipeline": "p", "mode": "batch", "batch_size": 0}, "watch[0].batch_size", "out of range"),
    ({"folder": "/d", "pipeline": "p", "param": "in-file"}, "watch[0].param", "not a valid param name"),
    ({"folder": "/d", "pipeline": "p", "env": "1X"}, "watch[0].env", "environment variable"),
    ({"folder": "/d", "pipeline": "p", "skip_duplicates": "yes"}, "watch[0].skip_duplicates", "true or false"),
])
def test_bad_watch_tables_give_clear_errors(table, field, fragment):
    spec, errors = check_watch(table, "config.toml", "watch[0]")
    assert spec is None
    text = [str(e) for e in errors]
    assert any(t.startswith(f"config.toml: {field}: ") and fragment in t for t in text), text
    assert all(isinstance(e, ConfigError) for e in errors)


def test_watch_in_a_pipeline_file_defaults_to_that_pipeline():
    spec, errors = check_watch({"folder": "/d"}, "pipelines/etl.toml", "watch", pipeline="etl", error_cls=PipelineError)
    assert errors == [] and spec is not None and spec.pipeline == "etl"
    _, errors = check_watch({"folder": "/d", "pipeline": "other"}, "pipelines/etl.toml", "watch", pipeline="etl",
                            error_cls=PipelineError)
    assert len(errors) == 1 and isinstance(errors[0], PipelineError) and "another pipeline" in str(errors[0])


def test_check_watches_numbers_the_tables_and_collects_all():
    specs, errors = check_watches([{"folder": "/a", "pipeline": "p"}, {"folder": "/b"}, {"pipeline": "q"}],
                                  "config.toml")
    assert [s.folder for s in specs] == [Path("/a")]
    assert sorted(e.field for e in errors) == ["watch[1].pipeline", "watch[2].folder"]


def test_watch_set_cross_checks():
    a = WatchSpec(folder=Path("/srv/drop"), pipeline="p")
    errors = check_watch_set([a, replace(a, pipeline="q"), WatchSpec(folder=Path("/var/eo/inbox/x"), pipeline="p")],
                             inbox_dir=Path("/var/eo/inbox"), state_dir=Path("/var/eo"), pipelines={"p"})
    text = "\n".join(str(e) for e in errors)
    assert "unknown pipeline" in text and "'q'" in text
    assert "watched twice" in text
    assert "overlaps edgeorch's own folders" in text


def test_a_watch_says_why_its_pipeline_is_not_loaded_and_whether_its_param_can_take_the_path():
    """A config watch of a pipeline whose file has an error said "unknown pipeline ... expected one of (none)"; one
    whose pipeline has no such param started, and every dropped file went to quarantine ("not started")."""
    from types import SimpleNamespace

    from edgeorch.errors import PipelineError

    broken = PipelineError("unknown key", file="/p/ingest.toml", pipeline="ingest", field="tasks.b.depends_on")
    a = WatchSpec(folder=Path("/srv/a"), pipeline="ingest")
    b = WatchSpec(folder=Path("/srv/b"), pipeline="ingets")
    c = WatchSpec(folder=Path("/srv/c"), pipeline="plain")
    d = WatchSpec(folder=Path("/srv/d"), pipeline="counted", param="n")
    ok = WatchSpec(folder=Path("/srv/e"), pipeline="fine", param="batch")
    params = {"plain": {}, "counted": {"n": SimpleNamespace(type="int")}, "fine": {"batch": SimpleNamespace(type="path")},
              "ingest2": {}}
    errors = check_watch_set([a, b, c, d, ok], pipelines=set(params), file="config.toml", not_loaded={"ingest": broken}.get,
                             params=params)
    text = [e.render() for e in errors]
    assert len(text) == 4, text
    assert "names pipeline 'ingest', which is not loaded: its file /p/ingest.toml has an error " \
           "(tasks.b.depends_on: unknown key)" in text[0] and "next reload" in text[0]
    assert "unknown pipeline" in text[1] and "did you mean 'ingest2'?" in text[1]
    assert "names no param of pipeline 'plain'" in text[2] and "[params] input = { type = \"path\" }" in text[2]
    assert "must be a path or str param" in text[3] and "int" in text[3]
    assert all(e.file == "config.toml" for e in errors)


# -- names ----------------------------------------------------------------------


@pytest.mark.parametrize("name", [
    ".hidden.csv", ".data.csv.Gx81Qa", "data.csv.part", "data.csv.tmp", "data.csv~", "data.csv.crdownload",
    "DATA.CSV.PART", "report.csv.filepart", "x.partial", ".", "",
])
def test_hidden_and_temporary_names_never_trigger(name):
    assert not is_candidate(name, ["*"])


@pytest.mark.parametrize("name, patterns, expected", [
    ("data.csv", ["*"], True),
    ("data.csv", ["*.csv"], True),
    ("data.CSV", ["*.csv"], False),
    ("data.json", ["*.csv", "*.json"], True),
    ("sub/data.csv", ["*"], False),
])
def test_patterns_match_the_file_name(name, patterns, expected):
    assert is_candidate(name, patterns) is expected


@pytest.mark.parametrize("name, fragment", [
    ("a\nb.csv", "control characters"),
    ("tab\t.csv", "control characters"),
    ("nel\x85.csv", "control characters"),  # C1: str.splitlines ends a line there (a batch's list of paths)
    ("csi\x9b2J.csv", "control characters"),
    ("a\u2028..", "line or paragraph separator"),  # splitlines: "a" and "..", two paths of a batch's list
    ("p\u2029aragraph.csv", "line or paragraph separator"),
    ("-rf.csv", "starts with '-'"),
    ("x" * 256, "longer than 255 bytes"),
    ("bad\udcff.csv", "not valid UTF-8"),
])
def test_invalid_names(name, fragment):
    problem = name_problem(name)
    assert problem is not None and fragment in problem


def test_valid_names():
    assert name_problem("données 2024-01 (v2).csv") is None
    assert name_problem("report\u202efdp.csv") is None  # a bidi override is valid in a name: it is shown escaped


# -- settling ---------------------------------------------------------------------


class FakeFiles:
    def __init__(self) -> None:
        self.stats: dict[Path, tuple[int, int]] = {}

    def __call__(self, p: Path):
        return self.stats.get(p)


P = Path("/drop/a.csv")


def test_a_rename_is_ready_at_once():
    t = SettleTracker(1.0, FakeFiles())
    t.observe("moved_to", P, 10.0)
    assert t.next_deadline() == 10.0
    assert t.ready(10.0) == [P]
    assert t.ready(99.0) == [] and len(t) == 0


def test_a_file_being_written_is_never_ready_before_it_is_closed():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (100, 1)
    t.observe("created", P, 0.0)
    t.observe("modified", P, 0.5)
    assert t.next_deadline() is None
    assert t.ready(1000.0) == []


def test_closed_then_unchanged_for_settle_seconds_is_ready():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    t.observe("created", P, 0.0)
    files.stats[P] = (500, 7)
    t.observe("closed", P, 2.0)
    assert t.next_deadline() == 3.0
    assert t.ready(2.9) == []
    assert t.ready(3.0) == [P]


def test_a_change_during_settle_restarts_the_wait():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (500, 7)
    t.observe("closed", P, 2.0)
    files.stats[P] = (800, 9)  # appended by another writer without an event seen yet
    assert t.ready(3.0) == []
    assert t.next_deadline() == 4.0
    assert t.ready(4.0) == [P]


def test_reopened_for_writing_goes_back_to_writing():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (500, 7)
    t.observe("closed", P, 2.0)
    t.observe("modified", P, 2.5)
    assert t.ready(10.0) == []
    t.observe("closed", P, 11.0)
    assert t.ready(12.0) == [P]


def test_deleted_or_moved_away_is_forgotten():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (1, 1)
    t.observe("closed", P, 0.0)
    t.observe("deleted", P, 0.1)
    assert t.ready(5.0) == [] and t.next_deadline() is None


def test_vanished_during_settle_is_dropped():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (1, 1)
    t.observe("closed", P, 0.0)
    del files.stats[P]
    assert t.ready(5.0) == [] and len(t) == 0


def test_scanned_files_settle_but_do_not_override_events():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    files.stats[P] = (1, 1)
    t.observe("created", P, 0.0)
    t.observe("scanned", P, 0.1)  # a rescan must not make a file being written look closed
    assert t.ready(5.0) == []
    q = Path("/drop/b.csv")
    files.stats[q] = (3, 3)
    t.observe("scanned", q, 0.0)
    assert t.ready(1.0) == [q]


def test_batcher_closes_on_size_or_window():
    b = Batcher(3, 10.0)
    assert b.add("a", 0.0) is None and b.add("b", 1.0) is None
    assert b.next_deadline() == 10.0
    assert b.add("c", 2.0) == ["a", "b", "c"]
    assert b.next_deadline() is None
    b.add("d", 20.0)
    assert b.due(29.9) is None
    assert b.due(30.0) == ["d"]


# -- reconcile: every crash point of the claim protocol ---------------------------

DROP = Path("/drop")
INBOX = Path("/inbox")


class World:
    """Store + disk for the claim protocol, with a crash after any step.

    Protocol (docs/triggers.md): 1 record intent -> 2 rename -> 3 record claimed
    (sha) -> 4 engine creates the run tagged input:<id> -> 5 record started.
    Steps 4 and 5 are one transaction in the real wiring; here they are split
    to cover the worst case.
    """

    def __init__(self) -> None:
        self.records: dict[int, InputRecord] = {}
        self.drop: dict[Path, tuple[int, int]] = {}
        self.inbox: set[Path] = set()
        self.runs: dict[int, str] = {}  # input id -> run id (runs tagged with the input)
        self.run_count: dict[int, int] = {}
        self.next_id = 1
        self.next_ino = 100

    def drop_file(self, name: str) -> Path:
        p = DROP / name
        self.next_ino += 1
        self.drop[p] = (1, self.next_ino)
        return p

    def claim(self, path: Path, crash_after: int | None = None) -> None:
        rid = self.next_id
        self.next_id += 1
        dev, ino = self.drop[path]
        dest = INBOX / f"c{rid}" / path.name
        steps = [
            lambda: self.records.__setitem__(rid, InputRecord(rid, "p", "claiming", path, dest, dev, ino)),
            lambda: (self.drop.pop(path), self.inbox.add(dest)),
            lambda: self.records.__setitem__(rid, replace(self.records[rid], state="claimed", sha256="h")),
            lambda: self._create_run(rid),
            lambda: self.records.__setitem__(rid, replace(self.records[rid], state="started",
                                                          run_id=self.runs[rid])),
        ]
        for i, step in enumerate(steps, 1):
            step()
            if crash_after == i:
                return

    def _create_run(self, rid: int) -> None:
        self.runs[rid] = f"run-{rid}"
        self.run_count[rid] = self.run_count.get(rid, 0) + 1

    def recover(self) -> list[str]:
        """Run reconcile and apply its actions as docs/triggers.md tells the daemon to."""
        live = [r for r in self.records.values() if r.state in ("claiming", "claimed", "started")]
        actions = reconcile(live, dict(self.drop), set(self.inbox), dict(self.runs))
        for a in actions:
            rec = a.record
            if a.kind == "ingest":
                assert a.path is not None
                self.claim(a.path)
            elif a.kind == "rename":
                assert rec is not None
                self.drop.pop(rec.source)
                self.inbox.add(rec.inbox_path)
                self.records[rec.id] = replace(rec, state="claimed", sha256="h")
                self._create_run(rec.id)
                self.records[rec.id] = replace(self.records[rec.id], state="started", run_id=self.runs[rec.id])
            elif a.kind in ("finish", "submit"):
                assert rec is not None
                self._create_run(rec.id)
                self.records[rec.id] = replace(rec, state="started", sha256="h", run_id=self.runs[rec.id])
            elif a.kind == "link_run":
                assert rec is not None
                self.records[rec.id] = replace(rec, state="started", run_id=a.run_id)
            elif a.kind == "forget":
                assert rec is not None
                self.records[rec.id] = replace(rec, state="vanished")
            elif a.kind == "lost":
                assert rec is not None
                self.records[rec.id] = replace(rec, state="lost")
            elif a.kind == "adopt":
                rid = self.next_id
                self.next_id += 1
                self.records[rid] = InputRecord(rid, "p", "claimed", a.path, a.path, sha256="h")
                self._create_run(rid)
                self.records[rid] = replace(self.records[rid], state="started", run_id=self.runs[rid])
        return [a.kind for a in actions]


@pytest.mark.parametrize("crash_after", [None, 0, 1, 2, 3, 4, 5])
def test_a_crash_at_any_step_neither_loses_nor_doubles(crash_after):
    w = World()
    p = w.drop_file("a.csv")
    if crash_after != 0:
        w.claim(p, crash_after)
    w.recover()
    assert w.recover() == []  # a second recovery finds nothing left to do
    assert w.drop == {}
    assert len(w.inbox) == 1
    assert sorted(w.run_count.values()) == [1]
    assert [r.state for r in w.records.values()] == ["started"]


EXPECTED_ACTION = {None: [], 0: ["ingest"], 1: ["rename"], 2: ["finish"], 3: ["submit"], 4: ["link_run"],
                   5: []}


@pytest.mark.parametrize("crash_after, kinds", EXPECTED_ACTION.items())
def test_reconcile_names_the_step_to_redo(crash_after, kinds):
    w = World()
    p = w.drop_file("a.csv")
    if crash_after != 0:
        w.claim(p, crash_after)
    assert w.recover() == kinds


@pytest.mark.parametrize("crashes", list(itertools.product([None, 1, 2, 3, 4], repeat=3)))
def test_several_files_crashing_at_different_steps(crashes):
    w = World()
    paths = [w.drop_file(f"f{i}.csv") for i in range(3)]
    for p, c in zip(paths, crashes):
        w.claim(p, c)
    w.drop_file("late.csv")  # arrived while the daemon was down
    w.recover()
    assert w.drop == {} and len(w.inbox) == 4
    assert sorted(w.run_count.values()) == [1, 1, 1, 1]


def test_a_new_file_with_the_same_name_after_an_interrupted_claim_is_a_new_input():
    w = World()
    p = w.drop_file("a.csv")
    w.claim(p, crash_after=2)  # renamed into the inbox; the name is free again
    w.drop_file("a.csv")  # a new file with the same name (new inode)
    assert w.recover() == ["finish", "ingest"]
    assert len(w.inbox) == 2 and sorted(w.run_count.values()) == [1, 1]


def test_a_replaced_source_is_not_mistaken_for_the_intended_file():
    w = World()
    p = w.drop_file("a.csv")
    w.claim(p, crash_after=1)  # intent recorded, not renamed
    w.drop.pop(p)
    w.drop_file("a.csv")  # user replaced it: other inode
    assert w.recover() == ["forget", "ingest"]
    assert [r.state for r in w.records.values()] == ["vanished", "started"]


def test_intended_file_deleted_by_the_user_is_forgotten_without_a_run():
    w = World()
    p = w.drop_file("a.csv")
    w.claim(p, crash_after=1)
    w.drop.pop(p)
    assert w.recover() == ["forget"]
    assert w.run_count == {}


def test_claimed_file_missing_from_the_inbox_is_reported_lost():
    w = World()
    p = w.drop_file("a.csv")
    w.claim(p, crash_after=3)
    w.inbox.clear()
    assert w.recover() == ["lost"]
    assert w.run_count == {}


def test_an_unrecorded_inbox_file_is_adopted_once():
    w = World()
    w.inbox.add(INBOX / "c99" / "orphan.csv")
    assert w.recover() == ["adopt"]
    assert w.recover() == []
    assert sorted(w.run_count.values()) == [1]


def test_final_records_are_ignored():
    rec = InputRecord(1, "p", "started", DROP / "a.csv", INBOX / "c1" / "a.csv", run_id="r1")
    assert reconcile([rec], {}, {INBOX / "c1" / "a.csv"}, {1: "r1"}) == []


@pytest.mark.parametrize("state", ["done", "duplicate", "quarantined", "refused", "requeued", "vanished", "lost"])
def test_reconcile_never_adopts_the_inbox_files_of_inputs_in_a_final_state(state):
    """Issue 9 item 2: a processed input's file stays in the inbox; a restart must not take it for a stray."""
    kept = INBOX / "in-1" / "a.csv"
    moved = INBOX / "in-2" / "b.csv"  # its record names another path (e.g. the quarantined copy)
    recs = [InputRecord(1, "p", state, DROP / "a.csv", kept, run_id="r1"),
            InputRecord(2, "p", state, DROP / "b.csv", Path("/state/quarantine/b.csv"), run_id="r2")]
    assert reconcile(recs, {}, {kept, moved}, {1: "r1", 2: "r2"}) == []
    stray = INBOX / "in-3" / "c.csv"
    assert [a.kind for a in reconcile(recs, {}, {kept, stray}, {})] == ["adopt"]


def test_a_name_that_appears_fully_formed_is_ready_at_once():
    """Symlinks, FIFOs and hard links get IN_CREATE but never a close: they go to inspect (and refusal)."""
    t = SettleTracker(1.0, FakeFiles(), complete_at_once=lambda p: True)
    t.observe("created", P, 5.0)
    assert t.ready(5.0) == [P]


def test_a_file_stuck_in_writing_is_rescued_by_a_rescan_after_the_timeout():
    """Its close event was lost (inotify overflow): a rescan long after the last event settles it."""
    files = FakeFiles()
    t = SettleTracker(1.0, files, writing_timeout=300.0)
    files.stats[P] = (10, 1)
    t.observe("created", P, 0.0)
    t.observe("scanned", P, 299.0)
    assert t.ready(400.0) == []
    t.observe("scanned", P, 400.0)
    assert t.ready(401.0) == [P]


def test_many_pending_files_cost_little():
    files = FakeFiles()
    t = SettleTracker(1.0, files)
    paths = [Path(f"/drop/f{i}") for i in range(20_000)]
    for i, p in enumerate(paths):
        files.stats[p] = (1, 1)
        t.observe("closed", p, i * 1e-5)
        assert t.next_deadline() == 1.0
    assert len(t.ready(2.0)) == 20_000


# -- a pipeline's trigger keys together -------------------------------------------


def test_pipeline_triggers_schedule_and_watch_tables():
    from edgeorch.triggers.checks import check_pipeline_triggers

    spec, watches, errors = check_pipeline_triggers(
        {"name": "etl", "every": "1h", "watch": {"folder": "in", "patterns": ["*.csv"]}},
        "/srv/pipelines/etl.toml")
    assert errors == [] and spec is not None and spec.every == 3600
    assert watches == [WatchSpec(folder=Path("/srv/pipelines/in"), pipeline="etl", patterns=("*.csv",))]
    _, watches, errors = check_pipeline_triggers(
        {"name": "etl", "schedule": "0 2 * *", "watch": [{"folder": "/a"}, {"folder": "/b", "mode": "batches"}]},
        "etl.toml")
    assert [w.folder for w in watches] == [Path("/a")]
    assert sorted(e.field for e in errors) == ["schedule", "watch[1].mode"]
    assert all(isinstance(e, PipelineError) and e.file == "etl.toml" for e in errors)
    _, _, errors = check_pipeline_triggers({"watch": "/in"}, "etl.toml")
    assert [e.field for e in errors] == ["watch"]
