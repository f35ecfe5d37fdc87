"""A shim runs the next attempt once the engine has settled its last one (real zygote, shims and tasks).

Reuse saves the fork of a Python process per attempt and the pages its
child copies on write (executors/local/zygote.py); these tests hold the
rules that make it safe: a shim is handed a request only after the engine
released it, a shim that cannot be reused exits, a shim that dies holding a
request it never answered does not lose that request, and an attempt whose
exit is written is finished even while its shim lives on.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
from dataclasses import replace

from edgeorch.engine.executors.base import AttemptRecord, Verdict
from edgeorch.engine.executors.local.executor import LocalExecutor
from edgeorch.engine.procinfo import children_map, is_same_process, process_start_time
from edgeorch.selfexec import module_argv, module_env

from test_executors import IMPLS, Probe, request, run, until

LOCAL = next(i for i in IMPLS if i.name == "local")


def test_a_shim_runs_the_next_attempt_once_the_last_one_is_settled(tmp_path):
    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            for attempt_id, code in ((1, 0), (2, 3), (3, 0)):
                p.ex.spawn(request(tmp_path, attempt_id, f"exit {code}"))
                assert (await p.exit_of(attempt_id)).exit_code == code
            pids = {p.started[a].shim_pid for a in (1, 2, 3)}
            assert len(pids) == 1, f"each attempt had a shim of its own: {pids}"
            assert p.order == [("started", 1), ("exited", 1), ("started", 2), ("exited", 2), ("started", 3), ("exited", 3)]
        finally:
            p.ex.close()

    run(body)


def test_a_stop_for_a_settled_attempt_never_reaches_the_next_attempt_of_its_shim(tmp_path):
    go = tmp_path / "go"

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, "true"))
            await p.exit_of(1)
            p.ex.stop(1)  # late: the attempt is settled
            p.ex.spawn(request(tmp_path, 2, f"while [ ! -e {go} ]; do sleep 0.02; done; exit 7"))
            await until(lambda: 2 in p.started, what="start")
            assert p.started[2].shim_pid == p.started[1].shim_pid
            go.touch()
            info = await p.exit_of(2)
            assert info.exit_code == 7 and info.signal is None
        finally:
            p.ex.close()

    run(body)


def test_a_shim_whose_attempt_was_stopped_runs_the_next_one_untouched(tmp_path):
    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, "sleep 30 & wait", kill_grace=0.2))
            await until(lambda: 1 in p.started, what="start")
            p.ex.stop(1)
            assert (await p.exit_of(1)).signal == signal.SIGTERM
            p.ex.spawn(request(tmp_path, 2, "sleep 0.3; exit 5"))  # outlives the first one's grace period
            info = await p.exit_of(2)
            assert info.exit_code == 5 and info.signal is None
            assert p.started[2].shim_pid == p.started[1].shim_pid
        finally:
            p.ex.close()

    run(body)


def test_a_shim_that_ran_a_cleanup_attempt_exits_and_is_not_reused(tmp_path):
    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(replace(request(tmp_path, 1, "true"), cleanup=["true"]))
            await p.exit_of(1)
            first = p.started[1]
            await until(lambda: not is_same_process(first.shim_pid, first.shim_start_time), what="the shim to exit")
            p.ex.spawn(request(tmp_path, 2, "true"))
            await p.exit_of(2)
            assert p.started[2].shim_pid != first.shim_pid
        finally:
            p.ex.close()

    run(body)


def _zygote_children(zygote_pid: int) -> list[int]:
    return children_map().get(zygote_pid, [])


def test_a_request_whose_shim_died_before_answering_is_settled_as_never_run(tmp_path):
    """The shim handed the request is stopped, then killed before it reads it: the request is settled
    (never ran, not the task's fault) instead of waiting forever for an answer."""

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            zpid = p.ex.zygote_pid  # type: ignore[attr-defined]
            await until(lambda: len(_zygote_children(zpid)) == 1, what="the zygote's spare shim")
            (spare,) = _zygote_children(zpid)
            os.kill(spare, signal.SIGSTOP)
            p.ex.spawn(request(tmp_path, 1, "true"))
            # Handed to the stopped spare (the only idle shim), after which the zygote forks a new spare.
            await until(lambda: len(_zygote_children(zpid)) == 2, what="a new spare after the hand-over")
            os.kill(spare, signal.SIGKILL)
            info = await p.exit_of(1)
            assert info.lost and info.uncharged and 1 not in p.started
            assert json.loads((tmp_path / "attempt-1" / "owner.json").read_text()) == {"abandoned": True}
            p.ex.spawn(request(tmp_path, 2, "exit 4"))  # the launcher goes on
            assert (await p.exit_of(2)).exit_code == 4
        finally:
            p.ex.close()

    run(body)


def test_adopting_an_attempt_whose_exit_is_written_finishes_it_while_its_shim_lives_on(tmp_path):
    adir = tmp_path / "attempt-1"
    adir.mkdir()
    me = os.getpid()  # a live process standing for the shim, now idle or running another attempt
    (adir / "owner.json").write_text(json.dumps({"shim_pid": me, "shim_start_time": process_start_time(me),
                                                 "attempt_id": 1, "stops_tree": True}))
    (adir / "proc.json").write_text(json.dumps({"pid": 999_999_999, "pid_start_time": 1, "pgid": 999_999_999}))
    (adir / "exit.json").write_text(json.dumps({"exit_code": 3, "signal": None, "finished_at": 1.0}))

    async def body() -> None:
        ex = LocalExecutor(asyncio.get_running_loop(), lambda *a: None, lambda *a: None)
        try:
            adoption = ex.adopt(AttemptRecord(1, str(adir)))
            assert adoption.verdict is Verdict.FINISHED
            assert adoption.exit is not None and adoption.exit.exit_code == 3
        finally:
            ex.close()

    run(body)


class _Zygote:
    """The zygote process driven by hand: request lines in, reply lines out."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(module_argv("edgeorch.engine.executors.local.zygote", site=False),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=module_env(),
                                     start_new_session=True)
        self.buf = b""

    def send(self, line: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + b"\n")
        self.proc.stdin.flush()

    def reply(self, timeout: float = 20) -> dict:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            ready, _, _ = select.select([fd], [], [], timeout)
            assert ready, "no reply from the zygote or its shims"
            chunk = os.read(fd, 1 << 16)
            assert chunk, "the reply pipe closed"
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def until_ended(self, attempt_id: int) -> dict:
        """The started reply of ``attempt_id``, read up to its end."""
        started = self.reply()
        assert started["attempt_id"] == attempt_id and "pid" in started, started
        assert self.reply() == {"attempt_id": attempt_id, "ended": True, "shim_pid": started["shim_pid"]}
        return started

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(10) == 0, "the zygote exits cleanly on EOF"
        assert self.proc.stdout is not None
        self.proc.stdout.close()


def test_the_zygote_hands_a_shim_a_request_only_after_the_engine_released_it(tmp_path):
    z = _Zygote()
    try:
        def req(attempt_id: int) -> bytes:
            return request(tmp_path, attempt_id, "true").to_json().encode()

        z.send(req(1))
        first = z.until_ended(1)["shim_pid"]
        z.send(req(2))  # shim `first` has ended its attempt but is not released: another shim runs this one
        second = z.until_ended(2)["shim_pid"]
        assert second != first
        z.send(b'{"release": %d}' % first)
        z.send(req(3))
        assert z.until_ended(3)["shim_pid"] == first
        z.send(b'{"release": 12345678}')  # not a shim of this zygote: ignored
        z.send(b'{"release": "x"}')
        z.send(b'{"release": %d}' % second)
        z.send(req(4))
        assert z.until_ended(4)["shim_pid"] == second  # the most recently released is used first
    finally:
        z.close()


def test_idle_shims_exit_when_the_zygote_does(tmp_path):
    z = _Zygote()
    z.send(request(tmp_path, 1, "true").to_json().encode())
    shim = z.until_ended(1)["shim_pid"]
    z.send(b'{"release": %d}' % shim)
    idle = {pid: process_start_time(pid) for pid in _zygote_children(z.proc.pid)}
    assert shim in idle  # released, waiting; and the spare beside it
    z.close()

    async def gone() -> None:
        await until(lambda: not any(is_same_process(pid, start) for pid, start in idle.items()),
                    what="the idle shims to exit")

    run(gone)


def test_the_zygote_never_blocks_on_a_full_reply_pipe_and_sends_what_waited_once_there_is_room():
    """The engine may be blocked writing requests to the zygote while its reply pipe is full: the zygote's own
    message (a shim gone) waits in memory instead of blocking it, and goes out once the pipe has room."""
    from edgeorch.engine.executors.local.zygote import _Shims

    reply_r, reply_w = os.pipe()
    os.set_blocking(reply_w, False)
    filled = 0
    try:
        while True:
            filled += os.write(reply_w, b"x" * 4096)
    except BlockingIOError:
        pass
    os.set_blocking(reply_w, True)  # as the zygote's stdout: a blocking write would hang here
    shims = _Shims(reply_w)
    req_r, req_w = os.pipe()  # a shim's request pipe; its reader closes: the shim is gone
    shims.pipes[4242], shims.by_fd[req_w], shims.handed[4242] = req_w, 4242, b"17"
    shims.poll.register(req_w, 0)
    os.close(req_r)
    shims.gone(4242)  # returns at once
    assert shims.outbox == [b'{"attempt_id": 17, "shim_gone": true}\n'] and 4242 not in shims.pipes
    assert dict(shims.poll.poll(0)).get(reply_w) is None  # no room yet: not reported writable
    drained = b""
    while len(drained) < filled:
        drained += os.read(reply_r, 1 << 16)
    assert (reply_w, select.POLLOUT) in shims.poll.poll(0)
    shims.flush()
    assert shims.outbox == []
    assert json.loads(os.read(reply_r, 4096)) == {"attempt_id": 17, "shim_gone": True}
    assert shims.poll.poll(0) == []  # nothing polled for the reply pipe once nothing waits
    os.close(reply_r)
    os.close(reply_w)


def test_a_shim_exits_after_its_last_allowed_attempt_instead_of_saying_it_waits(tmp_path):
    """Its end is then seen as its exit: no request is ever handed to a shim that is on its way out."""
    # A fresh interpreter, not a fork of this (threaded) test process: the shim's body with requests on stdin.
    body = ("import os, sys\n"
            "import edgeorch.engine.executors.local.shim as shim\n"
            "shim.MAX_ATTEMPTS = 2\n"
            "os.setsid()\n"
            "sys.exit(shim.serve(0, 1))\n")
    requests = b"".join(request(tmp_path, a, "true").to_json().encode() + b"\n" for a in (1, 2, 3))
    proc = subprocess.run([sys.executable, "-c", body], input=requests, capture_output=True, env=module_env(),
                          timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [(r["attempt_id"], "ended" in r) for r in replies] == [(1, False), (1, True), (2, False)]
    assert not (tmp_path / "attempt-3").exists()  # never taken
    assert json.loads((tmp_path / "attempt-2" / "exit.json").read_text())["exit_code"] == 0


def test_a_reused_shim_is_followed_through_one_pidfd_and_its_death_settles_only_what_it_runs(tmp_path, monkeypatch):
    """One pidfd per shim, not per attempt; a shim killed while idle settles nothing, and its next attempt (run
    by another shim) is followed through a pidfd of its own; a shim killed during an attempt settles that one."""
    import edgeorch.engine.executors.local.executor as executor_module

    opened: list[int] = []
    real_open = executor_module.open_pidfd

    def counting_open(pid, start_time):  # type: ignore[no-untyped-def]
        opened.append(pid)
        return real_open(pid, start_time)

    monkeypatch.setattr(executor_module, "open_pidfd", counting_open)

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            for attempt_id in (1, 2, 3):
                p.ex.spawn(request(tmp_path, attempt_id, "true"))
                assert (await p.exit_of(attempt_id)).exit_code == 0
            shim = p.started[1].shim_pid
            assert {p.started[a].shim_pid for a in (1, 2, 3)} == {shim} and opened == [shim]
            os.kill(shim, signal.SIGKILL)  # idle: nothing of it to settle
            await until(lambda: shim not in p.ex._shims, what="the idle shim's pidfd closed")
            assert [e for e in p.order if e[0] == "exited"] == [("exited", 1), ("exited", 2), ("exited", 3)]
            p.ex.spawn(request(tmp_path, 4, "sleep 30"))
            await until(lambda: 4 in p.started, what="start")
            other = p.started[4].shim_pid
            assert other != shim and opened == [shim, other]
            os.kill(other, signal.SIGKILL)  # while it runs attempt 4: settled (no exit record: lost)
            assert (await p.exit_of(4)).lost  # and its task's group killed by settle (no orphan left)
            await until(lambda: not is_same_process(p.started[4].pid, p.started[4].pid_start_time), what="task gone")
        finally:
            p.ex.close()

    run(body)


def test_shims_run_as_batch_and_their_tasks_with_the_engines_policy(tmp_path):
    """A woken shim must not preempt the engine's loop (SCHED_BATCH); the task it starts is SCHED_OTHER again."""
    out = tmp_path / "policy"

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, f"{sys.executable} -c 'import os; print(os.sched_getscheduler(0))' > {out}"
                                            f"; sleep 30"))
            await until(lambda: 1 in p.started and out.exists() and out.read_text().strip(), what="the policy")
            assert int(out.read_text()) == os.SCHED_OTHER, "the task inherited the shim's policy"
            assert os.sched_getscheduler(p.started[1].shim_pid) == os.SCHED_BATCH
            assert os.sched_getscheduler(p.ex.zygote_pid) == os.SCHED_BATCH
            assert os.sched_getscheduler(0) == os.SCHED_OTHER  # the engine's own is untouched
            p.ex.stop(1)
            await p.exit_of(1)
        finally:
            p.ex.close()

    run(body)


def test_an_exit_status_told_over_the_pipe_counts_when_the_shim_was_gone_before_its_start_was_read(tmp_path):
    """A shim that cannot write exit.json (a full disk) tells the status over the pipe and exits. When the engine's
    loop was busy until the shim had gone, the "started" line and that status are read together: the start found
    no shim to follow (settled from the files, soon) and the status that came with it was dropped (it was only kept
    for a followed attempt), so a task that exited 0 was "the attempt's supervisor vanished without an exit record".
    (Seen under load: tests/fault's full-disk test.)"""
    fifo = tmp_path / "ran"
    os.mkfifo(fifo)
    adir = tmp_path / "attempt-1"
    # The task makes exit.json a folder: the shim's rename over it fails, as a write to a full disk does.
    script = f"mkdir {adir}/exit.json && echo done > {fifo}"

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, script))
            # The loop is held (no await) until the shim has exited: its two lines wait in the pipe meanwhile.
            with open(fifo) as f:
                assert f.read().strip() == "done"
            shim_pid = json.loads((adir / "owner.json").read_text())["shim_pid"]
            try:
                pidfd = os.pidfd_open(shim_pid)
            except ProcessLookupError:
                pidfd = None  # reaped already
            if pidfd is not None:
                select.select([pidfd], [], [], 30)
                os.close(pidfd)
            info = await p.exit_of(1)
            assert (info.exit_code, info.lost) == (0, False), info
        finally:
            p.ex.close()

    run(body)


def test_a_shims_exit_seen_before_its_last_line_is_settled_by_that_line(tmp_path):
    """The loop may see a shim's pidfd fire before the pipe line it wrote just before exiting (the status it could
    not write to exit.json): the line is read first, so the task's exit 0 is kept, not "vanished"."""
    go = tmp_path / "go"
    os.mkfifo(go)
    adir = tmp_path / "attempt-1"
    script = f"read x < {go}; mkdir {adir}/exit.json"

    async def body() -> None:
        p = Probe(LOCAL, asyncio.get_running_loop())
        try:
            p.ex.spawn(request(tmp_path, 1, script))
            await until(lambda: 1 in p.started, what="start")
            shim_pid = p.started[1].shim_pid
            pidfd = os.pidfd_open(shim_pid)
            with open(go, "w") as f:
                f.write("go\n")
            select.select([pidfd], [], [], 30)  # the loop held until the shim has exited, its line in the pipe
            os.close(pidfd)
            p.ex._on_shim_gone(shim_pid)  # what the loop does when the pidfd's callback comes first
            info = await p.exit_of(1)
            assert (info.exit_code, info.lost) == (0, False), info
        finally:
            p.ex.close()

    run(body)
