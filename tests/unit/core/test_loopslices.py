"""A claim group's file-system steps run on the loop in slices, not in a worker thread (issue 11, twenty-ninth part).

Before: each group's renames, checks, hashes and folders ran in a worker thread. Each of its thousands of short
system calls gave the GIL back and waited up to 5 ms to take it again while the loop was busy, which is always
during a burst. The fix does small files' steps on the loop, yielding to it between slices, and keeps big files,
whose hash is one long read, in a thread.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from edgeorch.loopslices import sliced
from edgeorch.triggers.drop import service
from edgeorch.triggers.drop.claim import ClaimedFile, ClaimInterrupted, make_claim_folder, prepare_claim


def test_sliced_yields_to_the_loop_between_slices_and_not_within_one() -> None:
    """With no time per slice, the other task runs between every two items; with a long slice, never."""

    async def interleaving(slice_s: float) -> list[str]:
        seen: list[str] = []

        async def other() -> None:
            for _ in range(3):
                seen.append("other")
                await asyncio.sleep(0)

        task = asyncio.get_running_loop().create_task(other())
        async for i in sliced(range(3), slice_s=slice_s):
            seen.append(f"item{i}")
        await task
        return seen

    fine = asyncio.run(interleaving(0.0))
    assert fine[:5] == ["item0", "other", "item1", "other", "item2"], fine
    coarse = asyncio.run(interleaving(60.0))
    assert coarse[:3] == ["item0", "item1", "item2"], coarse


def test_sliced_lets_the_body_break_and_gives_every_item_in_order() -> None:
    async def main() -> list[int]:
        out = []
        async for i in sliced(range(10), slice_s=0.0):
            if i == 4:
                break
            out.append(i)
        return out

    assert asyncio.run(main()) == [0, 1, 2, 3]


def _intents(tmp_path: Path, sizes: list[int]) -> tuple[list, Path]:
    drop, inbox, runs = tmp_path / "drop", tmp_path / "inbox", tmp_path / "runs"
    for d in (drop, inbox, runs):
        d.mkdir()
    intents = []
    for i, size in enumerate(sizes):
        f = drop / f"f{i}.bin"
        f.write_bytes(b"x" * size)
        folder = make_claim_folder(inbox, i + 1)
        intent = prepare_claim(f, drop, inbox, folder.name)
        assert not isinstance(intent, service.Refuse)
        intents.append(intent)
    return intents, runs


def test_small_files_are_claimed_on_the_loop_thread_and_big_ones_in_a_worker(tmp_path, monkeypatch) -> None:
    sizes = [10, service.LOOP_CLAIM_BYTES, 20]
    intents, runs = _intents(tmp_path, sizes)
    threads: dict[str, str] = {}
    real = service.perform_claim

    def spy(intent, **kw):  # type: ignore[no-untyped-def]
        threads[intent.source.name] = threading.current_thread().name
        return real(intent, **kw)

    monkeypatch.setattr(service, "perform_claim", spy)

    async def main():  # type: ignore[no-untyped-def]
        loop_thread = threading.current_thread().name
        results, made = await service._claim_all(intents, runs, [7, 8], threading.Event())
        return loop_thread, results, made

    loop_thread, results, made = asyncio.run(main())
    assert threads["f0.bin"] == threads["f2.bin"] == loop_thread
    assert threads["f1.bin"] != loop_thread
    assert [r.size for r in results if isinstance(r, ClaimedFile)] == sizes  # in the order of the intents
    assert all(r.path.parent.name == f"in-{i + 1}" for i, r in enumerate(results))
    assert made == {7: runs / "7", 8: runs / "8"} and (runs / "7").is_dir()


def test_a_stop_during_a_group_leaves_the_rest_claiming(tmp_path) -> None:
    """The cancel is looked at before each file: those not reached are interrupted, not half-claimed."""
    intents, runs = _intents(tmp_path, [1, 2, 3])
    cancel = threading.Event()
    cancel.set()
    results, _ = asyncio.run(service._claim_all(intents, runs, [], cancel))
    assert all(isinstance(r, ClaimInterrupted) for r in results)
    assert all(i.source.exists() for i in intents)  # nothing moved


def _spy_claims(monkeypatch) -> list[tuple[str, str, bool]]:
    """(file, thread, claimed) for each call of perform_claim from the group (claimed: it returned a file)."""
    calls: list[tuple[str, str, bool]] = []
    real = service.perform_claim

    def spy(intent, **kw):  # type: ignore[no-untyped-def]
        try:
            res = real(intent, **kw)
        except Exception:
            calls.append((intent.source.name, threading.current_thread().name, False))
            raise
        calls.append((intent.source.name, threading.current_thread().name, True))
        return res

    monkeypatch.setattr(service, "perform_claim", spy)
    return calls


def test_another_users_file_is_copied_in_a_worker_not_on_the_loop(tmp_path, monkeypatch) -> None:
    """Found in review: another user's file is copied and the copy fsynced (owncopy); on the loop, a burst of them
    held it for a fsync each."""
    import os

    import pytest

    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    intents, runs = _intents(tmp_path, [10, 20])
    os.chown(intents[1].source, 65534, 65534)
    calls = _spy_claims(monkeypatch)

    async def main():  # type: ignore[no-untyped-def]
        return threading.current_thread().name, await service._claim_all(intents, runs, [], threading.Event())

    loop_thread, (results, _) = asyncio.run(main())
    assert all(isinstance(r, ClaimedFile) for r in results), results
    claimed = {name: thread for name, thread, ok in calls if ok}
    assert claimed["f0.bin"] == loop_thread and claimed["f1.bin"] != loop_thread
    assert os.stat(results[1].path).st_uid == os.geteuid()  # the daemon's copy


def test_a_file_grown_after_its_inspection_is_hashed_in_a_worker(tmp_path, monkeypatch) -> None:
    """Found in review: the loop's share was chosen by the inspected size; a dropper who appended gigabytes after
    the look had them hashed on the loop. The size after the rename decides."""
    monkeypatch.setattr(service, "LOOP_CLAIM_BYTES", 100)
    intents, runs = _intents(tmp_path, [10])
    with open(intents[0].source, "ab") as f:
        f.write(b"y" * 500)
    calls = _spy_claims(monkeypatch)

    async def main():  # type: ignore[no-untyped-def]
        return threading.current_thread().name, await service._claim_all(intents, runs, [], threading.Event())

    loop_thread, (results, _) = asyncio.run(main())
    (result,) = results
    assert isinstance(result, ClaimedFile) and result.size == 510
    assert [(thread == loop_thread, ok) for _, thread, ok in calls] == [(True, False), (False, True)]
