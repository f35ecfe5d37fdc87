"""The local executor: a zygote forks supervising shims, each running one attempt at a time.

It implements :class:`~edgeorch.engine.executors.base.Executor` (the
contract is there); how it keeps it:

- :meth:`Executor.spawn` never fails synchronously and never reports a
  failure of edgeorch's own machinery as the task's: if the launcher (the
  zygote) is down, the request waits until it is back; if it dies with
  requests in flight, each one that no shim claimed is settled with
  ``ExitInfo(uncharged=True)`` (the engine relaunches it without charging a
  retry); one that a shim claimed goes on under that shim.
- ``on_started(attempt_id, ProcInfo)`` comes at most once, before
  ``on_exited``; ``on_exited(attempt_id, ExitInfo)`` exactly once per spawned
  or watched attempt (unless :meth:`close` came first), always on the loop,
  and only after **no process of the attempt is alive** (the shim writes
  ``exit.json`` last, then reports the end or exits; see ``shim.py``).
- :meth:`stop` asks for a graceful stop: SIGTERM to every process of the
  attempt now, SIGKILL to all of them ``kill_grace`` later, whatever the
  task's leader does (the shim carries it out, so it survives a restart of
  the engine). :meth:`kill` is the engine's safety net: SIGKILL to everything
  of the attempt it can still find.
- Health: the executor watches its zygote (a pidfd) and restarts it when it
  dies (backing off when it keeps dying); ``on_health(message)`` reports it.

Shims are watched through pidfds (which work for processes that are not our
children, so an engine restarted after a crash can adopt shims started by its
predecessor). A shim of the current zygote reports an attempt's end on the
reply pipe and is then released for another one (``zygote.py``: why, and
the order that keeps a stop from reaching the wrong attempt).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from ....commandmarks import stop_carrying
from ...files import read_json
from ...procinfo import children_map, descendants, in_nested_namespace, is_same_process, open_pidfd, pid_namespace_ids
from ..base import (Adoption, AttemptRecord, ExitInfo, Executor, Health, OnExited, OnHealth, OnStarted, ProcInfo,
                    SpawnRequest, Verdict)
from .launch import EarlyZygote, spawn_zygote
from .shim import ABANDONED, ATTEMPT_MARKS, EXIT, OWNER, PROC, claim, run_cleanup

log = logging.getLogger("edgeorch.engine")


def read_exit(attempt_dir: str) -> ExitInfo | None:
    """The durable exit record of an attempt, or None when the shim has not written one."""
    data = read_json(os.path.join(attempt_dir, EXIT))
    if data is None:
        return None
    return ExitInfo(data.get("exit_code"), data.get("signal"), data.get("finished_at"),
                    bool(data.get("log_truncated")), error=data.get("error"))


class _Zygote:
    """One generation of the zygote: its process, reply pipe and pidfd."""

    def __init__(self, popen: "subprocess.Popen[bytes]", pidfd: int | None) -> None:
        self.popen = popen
        self.pidfd = pidfd
        assert popen.stdout is not None
        self.out_fd = popen.stdout.fileno()
        self.buf = b""
        self.eof = False  # its reply pipe is at EOF (every shim it forked has let go of it)


RESTART_BACKOFF_S = (0.0, 0.1, 0.5, 2.0, 10.0, 30.0)
"""Delay before restarting a dead zygote, by how many times it died within the last minute."""


class LocalExecutor(Executor):
    """Starts attempts under shims, stops them, and reports their fate on the event loop (see the module docstring)."""

    name = "local"

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_started: OnStarted,
        on_exited: OnExited,
        on_health: OnHealth | None = None,
        early: EarlyZygote | None = None,
    ) -> None:
        """``early``: a zygote started before this executor (:class:`~.launch.EarlyZygote`), used by the first
        :meth:`start`; the caller still discards it (a no-op once taken)."""
        self.loop = loop
        self._early = early
        self.on_started = on_started
        self.on_exited = on_exited
        self.on_health = on_health or (lambda message: None)
        self._zygote: _Zygote | None = None
        self._old: list[_Zygote] = []  # dead generations whose reply pipe may still carry shims' replies
        self._replying = False  # lines of a reply pipe are being handled (_on_reply)
        self._watched: dict[int, tuple[int, str]] = {}  # attempt_id -> (its shim's pidfd, attempt_dir)
        # Every shim followed: pid -> (pidfd, start time), opened once and kept while the shim lives, across the
        # attempts it runs in turn (idle between them), and the attempt it runs now.
        self._shims: dict[int, tuple[int, int | None]] = {}
        self._running_on: dict[int, int] = {}  # shim pid -> attempt_id
        self._dirs: dict[int, str] = {}
        self._in_flight: dict[int, SpawnRequest] = {}  # written to a zygote, no reply yet
        self._orphaned: dict[int, SpawnRequest] = {}  # written to a zygote that died; not settled yet
        self._orphan_timer: asyncio.TimerHandle | None = None
        self._orphans_reported: set[int] = set()  # told once through on_health, then retried quietly
        self._waiting: list[SpawnRequest] = []  # the zygote is down: sent when it is back
        self._procs: dict[int, ProcInfo] = {}
        self._tree: set[int] = set()  # attempts whose shim carries out stop() itself
        self._stop_asked: set[int] = set()  # stop() before the attempt started: applied at start
        self._told: dict[int, ExitInfo] = {}  # attempt -> the status its shim could not write to exit.json
        self._deaths: list[float] = []
        self._restarts = 0
        self._restart_timer: asyncio.TimerHandle | None = None
        self._closing = False
        self._flush_armed = False  # a release line waits in the request pipe's buffer (_on_ended)

    # -- the zygote --------------------------------------------------------------------

    def start(self) -> None:
        """Start the zygote (or take the one started early). Its stdin/stdout are our request/reply pipes.

        Raises OSError when it cannot start.
        """
        early, self._early = self._early, None  # a head start is taken once; a restart starts a new zygote
        popen = early.take() if early is not None else None
        if popen is None:
            popen = spawn_zygote()
        try:
            pidfd: int | None = os.pidfd_open(popen.pid)
        except OSError:  # pragma: no cover - kernels before 5.3: death is noticed on the reply pipe's EOF
            pidfd = None
        z = self._zygote = _Zygote(popen, pidfd)
        os.set_blocking(z.out_fd, False)
        self.loop.add_reader(z.out_fd, self._on_reply, z)
        if pidfd is not None:
            self.loop.add_reader(pidfd, self._on_zygote_death, z)
        waiting, self._waiting = self._waiting, []
        for req in waiting:
            self.spawn(req)

    @property
    def zygote_pid(self) -> int | None:
        """The current zygote's pid (None while it is down)."""
        return self._zygote.popen.pid if self._zygote is not None else None

    def _on_zygote_death(self, z: _Zygote) -> None:
        """The zygote exited: restart it, and settle the requests it took with it."""
        if z.pidfd is not None:
            self.loop.remove_reader(z.pidfd)
            os.close(z.pidfd)
            z.pidfd = None
        if z is not self._zygote or self._closing:
            return
        code = z.popen.wait()
        self._zygote = None
        if z.eof:  # nothing can answer on its pipe any more: close it now
            if z.popen.stdout is not None:
                z.popen.stdout.close()
        else:
            self._old.append(z)  # keep reading: shims it forked still answer on its pipe
        if z.popen.stdin is not None:
            try:
                z.popen.stdin.close()
            except OSError:
                pass
        now = time.monotonic()
        self._deaths = [t for t in self._deaths if now - t < 60] + [now]
        delay = RESTART_BACKOFF_S[min(len(self._deaths) - 1, len(RESTART_BACKOFF_S) - 1)]
        self.on_health(f"the task launcher (zygote, pid {z.popen.pid}) died ({_describe_status(code)});"
                       f" restarting it{f' in {delay:g}s' if delay else ''}")
        # The restart is armed first: failing to settle a lost request must never leave the launcher down.
        self._restarts += 1
        self._restart_timer = self.loop.call_later(delay, self._restart)
        self._orphaned.update(self._in_flight)
        self._in_flight.clear()
        self._settle_orphans()

    def health(self) -> Health:
        if self._zygote is not None:
            return Health(True, f"task launcher running (pid {self._zygote.popen.pid})", self._restarts)
        return Health(False, "task launcher down: being restarted; requests wait for it", self._restarts)

    def _restart(self) -> None:
        self._restart_timer = None
        if self._closing or self._zygote is not None:
            return
        try:
            self.start()
        except OSError as exc:
            self.on_health(f"cannot restart the task launcher: {exc}; trying again")
            self._deaths.append(time.monotonic())
            self._restart_timer = self.loop.call_later(RESTART_BACKOFF_S[-1], self._restart)

    def _settle_orphans(self) -> None:
        """Settle each request a dead zygote took; one that cannot be settled now (its folder cannot be
        made or read: disk full, permissions) is reported and tried again shortly, never dropped."""
        if self._orphan_timer is not None:  # a second death while retrying: one timer, not two
            self._orphan_timer.cancel()
        self._orphan_timer = None
        for attempt_id in list(self._orphaned):
            try:
                self._settle_in_flight(attempt_id)
            except OSError as exc:
                if attempt_id not in self._orphans_reported:
                    self._orphans_reported.add(attempt_id)
                    self.on_health(f"cannot settle the start request of attempt {attempt_id} lost with the task"
                                   f" launcher: {exc}; trying again every {RESTART_BACKOFF_S[3]:g}s")
            else:
                self._orphans_reported.discard(attempt_id)
        if self._orphaned and not self._closing:
            self._orphan_timer = self.loop.call_later(RESTART_BACKOFF_S[3], self._settle_orphans)

    def _settle_in_flight(self, attempt_id: int) -> None:
        """A request the dead zygote took: claimed by a shim (then watch it) or never run (then not the task's fault).

        Raises OSError (the request stays in :attr:`_orphaned`) when the attempt folder cannot be claimed now.
        """
        req = self._orphaned[attempt_id]
        claimed_here = settle_unowned(req.attempt_dir)
        del self._orphaned[attempt_id]
        if claimed_here:
            self._dirs.pop(attempt_id, None)
            self.on_exited(attempt_id, ExitInfo(None, None, None, lost=True, uncharged=True,
                                                error="the task launcher died before starting the attempt"))
            return
        owner = read_json(Path(req.attempt_dir, OWNER)) or {}
        if owner.get(ABANDONED):  # pragma: no cover - only recovery writes this, and it does not run now
            self.on_exited(attempt_id, ExitInfo(None, None, None, lost=True, uncharged=True, error="abandoned"))
            return
        if owner.get("stops_tree"):
            self._tree.add(attempt_id)
        # Its reply (started, or a start error) still comes on the old pipe; until then the pidfd tells its end.
        self._watch(attempt_id, req.attempt_dir, owner.get("shim_pid") or 0, owner.get("shim_start_time"),
                   stops_tree=bool(owner.get("stops_tree")))

    # -- spawning ----------------------------------------------------------------------

    def spawn(self, req: SpawnRequest) -> None:
        """Ask the zygote for a shim; ``on_started`` or ``on_exited`` follows on the loop."""
        self._dirs[req.attempt_id] = req.attempt_dir
        z = self._zygote
        if z is None:
            self._waiting.append(req)
            return
        self._in_flight[req.attempt_id] = req
        assert z.popen.stdin is not None
        try:
            z.popen.stdin.write((req.to_json() + "\n").encode())
            z.popen.stdin.flush()
        except (BrokenPipeError, OSError):
            pass  # the zygote is dying: its pidfd fires and _on_zygote_death settles this request

    def _on_reply(self, z: _Zygote) -> bool:
        """Read and handle what ``z``'s reply pipe holds now (one read); False when it held nothing."""
        try:
            chunk = os.read(z.out_fd, 1 << 16)
        except BlockingIOError:
            return False
        if not chunk:
            self.loop.remove_reader(z.out_fd)
            z.eof = True
            if z in self._old:
                self._old.remove(z)
                if z.popen.stdout is not None:
                    z.popen.stdout.close()
            elif z is self._zygote and z.pidfd is None:  # pragma: no cover - no pidfds: EOF is the death notice
                self._on_zygote_death(z)
            return False
        z.buf += chunk
        *lines, z.buf = z.buf.split(b"\n")
        self._replying = True
        try:
            for line in lines:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                attempt_id = msg.get("attempt_id")
                if attempt_id is None:
                    continue
                self._on_message(attempt_id, msg, z)
        finally:
            self._replying = False
        return True

    def _read_replies(self) -> None:
        """Handle every line the reply pipes hold now. A shim writes its last line before it exits, so what its exit
        (a pidfd) is settled by must be read first: the loop may see the pidfd before the pipe."""
        if self._replying:  # called while lines are handled: read on later, else lines would be handled out of order
            return
        for z in [*self._old, *([self._zygote] if self._zygote else [])]:
            while not z.eof and self._on_reply(z):
                pass

    def _on_message(self, attempt_id: int, msg: dict[str, Any], z: _Zygote | None = None) -> None:
        if msg.get("ended"):
            self._on_ended(attempt_id, msg.get("shim_pid"), z)
            return
        if msg.get("shim_gone"):
            if attempt_id in self._in_flight:  # its shim died before answering: settled as a lost launcher's
                self._orphaned[attempt_id] = self._in_flight.pop(attempt_id)
                self._settle_orphans()
            return
        if "exit_record" in msg:  # the shim could not write exit.json (a full disk): the status, told instead
            # Kept for any attempt not settled yet: one whose shim had exited before its start was read is not
            # followed (its settlement is on its way, in this loop turn's callbacks), and it needs this status.
            if attempt_id in self._watched or attempt_id in self._dirs:
                rec = msg["exit_record"]
                self._told[attempt_id] = ExitInfo(rec.get("exit_code"), rec.get("signal"), rec.get("finished_at"),
                                                  bool(rec.get("log_truncated")), error=None)
                log.warning("attempt %s: %s; its exit status (%s) came over the shim's pipe", attempt_id,
                            msg.get("error"), rec.get("exit_code") if rec.get("signal") is None
                            else f"signal {rec.get('signal')}")
            return  # settled when the shim's exit is seen (it does not wait for another attempt)
        in_flight = (self._in_flight.pop(attempt_id, None) or self._orphaned.pop(attempt_id, None)) is not None
        if "error" in msg:
            if in_flight:
                self._dirs.pop(attempt_id, None)
                if msg.get("exit_code") is not None:  # the task's own program could not start (127, as a shell)
                    self.on_exited(attempt_id, ExitInfo(int(msg["exit_code"]), None, None, error=msg["error"]))
                elif msg.get("charged"):  # its folders cannot be made until someone acts: the attempt's failure
                    self.on_exited(attempt_id, ExitInfo(None, None, None, lost=True, error=msg["error"]))
                else:
                    # edgeorch's own machinery failed (its folders, its log file: a full disk), not the task: no exit
                    # status (127 was made up), not charged (relaunched free a few times:
                    # settlement.FREE_RELAUNCHES), the shim's words as the reason.
                    self.on_exited(attempt_id, ExitInfo(None, None, None, lost=True, uncharged=True,
                                                        error=msg["error"]))
            # else: settled already (the launcher died and we claimed it first, or it is watched)
            return
        if attempt_id in self._procs:
            return  # a late reply for an attempt adopted after its zygote died
        info = ProcInfo(msg["pid"], msg.get("pid_start_time"), msg["pgid"], msg["shim_pid"], msg.get("shim_start_time"))
        self._procs[attempt_id] = info
        if msg.get("stops_tree"):
            self._tree.add(attempt_id)
        self.on_started(attempt_id, info)
        if attempt_id not in self._watched:
            self._watch(attempt_id, self._dirs.get(attempt_id, ""), info.shim_pid, info.shim_start_time,
                       stops_tree=bool(msg.get("stops_tree")))
        if attempt_id in self._stop_asked:
            self.stop(attempt_id)

    # -- watching ----------------------------------------------------------------------

    def _watch(self, attempt_id: int, attempt_dir: str, shim_pid: int, shim_start_time: int | None, *,
               stops_tree: bool = False, proc: ProcInfo | None = None) -> bool:
        """Watch a shim until it exits; when it is already gone, settle it from exit.json (``on_exited`` soon)."""
        if self._follow(attempt_id, attempt_dir, shim_pid, shim_start_time, stops_tree=stops_tree, proc=proc):
            return True
        self.loop.call_soon(self._settle, attempt_id, attempt_dir)
        return False

    def _follow(self, attempt_id: int, attempt_dir: str, shim_pid: int, shim_start_time: int | None, *,
                stops_tree: bool = False, proc: ProcInfo | None = None) -> bool:
        """Start watching a shim through a pidfd; False (nothing kept) when it is no longer running.

        A reused shim's pidfd is the one opened for its first attempt (its identity checked then; a pidfd
        cannot follow another process): one ``pidfd_open`` and two reads of /proc per shim, not per attempt.
        """
        if not shim_pid:
            return False
        known = self._shims.get(shim_pid)
        if known is not None and known[1] != shim_start_time:  # that shim is gone; this pid is another process
            self._on_shim_gone(shim_pid)
            known = None
        if known is None:
            # A zombie shim has ended (exit.json is written before it exits): settled, not followed (open_pidfd).
            fd = open_pidfd(shim_pid, shim_start_time)
            if fd is None:
                return False
            self._shims[shim_pid] = (fd, shim_start_time)
            self.loop.add_reader(fd, self._on_shim_gone, shim_pid)
        else:
            fd = known[0]  # if it exits meanwhile, its pidfd fires and settles this attempt
        if stops_tree:
            self._tree.add(attempt_id)
        if proc is not None:
            self._procs[attempt_id] = proc
        self._dirs[attempt_id] = attempt_dir
        self._watched[attempt_id] = (fd, attempt_dir)
        self._running_on[shim_pid] = attempt_id
        return True

    def _on_shim_gone(self, shim_pid: int) -> None:
        """A followed shim exited: stop following it; settle the attempt it ran, if any (exit.json, else lost)."""
        fd, _ = self._shims.pop(shim_pid)
        self.loop.remove_reader(fd)
        self._read_replies()  # its last line (an end, a status it could not write) is settled by, not lost
        attempt_id = self._running_on.pop(shim_pid, None)
        watched = self._watched.pop(attempt_id, None) if attempt_id is not None else None
        os.close(fd)
        if watched is not None:
            self._settle(attempt_id, watched[1])  # type: ignore[arg-type]

    # -- adopting and settling (after a restart of the engine) ---------------------------

    def adopt(self, record: AttemptRecord) -> Adoption:
        """See the contract. The attempt folder's files decide: exit.json, owner.json (the shim's claim), proc.json."""
        adir = record.attempt_dir
        never_ran = Adoption(Verdict.LOST, exit=ExitInfo(
            None, None, None, lost=True, uncharged=True,
            error="the attempt never started (engine stopped while starting it)"))
        ended = read_exit(adir)
        if ended is None and not Path(adir, OWNER).exists() and settle_unowned(adir):
            # No shim claimed it and now none ever will: it never ran, and that is not the task's doing.
            return never_ran
        owner = read_json(Path(adir, OWNER)) or {}
        if owner.get(ABANDONED):  # an earlier recovery claimed it (then stopped before recording it): the same
            return never_ran
        proc = read_json(Path(adir, PROC))
        started = ProcInfo(proc["pid"], proc.get("pid_start_time"), proc["pgid"], owner.get("shim_pid") or 0,
                           owner.get("shim_start_time")) if proc and proc.get("pgid") else None
        if ended is None:  # read again: a shim that claimed it after the first look may have finished since
            ended = read_exit(adir)
        if ended is not None:  # written once nothing of the attempt runs (its shim may live on, reused)
            return Adoption(Verdict.FINISHED, started=started, exit=ended)
        if self._follow(record.attempt_id, adir, owner.get("shim_pid") or 0, owner.get("shim_start_time"),
                        stops_tree=bool(owner.get("stops_tree")), proc=started):
            return Adoption(Verdict.LIVE, started=started)
        info = self.settle(record)
        return Adoption(Verdict.LOST if info.lost else Verdict.FINISHED, started=started, exit=info)

    def settle(self, record: AttemptRecord) -> ExitInfo:
        """See the contract: exit.json (or the status its shim told this executor when it could not write it),
        else ``lost`` (after killing the task's group if it still runs)."""
        told = self._told.pop(record.attempt_id, None)
        info = read_exit(record.attempt_dir) or told
        if info is not None:
            return info
        # The shim died without a record (killed, OOM): whatever the task did is unknown.
        proc = read_json(Path(record.attempt_dir, PROC))
        if proc and is_same_process(proc.get("pid"), proc.get("pid_start_time")):
            kill_group(proc["pgid"], signal.SIGKILL)  # an orphan nobody would collect
        if proc and isinstance(proc.get("cleanup"), list) and proc["cleanup"]:
            # A container left running: its processes are no members of the task's group (the runtime's client).
            # Killed here, before the attempt is settled, so none runs beside the attempt's retry: the cleanup
            # (`rm --force`) alone stopped it in the background, the runtime's stop timeout later (10 s), after
            # the retry had started and both wrote the same outputs. The runtime's own processes are spared: they
            # end by themselves once the container has, and remove what the runtime holds of it.
            stop_container_processes(proc.get("marks"))
            run_cleanup([str(a) for a in proc["cleanup"]], wait=False)
        return ExitInfo(None, None, None, lost=True, error="the attempt's supervisor vanished without an exit record")

    def _on_ended(self, attempt_id: int, shim_pid: Any, z: _Zygote | None) -> None:
        """A shim ended its attempt (``exit.json`` is written) and waits for another: settle the attempt,
        then let the zygote reuse the shim. Only now: a stop for that attempt can no longer be sent to it."""
        watched = self._watched.pop(attempt_id, None)
        if watched is None:
            return  # settled already (the shim's exit was seen first): it is not waiting
        if isinstance(shim_pid, int) and self._running_on.get(shim_pid) == attempt_id:
            del self._running_on[shim_pid]  # idle now, still followed: a pidfd that fires settles nothing
        if z is not None and z is self._zygote and isinstance(shim_pid, int) and z.popen.stdin is not None:
            # A shim of an older zygote is not reused: its zygote is gone, so it exits. The line is buffered
            # before the settlement below, which often starts the next attempt: its request follows in the
            # same write (one wake-up of the zygote, not two), and the zygote can hand it to this very shim
            # instead of a spare. Nothing can reach the shim for this attempt any more: it is not watched.
            try:
                z.popen.stdin.write(b'{"release": %d}\n' % shim_pid)
            except OSError:
                pass  # the zygote is dying: the shim reads EOF and exits
            else:
                if not self._flush_armed:
                    self._flush_armed = True
                    self.loop.call_soon(self._flush_requests)
        self._settle(attempt_id, watched[1])

    def _flush_requests(self) -> None:
        self._flush_armed = False
        z = self._zygote
        if z is not None and z.popen.stdin is not None and not z.popen.stdin.closed:
            try:
                z.popen.stdin.flush()
            except OSError:
                pass  # the zygote is dying: its pidfd fires (a release needs no settling)

    def _settle(self, attempt_id: int, attempt_dir: str) -> None:
        self._dirs.pop(attempt_id, None)
        self._tree.discard(attempt_id)
        self._stop_asked.discard(attempt_id)
        self._procs.pop(attempt_id, None)
        self.on_exited(attempt_id, self.settle(AttemptRecord(attempt_id, attempt_dir)))

    # -- stopping ----------------------------------------------------------------------

    def stop(self, attempt_id: int) -> None:
        """SIGTERM every process of the attempt now, SIGKILL them after the grace period (see the contract)."""
        watched = self._watched.get(attempt_id)
        proc = self._procs.get(attempt_id)
        if watched is None or (proc is None and attempt_id not in self._tree):
            self._stop_asked.add(attempt_id)  # not started yet: done when it is
            return
        if attempt_id in self._tree:
            try:
                signal.pidfd_send_signal(watched[0], signal.SIGTERM)  # the shim does the rest
                return
            except OSError:
                pass
        if proc is not None:  # a shim of an older edgeorch: only its process group can be reached
            kill_group(proc.pgid, signal.SIGTERM)

    def kill(self, attempt_id: int) -> None:
        """SIGKILL everything of the attempt that can still be found (the shim's tree and the task's group)."""
        watched = self._watched.get(attempt_id)
        proc = self._procs.get(attempt_id)
        if proc is not None:
            for pid in descendants(proc.shim_pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            if watched is not None:
                kill_group(proc.pgid, signal.SIGKILL)

    def task_ended(self, attempt_id: int) -> bool:
        """The leader (pid and start time from its start) is gone, reaped by its shim, which is stopping what it
        left (SIGTERM, SIGKILL after the grace) before it writes the exit record."""
        proc = self._procs.get(attempt_id)
        return proc is not None and bool(proc.pid) and not is_same_process(proc.pid, proc.pid_start_time)

    def pids(self, attempt_ids: list[int]) -> dict[int, list[int]]:
        """Pids of each attempt: every process below its shim (the task's group, what left it, a container's
        processes under its runtime's monitor) from one scan of /proc; the group's leader when none is found."""
        procs = {a: self._procs[a] for a in attempt_ids if a in self._procs and self._procs[a].pgid}
        if not procs:
            return {}
        kids = children_map()
        out: dict[int, list[int]] = {}
        for aid, info in procs.items():
            found: list[int] = []
            todo = list(kids.get(info.shim_pid, ())) if info.shim_pid else []
            while todo:
                pid = todo.pop()
                found.append(pid)
                todo.extend(kids.get(pid, ()))
            out[aid] = sorted(found) or [info.pgid]
        return out

    def close(self) -> None:
        """Stop watching and let the zygote exit; running shims and tasks go on."""
        self._closing = True
        if self._restart_timer is not None:
            self._restart_timer.cancel()
        if self._orphan_timer is not None:
            self._orphan_timer.cancel()
        for fd, _ in self._shims.values():
            self.loop.remove_reader(fd)
            os.close(fd)
        self._shims.clear()
        self._running_on.clear()
        self._watched.clear()
        for z in [*self._old, *([self._zygote] if self._zygote else [])]:
            if z.pidfd is not None:
                self.loop.remove_reader(z.pidfd)
                os.close(z.pidfd)
                z.pidfd = None
            try:
                self.loop.remove_reader(z.out_fd)
            except Exception:
                pass
            try:
                if z.popen.stdin:
                    z.popen.stdin.close()
            except OSError:
                pass
            try:
                z.popen.wait(timeout=5)
            except subprocess.TimeoutExpired:
                z.popen.kill()
            if z.popen.stdout:
                z.popen.stdout.close()
        self._old.clear()
        self._zygote = None


def _describe_status(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"


def stop_container_processes(marks: Any) -> list[int]:
    """SIGKILL the processes of a container attempt: those carrying its ``marks`` (``proc.json``'s: the attempt's
    run folder, task and number, see :data:`~.shim.ATTEMPT_MARKS`) in a PID namespace below this process's; their
    pids. None or incomplete marks (a ``proc.json`` of an older shim): nothing is done."""
    own = pid_namespace_ids("self")
    if not own or not isinstance(marks, dict) or set(marks) != set(ATTEMPT_MARKS):
        return []
    return stop_carrying({str(k): str(v) for k, v in marks.items()},
                         only=lambda pid: in_nested_namespace(pid, len(own)))


def kill_group(pgid: int | None, sig: int) -> bool:
    """Signal a whole process group (grandchildren included); False when it is gone."""
    if not pgid or pgid <= 1:
        return False
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


def pids_of_groups(pgids: set[int]) -> dict[int, list[int]]:
    """Pids per process group among ``pgids`` (one scan of /proc; empty when none asked)."""
    out: dict[int, list[int]] = {}
    if not pgids:
        return out
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # Fields after the command (which may hold spaces and parentheses): state ppid pgrp ...
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 2 and int(fields[2]) in pgids:
            out.setdefault(int(fields[2]), []).append(int(entry.name))
    return out


def settle_unowned(attempt_dir: str) -> bool:
    """Recovery for a ``starting`` attempt with no shim: claim it as abandoned.

    True when we won the claim (no shim will ever run it); False when a shim
    claimed it first (then ``owner.json`` names that shim).
    """
    Path(attempt_dir).mkdir(parents=True, exist_ok=True)
    return claim(attempt_dir, {ABANDONED: True})


__all__ = ["LocalExecutor", "kill_group", "pids_of_groups", "read_exit", "read_json", "settle_unowned",
           "OWNER", "PROC", "EXIT"]
