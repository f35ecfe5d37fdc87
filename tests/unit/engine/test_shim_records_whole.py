"""The shim's records (``exit.json``, ``proc.json``) are written whole or not at all (real process, real files)."""

from __future__ import annotations

import json

from size_limit import write_under_a_size_limit


def test_a_short_write_never_renames_half_a_record_into_place(tmp_path):
    target = tmp_path / "exit.json"
    out = write_under_a_size_limit("from edgeorch.engine.executors.local.shim import write_json_atomically",
                                   f"write_json_atomically({str(target)!r}, {{'exit_code': 0, 'error': 'x' * 500}}, "
                                   "sync=False)", 100)
    if target.exists():
        json.loads(target.read_text())  # whole, or not there: never a truncated document
    assert out.startswith("refused")


def test_an_exit_record_that_is_not_an_object_is_read_as_none(tmp_path):
    """A damaged ``exit.json`` (garbage, a JSON list, a folder) is no exit record: the attempt is settled as its
    shim left it (lost when the shim is gone), never with an error that would stop the engine."""
    from edgeorch.engine.executors.local.executor import read_exit

    exit_file = tmp_path / "exit.json"
    for content in (b"\x00garbage", b"[1, 2]", b'{"exit_code": 0'):
        exit_file.write_bytes(content)
        assert read_exit(str(tmp_path)) is None, content
    exit_file.unlink()
    exit_file.mkdir()
    assert read_exit(str(tmp_path)) is None
    exit_file.rmdir()
    exit_file.write_text('{"exit_code": 3, "signal": null, "finished_at": 1.5, "log_truncated": true}')
    info = read_exit(str(tmp_path))
    assert info is not None and (info.exit_code, info.finished_at, info.log_truncated) == (3, 1.5, True)


def test_a_cleanup_started_without_waiting_is_reaped_when_it_ends():
    """A tester saw recovery's `podman rm` linger as the daemon's `[podman] <defunct>` child: started without
    waiting (the engine's loop goes on), it was reaped only by a later Popen."""
    import os
    import time

    from edgeorch.engine.executors.local.shim import run_cleanup
    from edgeorch.engine.procinfo import children_map, process_state

    before = set(children_map().get(os.getpid(), ()))
    run_cleanup(["sh", "-c", "exit 0"], wait=False)
    deadline = time.monotonic() + 10
    while True:
        mine = set(children_map().get(os.getpid(), ())) - before  # a zombie stays a child until reaped
        if not mine:
            break
        assert time.monotonic() < deadline, [(p, process_state(p)) for p in mine]
        time.sleep(0.02)
