"""The audit log of a real daemon: refused requests with the peer's uid and user, kill -9 in heavy activity,
an export checked by an independent few-line verifier, pruning, and `edgeorch audit verify` after tampering
with the sqlite3 command-line tool."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import pytest

from edgeorch.control import Client

FANOUT = """\
name = "busy"
[tasks.start]
command = ["true"]
""" + "".join(f"""
[tasks.t{i}]
command = ["true"]
needs = ["start"]
""" for i in range(12))


def audit_config(extra: str = "") -> str:
    return "[audit]\nseal_every = 7\nseal_interval = \"1s\"\n" + extra


def cli(workspace, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return workspace.invoke("audit", *args, stdin=stdin)  # in this process: output and exit codes are tested


def init(workspace) -> str:
    out = cli(workspace, "init", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["key"]


def verify(workspace, key: str | None = None, *extra: str) -> tuple[int, dict[str, Any]]:
    args = ["verify", "--json", *extra] + (["--key", "-"] if key else [])
    out = cli(workspace, *args, stdin=(key + "\n") if key else None)
    assert out.returncode in (0, 1), out.stderr
    return out.returncode, json.loads(out.stdout)


def records(daemon, **query: Any) -> list[dict[str, Any]]:
    return daemon.call("audit.list", {"limit": 5000, **query})["records"]


def follow_until(daemon, count: int, trigger_runs: int) -> None:
    """Trigger runs and read the events stream until ``count`` task events went by (the activity is under way)."""
    with Client(daemon.socket_path, timeout=60) as c:
        stream = c.stream("events", {}, timeout=60)
        next(stream)  # subscribed
        for _ in range(trigger_runs):
            with Client(daemon.socket_path, timeout=60) as t:
                t.call("trigger", {"pipeline": "busy"})
        seen = 0
        for ev in stream:
            if ev.get("kind") == "task":
                seen += 1
                if seen >= count:
                    return
    raise AssertionError("the events stream ended")


@contextmanager
def socket_nobody_reaches(workspace, daemon, control: str) -> Iterator[Path]:
    """A daemon (audit config, ``control`` lines in its [control]) whose socket, in a folder of /tmp every user
    may enter, user nobody may connect to; yields the socket's path."""
    sock_dir = Path(tempfile.mkdtemp(prefix="edgeorch-audit-", dir="/tmp"))
    try:
        os.chmod(sock_dir, 0o755)
        sock = sock_dir / "edgeorch.sock"
        workspace.write_config(audit_config() + f'[control]\nsocket = "{sock}"\n{control}\n')
        workspace.pipeline("busy", FANOUT)
        daemon.socket_override = str(sock)
        daemon.start()
        os.chmod(sock, 0o666)
        yield sock
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


def as_nobody(sock: Path, op: str, args: dict) -> dict:
    """One request to ``sock`` from user nobody (setpriv, socat): its answer."""
    line = json.dumps({"v": 1, "id": 1, "op": op, "args": args}) + "\n"
    from socat import socat_request

    return json.loads(socat_request(sock, line.encode(), as_nobody=True).stdout)


# -- refused requests ---------------------------------------------------------------------------------


def test_refused_requests_are_recorded_with_the_peers_uid_and_user(workspace, daemon):
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    me = pwd.getpwuid(os.getuid()).pw_name
    with daemon.client() as c:
        for op, args, code in (("trigger", {"pipeline": "nosuch"}, "not_found"),
                               ("trigger", {"pipeline": 42}, "usage"),
                               ("cancel", {"run_id": 999}, "not_found")):
            with pytest.raises(Exception) as err:
                c.call(op, args)
            assert getattr(err.value, "code", None) == code
        c.call("pipelines.pause", {"name": "busy", "reason": "maintenance"})
        with pytest.raises(Exception, match="paused"):
            c.call("trigger", {"pipeline": "busy"})
    refused = records(daemon, action="request_refused")
    assert [(r["actor"], r["uid"], r["subject"]) for r in refused] == [
        (me, os.getuid(), "op:trigger"), (me, os.getuid(), "op:trigger"), (me, os.getuid(), "op:cancel"),
        (me, os.getuid(), "op:trigger")]
    details = [json.loads(r["details"]) for r in refused]
    assert [d["code"] for d in details] == ["not_found", "usage", "not_found", "conflict"]
    assert details[0]["args"] == {"pipeline": "nosuch"} and "paused" in details[3]["error"]
    paused = records(daemon, action="pipeline_paused")
    assert [(r["actor"], r["uid"], r["subject"]) for r in paused] == [(me, os.getuid(), "pipeline:busy")]
    # A read that fails changed nothing and asked for nothing to change: not a refused request.
    with daemon.client() as c, pytest.raises(Exception):
        c.call("runs.show", {"run_id": 999})
    assert len(records(daemon, action="request_refused")) == 4
    # A huge argument, quoted by the error too: the record keeps a bounded part of each (20 such grew the state
    # file by 12 MB).
    with daemon.client() as c, pytest.raises(Exception):
        c.call("trigger", {"pipeline": "x" * 400_000, "params": {"k": "y" * 400_000}})
    (huge,) = [r for r in records(daemon, action="request_refused")][-1:]
    assert len(huge["details"]) < 5_000, len(huge["details"])
    # A `since` that is no time matched nothing, silently: refused, naming it.
    with daemon.client() as c, pytest.raises(Exception, match="is not a time"):
        c.call("audit.list", {"since": "yesterday"})


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("socat") is None, reason="needs setpriv and socat")
def test_a_request_refused_for_lack_of_access_is_recorded_with_the_strangers_uid(workspace, daemon):
    with socket_nobody_reaches(workspace, daemon, 'readers = ["nobody"]') as sock:
        assert as_nobody(sock, "trigger", {"pipeline": "busy"})["error"]["code"] == "permission_denied"
        denied = records(daemon, action="permission_denied")
        nobody = pwd.getpwnam("nobody").pw_uid
        assert [(r["actor"], r["uid"], r["subject"]) for r in denied] == [("nobody", nobody, "op:trigger")]


# -- kill -9 ------------------------------------------------------------------------------------------


def test_kill_9_during_heavy_activity_never_leaves_a_broken_chain(workspace, daemon):
    workspace.write_config(audit_config(), parallelism=4)
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    key = init(workspace)
    for round_ in range(2):
        follow_until(daemon, count=20, trigger_runs=4)
        daemon.kill9()
        rc, report = verify(workspace, key)
        assert rc == 0 and report["ok"], report
        assert report["seals"] >= 2 and report["key_checked"]
        daemon.start()  # adopts what was running; seals what the last one left unsealed
    follow_until(daemon, count=10, trigger_runs=1)
    assert daemon.stop() == 0
    rc, report = verify(workspace, key)
    assert rc == 0 and report["unsealed"] == 0, report
    actions = {r["action"] for r in _all_records(workspace)}
    assert {"daemon_started", "daemon_stopped", "attempt_started", "attempt_ended", "run_created",
            "audit_init"} <= actions


def _all_records(workspace) -> list[dict[str, Any]]:
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM audit_log ORDER BY seq")]
    finally:
        conn.close()


# -- export, independent verifier ---------------------------------------------------------------------


def independent_verify(path: Path, key_hex: str) -> int:
    """docs/audit.md "Verifying an export", in a few lines of hashlib, hmac and json: returns the records checked."""
    enc = lambda o: json.dumps(o, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()  # noqa: E731
    lines = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    recs = [x for x in lines if x["type"] == "record"]
    seals = sorted((x for x in lines if x["type"] == "seal"), key=lambda s: s["epoch"])
    cps = [x for x in lines if x["type"] == "checkpoint"]
    prev = cps[-1]["hash"] if cps else "0" * 64
    hashes = {cps[-1]["seq"]: prev} if cps else {}
    for r in recs:
        body = {k: r[k] for k in ("action", "actor", "details", "prev", "seq", "subject", "ts", "uid")}
        assert r["prev"] == prev and hashlib.sha256(enc(body)).hexdigest() == r["hash"], r["seq"]
        hashes[r["seq"]] = prev = r["hash"]
    key = bytes.fromhex(key_hex.replace("-", ""))
    for epoch, s in enumerate(seals):
        assert s["epoch"] == epoch
        mac = hmac.new(key, enc({k: s[k] for k in ("epoch", "hash", "seq", "ts")}), hashlib.sha256).hexdigest()
        assert mac == s["mac"] and hashes.get(s["seq"], s["hash"]) == s["hash"], epoch
        key = hashlib.sha256(b"edgeorch-audit-evolve/1" + key).digest()
    assert not recs or recs[-1]["seq"] >= seals[-1]["seq"]  # no sealed record cut off the tail
    return len(recs)


def test_an_export_verifies_with_an_independent_verifier_and_pruning_keeps_it_verifiable(workspace, daemon):
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    key = init(workspace)
    follow_until(daemon, count=13, trigger_runs=1)
    run_id = daemon.call("runs.list", {"limit": 1})["runs"][0]["id"]
    daemon.wait_run(run_id)
    daemon.call("audit.seal", {})
    export = workspace.root / "audit.jsonl"
    out = cli(workspace, "export", "-o", str(export))
    assert out.returncode == 0, out.stderr
    total = independent_verify(export, key)
    assert total == len(records(daemon))

    sealed_through = daemon.call("audit.state", {})["seals"][-1]["seq"]
    import time

    pruned = daemon.call("audit.prune", {"before": time.time()})["pruned"]
    assert pruned["through_seq"] == sealed_through and pruned["records"] == sealed_through
    left = records(daemon)
    assert left[0]["seq"] == sealed_through + 1 and left[-1]["action"] == "audit_pruned"
    assert daemon.call("audit.verify", {})["ok"]
    assert daemon.stop() == 0
    rc, report = verify(workspace, key)
    assert rc == 0 and report["checkpoint"] == sealed_through, report
    pruned_export = workspace.root / "pruned.jsonl"
    assert cli(workspace, "export", "-o", str(pruned_export)).returncode == 0
    assert independent_verify(pruned_export, key) == len(_all_records(workspace))
    # What remains is still append-only: the trigger only lets records up to the checkpoint go.
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_log WHERE seq = ?", (sealed_through + 1,))
    conn.close()


# -- tampering with the sqlite3 command-line tool -----------------------------------------------------


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 command-line tool is not installed")
def test_verify_exits_1_naming_the_first_bad_seq_after_an_edit_with_the_sqlite3_tool(workspace, daemon):
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    key = init(workspace)
    follow_until(daemon, count=13, trigger_runs=1)
    assert daemon.stop() == 0
    assert verify(workspace, key)[0] == 0
    db = str(workspace.state / "edgeorch.db")
    subprocess.run(["sqlite3", db, "DROP TRIGGER audit_log_no_update; "
                                   "UPDATE audit_log SET actor = 'someone-else' WHERE seq = 6;"], check=True)
    out = cli(workspace, "verify")
    assert out.returncode == 1
    assert "first bad record: seq 6" in out.stdout and "record 6 does not match its hash" in out.stdout


# -- a lost key file ----------------------------------------------------------------------------------


def test_a_lost_key_file_fails_verify_and_is_put_back_from_the_verification_key(workspace, daemon):
    """A deleted key file left a sealed log saying OK (a cut tail hides behind it); the only way back was none.
    Now verify fails naming it, and `audit init --key -` puts it back at the next epoch, through the daemon and
    without one, the verification key never sent; a refused request never records the key it carried."""
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    key = init(workspace)
    key_file = workspace.state / "audit.key"
    key_file.unlink()
    rc, report = verify(workspace)
    assert rc == 1 and "audit.key is missing: sealing has stopped" in report["problems"][0]["message"]
    wrong = cli(workspace, "init", "--key", "-", stdin="00" * 32 + "\n")
    assert wrong.returncode != 0 and "does not verify with this key" in wrong.stderr
    out = cli(workspace, "init", "--key", "-", stdin=key + "\n")
    assert out.returncode == 0, out.stderr
    assert "restored at epoch" in out.stdout and key_file.exists()
    again = cli(workspace, "init", "--key", "-", stdin=key + "\n")
    assert again.returncode != 0 and "in place and whole" in again.stderr
    refused = [r for r in records(daemon) if r["action"] == "request_refused"]
    assert refused and all(key.replace("-", "") not in json.dumps(r) for r in refused)
    assert "(secret, not recorded)" in refused[-1]["details"]
    assert [r["action"] for r in records(daemon, action="audit_key_restored")] == ["audit_key_restored"]
    assert verify(workspace, key)[0] == 0
    assert daemon.stop() == 0
    key_file.write_text("torn")  # damaged, without a daemon this time
    assert verify(workspace)[0] == 1
    out = cli(workspace, "init", "--key", "-", stdin=key + "\n")
    assert out.returncode == 0, out.stderr
    rc, report = verify(workspace, key)
    assert rc == 0, report


def test_an_export_of_a_log_that_does_not_verify_says_so(workspace, daemon):
    workspace.write_config(audit_config())
    workspace.pipeline("busy", FANOUT)
    daemon.start()
    init(workspace)
    follow_until(daemon, count=13, trigger_runs=1)
    daemon.call("audit.seal", {})
    assert daemon.stop() == 0
    last = _all_records(workspace)[-1]["seq"]
    conn = sqlite3.connect(workspace.state / "edgeorch.db")
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    conn.execute("DELETE FROM audit_log WHERE seq > ?", (last - 3,))  # sealed records cut, their seal left
    conn.commit()
    conn.close()
    export = workspace.root / "cut.jsonl"
    out = cli(workspace, "export", "-o", str(export), "--json")
    assert out.returncode == 0 and export.exists()
    assert json.loads(out.stdout)["verified"] is False
    assert f"the exported log does not verify: first bad record: seq {last - 2}" in out.stderr


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to user nobody needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None or shutil.which("socat") is None, reason="needs setpriv and socat")
def test_an_operator_who_is_not_root_cannot_plant_an_audit_key_nor_read_one_back(workspace, daemon):
    """With the key file lost, an operator sent a made-up key through audit.restore_key: the daemon sealed with
    it, and the real verification key could never put the file back (the chain no longer verified with it). A
    key of the wrong type was quoted in the refusal's record, which every reader can list."""
    with socket_nobody_reaches(workspace, daemon, 'operators = ["nobody"]') as sock:
        key = init(workspace)
        (workspace.state / "audit.key").unlink()
        epoch = daemon.call("audit.state", {})["seals"][-1]["epoch"] + 1
        made_up = "ab" * 32
        assert as_nobody(sock, "audit.restore_key", {"epoch": epoch, "key": made_up})["error"]["code"] == \
            "permission_denied"
        assert not (workspace.state / "audit.key").exists()
        with daemon.client() as c, pytest.raises(Exception) as err:  # root, a key of the wrong type
            c.call("audit.restore_key", {"epoch": epoch, "key": ["cd" * 32]})
        assert "cd" * 32 not in str(err.value)
        assert all("cd" * 32 not in json.dumps(r) and made_up not in json.dumps(r) for r in records(daemon))
        out = cli(workspace, "init", "--key", "-", stdin=key + "\n")  # the real key still restores it
        assert out.returncode == 0, out.stderr
        assert verify(workspace, key)[0] == 0


def test_export_to_dash_writes_standard_output_not_a_file_named_dash(workspace):
    """Found by a data user: `edgeorch audit export -o -` wrote a 445 KB file named `-` and said "to -", where
    `lineage export ... -` means standard output."""
    workspace.pipeline("one", '[tasks.a]\ncommand = ["true"]\n')
    assert workspace.invoke("run", "one", "-q").returncode == 0
    out = subprocess.run([*workspace.cli(), "audit", "export", "-o", "-"], env=workspace.cli_env(),
                         cwd=workspace.root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    lines = [json.loads(line) for line in out.stdout.splitlines()]
    assert lines and lines[0].get("format") == "edgeorch-audit/1", lines[:1]
    assert not (workspace.root / "-").exists()
