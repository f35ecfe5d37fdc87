"""The watcher delivers a burst in batches: one loop wake-up and one hand-over pass per batch.

Real inotify (a real folder, real renames), real threads; synchronised by events, never by sleeps.
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from pathlib import Path

import pytest
from trig_harness import DropHarness

from edgeorch.triggers import watcher as watcher_mod
from edgeorch.triggers.watcher import FolderWatcher, WatchEvent

pytestmark = pytest.mark.timeout(120)


def test_a_burst_of_renames_is_delivered_in_order_in_fewer_batches_than_events(tmp_path: Path) -> None:
    drop, stage = tmp_path / "drop", tmp_path / "stage"
    drop.mkdir()
    stage.mkdir()
    n = 300
    for i in range(n):
        (stage / f"f{i:04d}").write_text(str(i))

    async def main() -> tuple[list[WatchEvent], int]:
        loop = asyncio.get_running_loop()
        seen: list[WatchEvent] = []
        flushes = 0
        all_in = asyncio.Event()

        def post(ev: WatchEvent) -> None:
            seen.append(ev)
            if sum(e.kind == "moved_to" for e in seen) == n:
                all_in.set()

        def flushed() -> None:
            nonlocal flushes
            flushes += 1

        w = FolderWatcher(loop, post, flushed=flushed)
        queued = threading.Event()
        send, sent = w._send, []

        def counting_send(kind: str, path: str | None) -> None:  # on the observer thread
            send(kind, path)  # type: ignore[arg-type]
            sent.append(kind)
            if len(sent) == n:
                queued.set()

        w._send = counting_send  # type: ignore[method-assign]
        w.add(drop)
        w.start()
        try:
            for i in range(n):
                os.rename(stage / f"f{i:04d}", drop / f"f{i:04d}")
            # The loop is kept busy (blocked) until inotify's events are all queued: they wait together.
            assert queued.wait(60)
            await asyncio.wait_for(all_in.wait(), 60)
        finally:
            w.stop()
        return seen, flushes

    seen, flushes = asyncio.run(main())
    moved = [e.path.name for e in seen if e.kind == "moved_to" and e.path is not None]
    assert moved == [f"f{i:04d}" for i in range(n)]  # every event, in inotify's order
    assert flushes == 1  # one wake-up and one hand-over pass for the whole burst


def test_a_failing_event_handler_drops_nothing_else_of_its_batch(tmp_path: Path,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> list[str]:
        loop = asyncio.get_running_loop()
        got: list[str] = []
        done = asyncio.Event()

        def post(ev: WatchEvent) -> None:
            assert ev.path is not None
            if ev.path.name == "bad":
                raise RuntimeError("handler bug")
            got.append(ev.path.name)

        w = FolderWatcher(loop, post, flushed=done.set)
        w.folders.add(tmp_path)
        # Queued from the observer's side, as inotify would: one batch of three.
        t = threading.Thread(target=lambda: [w._send("moved_to", str(tmp_path / name)) for name in ("a", "bad", "b")])
        t.start()
        t.join()
        await asyncio.wait_for(done.wait(), 10)
        return got

    with caplog.at_level(logging.ERROR, logger="edgeorch.triggers.watcher"):
        assert asyncio.run(main()) == ["a", "b"]
    assert "handler bug" in caplog.text


def test_a_long_queue_is_delivered_over_several_loop_callbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watcher_mod, "BATCH_MAX", 10)

    async def main() -> tuple[int, int, list[str]]:
        loop = asyncio.get_running_loop()
        got: list[str] = []
        batches: list[int] = []
        done = asyncio.Event()
        between = 0

        def post(ev: WatchEvent) -> None:
            assert ev.path is not None
            got.append(ev.path.name)

        def flushed() -> None:
            batches.append(len(got))
            if len(got) == 25:
                done.set()

        def other_work() -> None:  # something else the loop had ready: it runs between two batches
            nonlocal between
            between = len(got)

        w = FolderWatcher(loop, post, flushed=flushed)
        w.folders.add(tmp_path)
        t = threading.Thread(target=lambda: [w._send("moved_to", str(tmp_path / f"{i:02d}")) for i in range(25)])
        t.start()
        t.join()
        loop.call_soon(other_work)
        await asyncio.wait_for(done.wait(), 10)
        return len(batches), between, got

    n_batches, between, got = asyncio.run(main())
    assert got == [f"{i:02d}" for i in range(25)]
    assert n_batches == 3
    assert 0 < between < 25  # the loop ran other work between two batches


def test_a_claimed_file_is_forgotten_and_a_new_file_of_that_name_is_handed_over(tmp_path: Path) -> None:
    drop, inbox, stage = tmp_path / "drop", tmp_path / "inbox", tmp_path / "stage"
    drop.mkdir()
    stage.mkdir()

    async def main() -> None:
        with DropHarness(asyncio.get_running_loop(), drop, inbox) as h:
            (stage / "x.csv").write_text("one")
            os.rename(stage / "x.csv", drop / "x.csv")
            await h.wait_for(lambda: h.claimed["x.csv"] == 1)
            # The same name again, with other content: a new file, claimed again.
            (stage / "x.csv").write_text("two")
            os.rename(stage / "x.csv", drop / "x.csv")
            await h.wait_for(lambda: h.claimed["x.csv"] == 2)
            # A rescan forgets what left the folder and hands nothing over twice.
            h.arrivals.rescan()
            assert h.arrivals._handed == {}
            assert h.claimed["x.csv"] == 2

    asyncio.run(main())


def test_moves_are_delivered_unpaired_in_inotifys_order_and_the_pairing_is_off_on_every_folder(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Watchdog pairs a move in with its move out by scanning its whole queue twice (quadratic in a burst,
    where the claims' moves out queue behind the arrivals). The watcher turns the pairing off on every
    folder's emitter, one added after the start included; a move is then its move out (``deleted``)
    and its move in (``moved_to``), in inotify's order, as the pair was before."""
    # watchdog's internals, imported here: a watchdog without them fails this test only
    from watchdog.observers.inotify_c import InotifyConstants, InotifyEvent
    from watchdog.observers.inotify_move_event_grouper import PathedInotifyEvent

    a, b, outside = tmp_path / "a", tmp_path / "b", tmp_path / "outside"
    for d in (a, b, outside):
        d.mkdir()
    (outside / "in.csv").write_text("1")
    (a / "x.tmp").write_text("2")
    (a / "across.csv").write_text("3")
    (a / "out.csv").write_text("4")
    expected = [("deleted", a / "x.tmp"), ("moved_to", a / "x.csv"), ("moved_to", a / "in.csv"),
                ("deleted", a / "out.csv"), ("deleted", a / "across.csv"), ("moved_to", b / "across.csv")]

    async def main() -> list[tuple[str, Path]]:
        loop = asyncio.get_running_loop()
        seen: list[tuple[str, Path]] = []
        done = asyncio.Event()

        def post(ev: WatchEvent) -> None:
            if ev.kind in ("deleted", "moved_to") and ev.path is not None:
                seen.append((ev.kind, ev.path))
            if len(seen) == len(expected):
                done.set()

        w = FolderWatcher(loop, post)
        w.add(a)
        w.start()
        w.add(b)  # after the start: its emitter is tuned as it is scheduled
        try:
            for emitter in w.observer.emitters:  # a move out queued: no move in looks for it
                grouper = emitter._inotify._move_event_grouper  # type: ignore[attr-defined]
                assert grouper._queue.delay == 0.0
                gone = InotifyEvent(-1, InotifyConstants.IN_MOVED_FROM, 7, b"gone.csv")
                grouper.put_event(PathedInotifyEvent(gone, os.fsencode(outside / "gone.csv")))
                assert grouper.get_queued_moved_from_event(7) is None
                moved_in = PathedInotifyEvent(InotifyEvent(-1, InotifyConstants.IN_MOVED_TO, 7, b"gone.csv"), b"")
                assert grouper._group_moved_to_event(moved_in) is moved_in
            os.rename(a / "x.tmp", a / "x.csv")  # within one folder
            os.rename(outside / "in.csv", a / "in.csv")  # in from an unwatched folder
            os.rename(a / "out.csv", outside / "out.csv")  # out to an unwatched folder
            os.rename(a / "across.csv", b / "across.csv")  # from one watched folder to another
            await asyncio.wait_for(done.wait(), 30)
        finally:
            w.stop()
        return seen

    with caplog.at_level(logging.WARNING, logger="edgeorch.triggers.watcher"):
        seen = asyncio.run(main())
    assert sorted(seen, key=expected.index) == expected
    # Each folder's own events keep inotify's order (two folders' emitters are two threads).
    for folder in (a, b):
        assert [e for e in seen if e[1].parent == folder] == [e for e in expected if e[1].parent == folder]
    assert not [r for r in caplog.records if "move pairing" in r.getMessage()]
