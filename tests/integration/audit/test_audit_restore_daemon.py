"""Finding 2 of the tester's report, end to end: a backup of the state file restored as docs/operations.md says
(the daemon stopped, the file replaced, -wal/-shm deleted; audit.key left as it is). The daemon's start warns,
`verify` and `verify --key` fail naming the gap (with the key: which seals verified), `audit acknowledge-restore
--key -` through the daemon records the restore, and `verify` passes from then on while still saying it."""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing

from test_audit_daemon import FANOUT, audit_config, cli, init, verify


def test_a_restored_backup_is_said_then_acknowledged_with_the_key_and_verify_passes_again(workspace, daemon):
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    key = init(workspace)
    daemon.call("audit.seal", {})
    db = workspace.state / "edgeorch.db"
    backup = workspace.root / "backup.db"
    with closing(sqlite3.connect(backup)) as dst, closing(sqlite3.connect(db)) as src:  # sqlite3's `.backup`
        src.backup(dst)
    for _ in range(2):
        daemon.call("trigger", {"pipeline": "busy"})
        daemon.call("audit.seal", {})
    assert daemon.stop() == 0
    shutil.copyfile(backup, db)
    for suffix in ("-wal", "-shm"):
        (workspace.state / f"edgeorch.db{suffix}").unlink(missing_ok=True)
    daemon.start()
    assert "WARNING edgeorch.audit: restored state file? the audit log lacks the seal(s) of epoch" in daemon.output()

    rc, report = verify(workspace)
    assert rc == 1 and len(report["gaps"]) == 1 and "acknowledge-restore" in report["hints"][0]
    out = cli(workspace, "verify", "--key", "-", stdin=key + "\n")
    assert out.returncode == 1 and "with the verification key: " in out.stdout, out.stdout
    assert " seal(s) verify (epoch(s) 0" in out.stdout and "do(es) not" not in out.stdout, out.stdout

    refused = cli(workspace, "acknowledge-restore", "--key", "-", stdin="00" * 32 + "\n")  # not this log's key
    assert refused.returncode == 5 and "apart from its missing seals" in refused.stderr, refused.stderr
    out = cli(workspace, "acknowledge-restore", "--key", "-", stdin=key + "\n")
    assert out.returncode == 0 and "recorded as a restored backup's" in out.stdout, out.stderr
    again = cli(workspace, "acknowledge-restore", "--key", "-", stdin=key + "\n")
    assert again.returncode == 5 and "no restore to acknowledge" in again.stderr

    daemon.call("trigger", {"pipeline": "busy"})
    daemon.call("audit.seal", {})
    for k in (None, key):
        rc, report = verify(workspace, k)
        assert rc == 0 and report["gaps"] == [] and len(report["acknowledged"]) == 1, report
    out = cli(workspace, "verify")
    assert out.returncode == 0 and "a restored backup, acknowledged at record" in out.stdout
    (rec,) = daemon.call("audit.list", {"action": "audit_restored"})["records"]
    assert json.loads(rec["details"])["mac"]
    assert daemon.stop() == 0

    conn = sqlite3.connect(db)  # tampering after the acknowledgement still fails
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("UPDATE audit_log SET actor = 'mallory' WHERE seq = ?", (rec["seq"] + 1,))
    conn.commit()
    conn.close()
    for k in (None, key):
        rc, report = verify(workspace, k)
        assert rc == 1 and report["first_bad_seq"] == rec["seq"] + 1
