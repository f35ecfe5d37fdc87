"""The shim's records (``exit.json``, ``proc.json``) are written whole or not at all (real process, real files)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap


def test_a_short_write_never_renames_half_a_record_into_place(tmp_path):
    target = tmp_path / "exit.json"
    script = textwrap.dedent(f"""
        import resource, signal
        from edgeorch.engine.executors.local.shim import write_json_atomically
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))
        try:
            write_json_atomically({str(target)!r}, {{"exit_code": 0, "error": "x" * 500}}, sync=False)
        except OSError as exc:
            print("refused", exc.errno)
        else:
            print("written")
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    if target.exists():
        json.loads(target.read_text())  # whole, or not there: never a truncated document
    assert out.stdout.startswith("refused")


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
