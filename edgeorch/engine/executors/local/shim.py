"""The attempt supervisor ("shim"), forked from the zygote; reused for the next attempt when it can be.

Contract, in order:

1. **Claim** the attempt folder: create ``owner.json`` with ``O_EXCL`` holding
   the shim's pid and start time. Recovery settles a ``starting`` attempt by
   creating the same file ("abandoned"); whoever creates it first wins, so an
   attempt is either run by exactly one shim or never run.
2. Start the task in its own session and process group (``setsid``), pinned
   to the leased CPUs, stdin from /dev/null, stdout+stderr into a pipe.
3. Write ``proc.json`` (task pid, start time, pgid) atomically and tell the
   engine over the reply pipe (best effort: the engine may be gone).
4. Copy the pipe into the log file up to the cap, then a marker line, then
   drain without writing (the task must never block on a full pipe).
5. Wait for the task, then for **every process the attempt started**: the
   shim is a child subreaper (``PR_SET_CHILD_SUBREAPER``), so descendants
   that detach (double fork, ``setsid`` daemons) are re-parented to it and
   stay visible. Once the task itself has exited, what is left of its tree
   gets SIGTERM, and SIGKILL after ``kill_grace`` seconds, until the shim has
   no child left (and, where the attempt has a cgroup v2 folder with
   ``cgroup.kill``, that cgroup is killed as well).
6. If the shim had to stop or kill anything (a stop, or processes left
   behind) and the request has a ``cleanup`` command (a container task: its
   runtime's ``rm --force``), run it: what the attempt holds outside its
   process tree is released before the attempt is reported over.
7. Write ``exit.json`` (temp file, rename) — only when nothing of the
   attempt runs any more. This is the record of truth for the exit status,
   read by the engine now or after a restart; an attempt is settled (and its
   lease released) only after it, so no process of an ended attempt holds
   hardware that is leased again.

Stopping (timeout, cancel, GPU watcher): the engine sends the shim SIGTERM.
The shim forwards SIGTERM to the whole tree at once and SIGKILLs whatever is
still alive ``kill_grace`` seconds later, whatever the task's leader did
(a leader that dies on SIGTERM does not shorten or cancel the kill of a
child that ignores it). A request with ``forwards_stop`` (a container
attempt) has the SIGTERM sent to the container's own processes (a PID
namespace below the shim's), not to the runtime's, while the leader runs,
and to the rest of the tree once the leader has ended (``_Tree.stop``). The
SIGKILL after the grace goes to the container's processes first, and the
runtime's own (client, monitor) get one more grace to end by themselves once
the container has: a monitor killed with it leaves the runtime's record of the
container behind (``_Tree.tick``). ``owner.json`` says ``"stops_tree": true`` so a
newer engine knows it may stop this shim by signal.

8. If it can (see :func:`run_shim`), report the attempt's end on the reply
   pipe and wait for another attempt from the zygote (:func:`serve`); else
   exit. The engine settles the attempt from ``exit.json`` on that message,
   or on the shim's exit (a pidfd), whichever it sees first.

The shim outlives the daemon; it never touches the state file.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import select
import signal
import stat
import sys
import time

from edgeorch.engine.procinfo import descendants, in_nested_namespace, pid_namespace_ids, process_start_time

TYPE_CHECKING = False  # ``typing`` is not imported at run time: the zygote, which imports this, starts sooner
if TYPE_CHECKING:
    from typing import Any

# Not imported here: ``subprocess`` (it imports ``threading``, whose at-fork handler costs every
# fork of the zygote about 0.8 ms of CPU; the task is started with os.posix_spawn instead).

_PR_SET_CHILD_SUBREAPER = 36
try:  # loaded once in the zygote, before any fork
    _libc: Any = ctypes.CDLL(None, use_errno=True)
except OSError:  # pragma: no cover - no libc symbols: fall back to the process group only
    _libc = None

OWNER = "owner.json"
PROC = "proc.json"
EXIT = "exit.json"
ABANDONED = "abandoned"


def write_json_atomically(path: str, data: dict[str, Any], *, sync: bool) -> None:
    """Write ``data`` to ``path`` by temp file + rename, so readers see all or nothing.

    ``sync`` also fsyncs the content before the rename. The shim's records
    must survive the *daemon's* death, which the page cache already ensures,
    so the hot path does not fsync: after a power cut no task survives
    either, and an attempt whose exit record was lost is marked abandoned and
    retried by policy, never reported as succeeded (its outcome was never
    committed to the state file).
    """
    tmp = f"{path}.tmp.{os.getpid()}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        try:
            view = memoryview(json.dumps(data).encode())
            while view:  # write() may take only part (a nearly full disk): the rest, or its error, follows
                view = view[os.write(fd, view):]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp, path)
    except BaseException:  # a full disk: no empty temporary file left in the attempt's folder
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def claim(attempt_dir: str, content: dict[str, Any]) -> bool:
    """Create ``owner.json`` exclusively; False if someone (recovery or a shim) already did."""
    try:
        fd = os.open(os.path.join(attempt_dir, OWNER), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    try:
        # No fsync: the claim only has to be seen by other processes (page cache), not survive power loss.
        os.write(fd, json.dumps(content).encode())
    finally:
        os.close(fd)
    return True


TASK_SCHEDULER: tuple[int, os.sched_param] | None = None
"""The scheduling policy a task is spawned with, when its shim's differs from it (set by the zygote before it
forks shims: they run ``SCHED_BATCH``, their tasks ``SCHED_OTHER``, see ``zygote._batch_scheduling``)."""

MAX_ATTEMPTS = 1000
"""Attempts one shim runs before it exits (bounds what a long-lived Python process may accumulate)."""


def serve(rfd: int, reply_fd: int) -> int:
    """Body of a forked shim: run the attempts the zygote hands over on ``rfd``, one at a time.

    Returns the shim's exit code; never raises. After an attempt it can go
    on with (:func:`run_shim` says so) it reports the attempt's end on the
    reply pipe and waits for the next request, which the zygote sends only
    once the engine has settled that end. It exits at EOF (the zygote is
    gone: the engine stopped or restarted, so nobody would settle a next
    attempt's end from a message; a restarted engine sees this shim's exit
    instead), after an attempt it cannot be reused for, and after
    :data:`MAX_ATTEMPTS`.
    """
    home = os.getcwd()
    cpus = os.sched_getaffinity(0)
    me = os.getpid()
    identity = {"shim_pid": me, "shim_start_time": process_start_time(me)}
    lines = _Lines(rfd)
    for number in range(1, MAX_ATTEMPTS + 1):
        req: dict[str, Any] = {}
        try:
            line = lines.next()
            if line is None:
                return 0
            req = json.loads(line)
            # The last one allowed ends with the shim's exit, not an "ended" message: a shim that said it
            # waits must read its pipe, or a request handed to it would be lost with it.
            if not run_shim(req, reply_fd, identity, reuse=number < MAX_ATTEMPTS):
                return 0
            # What the attempt changed in this process, back as it was for the next one.
            os.chdir(home)
            os.sched_setaffinity(0, cpus)
        except BaseException as exc:  # a shim must never unwind into the zygote's code
            _reply(reply_fd, {"attempt_id": req.get("attempt_id"), "error": _failure(exc, req)})
            return 1
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "ended": True, "shim_pid": me})
    return 0  # pragma: no cover - the last attempt returns above


def _failure(exc: BaseException, req: dict[str, Any]) -> str:
    """Why this shim failed, in words: an OS error's own text and the path it names, else the attempt's folder (a
    full disk under the runs folder said ``shim failed: OSError(28, 'No space left on device')``, no path)."""
    if isinstance(exc, OSError) and exc.strerror:
        where = exc.filename or req.get("attempt_dir")
        return f"the attempt's supervisor failed: {exc.strerror}" + (f" ({where})" if where else "")
    return f"the attempt's supervisor failed: {exc!r}"


class _Lines:
    """Lines read from a pipe (a request may be longer than one read)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.buf = b""

    def next(self) -> bytes | None:
        """The next line; None at EOF."""
        while b"\n" not in self.buf:
            chunk = os.read(self.fd, 1 << 16)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line


def run_shim(req: dict[str, Any], reply_fd: int, identity: dict[str, Any] | None = None, *, reuse: bool = True) -> bool:
    """Run one attempt under this shim; True when the shim may run another one afterwards.

    ``identity`` is the shim's ``shim_pid`` and ``shim_start_time`` (None:
    read now). ``reuse`` False (a one-attempt supervisor, as on a Ray node)
    or an attempt the shim cannot be reused after lets go of the reply pipe
    once the start is reported, so whoever reads it sees EOF when the task
    is running. Not reusable: an attempt that never started (its error is
    reported), one that joined a cgroup (the shim is a member and cannot
    leave it cleanly on every setup) or has a cleanup command (a container:
    its runtime's state is the shim's to release).
    """
    if identity is None:
        identity = {"shim_pid": os.getpid(), "shim_start_time": process_start_time(os.getpid())}
    reuse = reuse and not (req.get("cgroup") or req.get("cleanup"))
    attempt_dir = os.path.abspath(req["attempt_dir"])  # the shim enters the task's workdir to start it
    # First of all: from the claim on, a SIGTERM from the engine means "stop the attempt", never "die".
    # A pipe of this attempt's own: a stop meant for an earlier attempt cannot reach this one.
    wake_r, wake_w = os.pipe()
    _become_reaper(wake_w)
    try:
        # Folders are made here, off the engine's loop (metadata writes are slow on some disks).
        for folder in (attempt_dir, *req.get("mkdirs", ())):
            _make_folder(folder)
    except OSError as exc:
        _reply(reply_fd, {"attempt_id": req["attempt_id"], **_prepare_error(f"cannot create {exc.filename}", exc)})
        return False
    if not claim(attempt_dir, {**identity, "attempt_id": req["attempt_id"], "stops_tree": True}):
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": "attempt already settled (abandoned by recovery)"})
        return False
    try:
        log_fd = os.open(req["log_path"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as exc:
        write_json_atomically(os.path.join(attempt_dir, EXIT), {"exit_code": 127, "signal": None, "finished_at": time.time(),
                                                                "error": f"cannot open log file: {exc}"}, sync=True)
        _reply(reply_fd, {"attempt_id": req["attempt_id"],
                          **_prepare_error(f"cannot open the log file {exc.filename}", exc)})
        return False
    rfd, wfd = os.pipe()
    try:
        pid = _spawn_task(req, wfd)
    except (OSError, ValueError) as exc:  # ValueError: a NUL in an argument or a value of the environment (a param)
        os.close(wfd)
        os.close(rfd)
        argv0 = req["argv"][0] if req.get("argv") else "?"
        if isinstance(exc, ValueError):  # charged like a program that cannot run: relaunched, it fails the same
            what, why = f"cannot execute {argv0!r}", f"{exc} (a NUL character in its command or environment)"
        else:
            what = (f"cannot enter workdir {req['cwd']}" if exc.filename == req.get("cwd")
                    else f"cannot execute {argv0!r}")
            why = exc.strerror or str(exc)
        _write_all(log_fd, f"edgeorch: {what}: {why}\n".encode())
        os.close(log_fd)
        result = {"exit_code": 127, "signal": None, "finished_at": time.time(), "error": f"{what}: {why}"}
        write_json_atomically(os.path.join(attempt_dir, EXIT), result, sync=True)
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "error": result["error"], "exit_code": 127})
        return False
    os.close(wfd)
    start = process_start_time(pid)
    proc: dict[str, Any] = {"pid": pid, "pid_start_time": start, "pgid": pid, "started_at": time.time()}
    if req.get("cleanup"):  # for whoever settles the attempt if this shim vanishes (LocalExecutor.settle)
        proc["cleanup"] = list(req["cleanup"])
        # What the container's processes carry, to find them then: they are no descendants of the task's group.
        proc["marks"] = {k: req["env"][k] for k in ATTEMPT_MARKS if k in req.get("env", {})}
    try:
        write_json_atomically(os.path.join(attempt_dir, PROC), proc, sync=False)
    except OSError as exc:
        # The task runs already (a full disk, filled by it or beside it): this shim goes on supervising it, and the
        # engine learns of it from the reply below. Raising here left the task running with no supervisor while
        # the engine relaunched it: the same task twice. Only a recovery after the shim itself vanished loses the
        # record of its process (and cannot stop it).
        with contextlib.suppress(OSError):  # the log's disk may be the full one
            _write_all(log_fd, f"edgeorch: cannot record the task's process ({exc.strerror or exc}); it runs on\n"
                       .encode())
    _reply(reply_fd, {"attempt_id": req["attempt_id"], **identity, "stops_tree": True, **proc})
    if not reuse:
        _let_go(reply_fd)
    tree = _Tree(identity["shim_pid"], pid, float(req.get("kill_grace", 10.0)), req.get("cgroup"),
                 forwards=bool(req.get("forwards_stop")))
    truncated, status = _supervise(rfd, wake_r, log_fd, int(req.get("log_max_bytes", 0)), tree)
    signal.set_wakeup_fd(-1)  # the loop is over: a late signal (a cleanup's SIGCHLD, a stop) must not write there
    os.close(wake_w)
    if req.get("cleanup") and tree.deadline is not None:
        run_cleanup(req["cleanup"])
    code = os.waitstatus_to_exitcode(status)
    result = {
        "exit_code": code if code >= 0 else None,
        "signal": -code if code < 0 else None,
        "finished_at": time.time(),
        "log_truncated": truncated,
    }
    os.close(log_fd)
    try:
        write_json_atomically(os.path.join(attempt_dir, EXIT), result, sync=False)
    except OSError as exc:
        # A full disk under the runs folder: the task ended, only its record cannot be written. The live engine
        # records the status from this message (its state file may have room); this shim exits, so that one
        # that is not heard (an engine away) reads as lost, as before. Without it a task that exited 0 was
        # "the attempt's supervisor vanished without an exit record".
        _reply(reply_fd, {"attempt_id": req["attempt_id"], "exit_record": result,
                          "error": f"cannot write its exit record {exc.filename or EXIT}: {exc.strerror or exc}"})
        return False
    return reuse


PASSING_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EMFILE, errno.ENFILE, errno.ENOMEM,
                            errno.EAGAIN, errno.EINTR})
"""Errors preparing an attempt that may pass by themselves (a full disk, descriptors or memory short): the attempt is
lost to edgeorch's machinery and relaunched free. Any other (a file where a folder goes, a folder it may not
write) stays until someone acts, and is charged as the attempt's failure (retries with backoff, then the task
fails saying why): relaunched at once, it was ten "lost" attempts in 0.3 s blaming the launcher."""


def _prepare_error(what: str, exc: OSError) -> dict[str, Any]:
    """The reply for an attempt the shim could not prepare: ``error`` (what, and the system's words) and, for an
    error that does not pass by itself (:data:`PASSING_ERRNOS`), ``charged``."""
    why = exc.strerror or str(exc)
    if exc.errno in (errno.EEXIST, errno.ENOTDIR) and why == os.strerror(exc.errno):
        why += " (something that is not a folder stands where a folder of the attempt goes)"
    if exc.errno in PASSING_ERRNOS:
        return {"error": f"{what}: {why}"}
    return {"error": f"cannot prepare the attempt: {what}: {why}", "charged": True}


def _make_folder(path: str) -> None:
    """``os.makedirs(path, exist_ok=True)`` in one ``mkdir`` when its parent exists (every attempt's folders but a
    run's first): makedirs looks at each parent first. Raises OSError as makedirs does (a file in the way), and for
    a symbolic link in the folder's place (makedirs takes one to a folder as the folder)."""
    try:
        os.mkdir(path)
    except FileExistsError:
        if os.path.islink(path):  # the task would write through it, wherever it points: never followed
            raise FileExistsError(errno.EEXIST, "a symbolic link stands where a folder of the attempt goes (links "
                                  "there are never followed)", path) from None
        if not os.path.isdir(path):
            raise
    except FileNotFoundError:
        os.makedirs(path, exist_ok=True)


ATTEMPT_MARKS = ("EDGEORCH_RUN_DIR", "EDGEORCH_TASK", "EDGEORCH_ATTEMPT")
"""The task variables that together name one attempt (its run's folder, task and number), inherited by each of
its processes, a container's included (``proc.json``'s ``marks``)."""


CLEANUP_TIMEOUT_S = 60.0
"""The longest a cleanup command may take (a container runtime waiting for its storage lock)."""


def run_cleanup(argv: list[str], *, wait: bool = True) -> None:
    """Run an attempt's cleanup command, its output discarded; never raises (it is never the task's failure).

    ``wait`` False starts it in its own session and returns at once (the
    executor on the engine's loop); True waits up to :data:`CLEANUP_TIMEOUT_S`.
    """
    import subprocess  # only here: see the imports at the top

    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True, close_fds=True, restore_signals=True)
    except OSError:
        return
    if not wait:
        # Waited for in a thread of its own: the caller's loop goes on, and the command is reaped when it ends (it
        # lingered as the daemon's zombie until a later Popen) and bounded like a waited one.
        import threading

        threading.Thread(target=_wait_cleanup, args=(proc,), daemon=True, name="edgeorch-cleanup").start()
        return
    _wait_cleanup(proc)


def _wait_cleanup(proc: Any) -> None:
    """Wait for a cleanup command at most :data:`CLEANUP_TIMEOUT_S`, then kill it."""
    import subprocess

    try:
        proc.wait(timeout=CLEANUP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _spawn_task(req: dict[str, Any], wfd: int) -> int:
    """Start the task in its own session; returns its pid. Raises OSError when it cannot start.

    ``os.posix_spawn`` (glibc: ``clone(CLONE_VM | CLONE_VFORK)`` + exec, the
    exec's error returned to us) with what ``subprocess.Popen(...,
    start_new_session=True, close_fds=True, restore_signals=True)`` did, for
    less CPU and without importing ``subprocess`` into the zygote:

    - the program is looked up on the ``PATH`` of the task's environment (as
      ``execvpe``, see :func:`_find_program`);
    - the working directory: ``posix_spawn`` has none, so the shim enters it
      itself first (its own working directory is never used again; a missing
      one raises OSError naming it);
    - stdin from /dev/null, stdout and stderr into ``wfd``; every other file
      descriptor of the shim is close-on-exec (Python opens them so, and the
      zygote starts with only 0, 1 and 2), so the task inherits none;
    - a new session (``setsid``); SIGPIPE and SIGXFSZ, which Python ignores,
      back at their defaults (signals the shim handles are reset by exec).

    Pinning is applied to the shim itself first and inherited by the task and
    all its descendants; so is the cgroup. The scheduling policy is not: the
    task gets :data:`TASK_SCHEDULER` back (the shim runs ``SCHED_BATCH``).
    """
    cpus = req.get("cpus")
    if cpus:
        os.sched_setaffinity(0, cpus)
    cgroup = req.get("cgroup")
    if cgroup:
        # Joined by the shim itself, like the affinity: the task and its descendants
        # inherit the cgroup, so memory.max covers the whole process tree.
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write("0\n")
    argv = req["argv"]
    os.chdir(req["cwd"])
    # The dup2s first: wfd itself may be a low number (the shim's fd 0 is closed).
    actions = [(os.POSIX_SPAWN_DUP2, wfd, 1), (os.POSIX_SPAWN_DUP2, wfd, 2),
               (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0)]
    program = _find_program(argv[0], req["env"])
    sigdef = (signal.SIGPIPE, signal.SIGXFSZ)
    # (``scheduler=None`` is refused by Python 3.11's posix_spawn: the argument is passed only when set.)
    if TASK_SCHEDULER is None:
        return os.posix_spawn(program, argv, req["env"], file_actions=actions, setsid=True, setsigdef=sigdef)
    return os.posix_spawn(program, argv, req["env"], file_actions=actions, setsid=True, setsigdef=sigdef,
                          scheduler=TASK_SCHEDULER)


def _find_program(program: str, env: dict[str, str]) -> str:
    """The file ``program`` names: itself when it holds a slash, else the first executable file of that name in
    a folder of the task's ``PATH`` (``execvpe``'s order). Raises FileNotFoundError, or PermissionError when
    only files that cannot be executed (or folders) carry the name.

    Looked up with ``stat``/``access`` here, not by trying ``posix_spawn`` on each candidate: every try
    is a process clone, and ``PATH`` often has several folders before the one that has the program.
    """
    if os.sep in program:
        return program
    denied = None
    for folder in os.get_exec_path(env):
        path = os.path.join(folder, program)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not stat.S_ISDIR(st.st_mode) and os.access(path, os.X_OK):
            return path
        denied = denied or path
    if denied is not None:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), denied)
    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), program)


def _become_reaper(wake_w: int) -> None:
    """Make this shim the reaper of every orphan below it; SIGCHLD and SIGTERM wake its loop via ``wake_w``.

    Python handlers (not SIG_DFL/SIG_IGN) are reset to the default by exec,
    so the task starts with ordinary signal dispositions.
    """
    if _libc is not None:
        _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.signal(signal.SIGTERM, lambda *_: None)


class _Tree:
    """The processes of one attempt: the task (``leader``) and every descendant of the shim."""

    def __init__(self, shim: int, leader: int, grace: float, cgroup: str | None, *, forwards: bool = False) -> None:
        self.shim = shim
        self.leader = leader
        self.grace = grace
        self.cgroup = cgroup
        self.forwards = forwards  # the leader forwards a stop's SIGTERM (a container's client): see stop()
        self.status: int | None = None  # the leader's wait status, once reaped
        self.deadline: float | None = None  # when the SIGKILLs start
        self.termed: str | None = None  # who has had the stop's SIGTERM: None, "leader" or "all"
        self.killing = False
        self.spare_until: float | None = None  # a container's: its runtime's processes are not killed before

    def reap(self) -> bool:
        """Collect exited children (the leader's status kept); True when the shim has no child left."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            except InterruptedError:
                continue
            if pid == 0:
                return False
            if pid == self.leader:
                self.status = status

    def signal_all(self, sig: int) -> None:
        """Send ``sig`` once to every descendant of the shim (and the task's group while its leader is unreaped).

        Once each: a process of the group the ``killpg`` reached is not signalled again (a task counting its
        SIGTERMs, a shell trap, took a second one for "force quit" and skipped its checkpoint); a descendant that
        left the group (``setsid``, its own ``setpgid``) gets its own ``kill``."""
        grouped = False
        if self.status is None:
            try:
                os.killpg(self.leader, sig)  # the pgid cannot be reused while the leader is unreaped
                grouped = True
            except OSError:
                pass
        for pid in descendants(self.shim):
            try:
                if grouped and os.getpgid(pid) == self.leader:
                    continue
                os.kill(pid, sig)
            except OSError:
                pass
        if sig == signal.SIGKILL and self.cgroup:
            try:  # cgroup v2 (5.14+): kills every member, even one that left the tree
                with open(os.path.join(self.cgroup, "cgroup.kill"), "w") as f:
                    f.write("1")
            except OSError:
                pass

    def stop(self) -> None:
        """SIGTERM to everything now, SIGKILL at the end of the grace period (never later than already set).

        The one place an attempt's processes get their SIGTERM (a stop, or what the task left behind once it
        has ended: called again then). With ``forwards`` (a container attempt) the SIGTERM goes to the
        container's processes (:meth:`_term_container_processes`), or to the leader (the runtime's client,
        ``--sig-proxy=true``, forwards it) while the container has none, and to the rest only once the leader
        has ended. Signalled directly, the runtime's processes could end before the container: the client, or
        the monitor relaying the container's output to it, taking the container's last lines with them; the
        ``runc kill`` helper the client starts to forward a signal, taking the signal with it. The SIGKILL at
        the deadline still reaches everything.
        """
        if self.forwards and self.status is None:
            if self.termed is None:
                if not self._term_container_processes():
                    try:  # no container process yet (or --pid=host): the client forwards it (--sig-proxy=true)
                        os.kill(self.leader, signal.SIGTERM)  # not its group: the forwarding helper is in it
                    except OSError:
                        pass
                self.termed = "leader"
        elif self.termed != "all":
            self.signal_all(signal.SIGTERM)
            self.termed = "all"
        if self.deadline is None:
            self.deadline = time.monotonic() + self.grace

    def _term_container_processes(self) -> bool:
        """SIGTERM to every process of the container, its PID 1 included; False when there is none to signal.

        They live in a PID namespace nested below the shim's (``NSpid``); the runtime's own processes (the
        client, the monitor relaying the container's output) live in the shim's and are not signalled, so they
        outlive the container: its last output reaches the log and the client ends with its code. Signalled
        from here as ``podman kill`` would (PID 1 only if it handles SIGTERM, as the kernel has it), and every
        other process of the container too, as a host task's whole tree: ``sh -c "python train.py"`` stops
        as on the host, python getting the SIGTERM its checkpoint handler waits for.
        """
        return self._signal_container(signal.SIGTERM)

    def _signal_container(self, sig: int) -> bool:
        """Send ``sig`` to every process of the container (those in a PID namespace nested below the shim's);
        False when there is none."""
        own = pid_namespace_ids("self")
        if not own:
            return False
        sent = False
        for pid in descendants(self.shim):
            if in_nested_namespace(pid, len(own)):
                try:
                    os.kill(pid, sig)
                    sent = True
                except OSError:
                    pass
        return sent

    def timeout(self) -> float | None:
        """How long the loop may wait for an event; None: until one comes."""
        if self.killing:
            if self.spare_until is not None and time.monotonic() < self.spare_until:
                return 0.1  # the runtime ending by itself: its children's exits wake the loop (SIGCHLD)
            return 0.02  # keep killing what re-parenting brings up until nothing is left
        if self.deadline is None:
            return None
        return max(self.deadline - time.monotonic(), 0.0)

    def tick(self) -> None:
        """At and after the deadline: SIGKILL. A container attempt's first go to the container's processes, and
        the runtime's own (client, monitor) are spared one more grace period to end by themselves once the
        container has (a monitor killed with the container leaves the runtime's record of it behind, which its
        ``rm --force`` does not remove); then, or at once when the container has no process to kill (never
        started, ``--pid=host``), everything below the shim."""
        now = time.monotonic()
        if self.deadline is not None and now >= self.deadline:
            self.killing = True
        if not self.killing:
            return
        if self.forwards:
            if self._signal_container(signal.SIGKILL) and self.spare_until is None:
                self.spare_until = now + self.grace
            if self.spare_until is not None and now < self.spare_until:
                return
        self.signal_all(signal.SIGKILL)


def _supervise(rfd: int, wake_r: int, log_fd: int, cap: int, tree: _Tree) -> tuple[bool, int]:
    """Copy task output to the log while the attempt's processes live; returns (truncated, leader's status).

    Returns only when the leader has exited and the shim has no child left
    (see the module docstring); then the pipe is drained of what is buffered.
    """
    log = _LogCopy(log_fd, cap)
    watch = [rfd, wake_r]
    os.set_blocking(wake_r, False)
    while True:
        try:
            ready, _, _ = select.select(watch, [], [], tree.timeout())
        except InterruptedError:
            continue
        if wake_r in ready:
            try:
                woke = os.read(wake_r, 4096)
            except BlockingIOError:
                woke = b""
            if signal.SIGTERM in woke:
                tree.stop()
        if rfd in ready and rfd in watch:
            if not log.copy_once(rfd):
                watch.remove(rfd)
        none_left = tree.reap()
        if tree.status is not None and none_left:
            break
        if tree.status is not None:
            tree.stop()  # the task is over: what it left behind goes too
        tree.tick()
    if rfd in watch:
        os.set_blocking(rfd, False)
        while log.copy_once(rfd):
            pass
    log.finish()
    os.close(rfd)
    os.close(wake_r)
    assert tree.status is not None
    return log.truncated, tree.status


TAIL_MAX = 64 * 1024
"""At most this much of a capped log's end is kept (a quarter of the cap when that is less)."""


class _LogCopy:
    """The task's output into the log file, within ``cap`` bytes (0: no cap): its start, and its end.

    Past ``cap - tail`` bytes the output goes to a ring of the last ``tail`` bytes instead (``tail`` is
    :data:`TAIL_MAX`, or a quarter of the cap when that is less), after one marker line said where it was
    cut; :meth:`finish` writes that end after a second marker counting what was dropped. The end of a log is
    where a crash says why (a traceback's last line, ``disk full``): a cap that kept only the start lost it.
    """

    def __init__(self, log_fd: int, cap: int) -> None:
        self.log_fd = log_fd
        self.cap = cap
        self.tail_max = min(TAIL_MAX, cap // 4) if cap else 0
        self.head_max = cap - self.tail_max
        self.written = 0
        self.truncated = False
        self.tail = bytearray()
        self.dropped = 0  # bytes past the head that are not in ``tail`` any more

    def copy_once(self, rfd: int) -> bool:
        """Copy one chunk; False at EOF (or nothing more buffered on a non-blocking pipe)."""
        try:
            chunk = os.read(rfd, 1 << 16)
        except BlockingIOError:
            return False
        except InterruptedError:
            return True
        if not chunk:
            return False
        if self.cap and (self.truncated or self.written + len(chunk) > self.head_max):
            if not self.truncated:
                keep = max(self.head_max - self.written, 0)
                _write_all(self.log_fd, chunk[:keep])
                self.written += keep
                chunk = chunk[keep:]
                _write_all(self.log_fd, f"\n[edgeorch: log cap of {self.cap} bytes reached; the output's last "
                                        f"{self.tail_max} bytes are kept and written when the task ends]\n".encode())
                self.truncated = True
            self.tail += chunk
            if len(self.tail) > self.tail_max:
                cut = len(self.tail) - self.tail_max
                self.dropped += cut
                del self.tail[:cut]
            return True
        _write_all(self.log_fd, chunk)
        self.written += len(chunk)
        return True

    def finish(self) -> None:
        """After the last output: a capped log's kept end, from its first whole line, after a count of the rest."""
        if not self.truncated:
            return
        tail = bytes(self.tail)
        cut = tail.find(b"\n", 0, max(len(tail) // 4, 1)) if self.dropped else -1
        if 0 <= cut < len(tail) - 1:  # from a line's start (a cut line reads as garbage), if one starts early on:
            self.dropped += cut + 1  # binary output or one long line keeps its whole tail
            tail = tail[cut + 1:]
        _write_all(self.log_fd, f"[edgeorch: {self.dropped} bytes of output dropped here; its last {len(tail)} "
                                f"bytes follow]\n".encode() + tail)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            n = os.write(fd, view)
        except InterruptedError:
            continue
        except OSError:
            # Disk full, quota, an I/O error on a failing card: drop log output. Raising would unwind
            # the shim, which would then die without an exit record and leave the task orphaned.
            return
        view = view[n:]


def _let_go(fd: int) -> None:
    """Stop holding the reply pipe open; the descriptor number stays valid (on /dev/null), so a late
    :func:`_reply` cannot write into a file that reused it."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    try:
        os.dup2(null, fd, inheritable=False)
    except OSError:
        pass
    os.close(null)


def _reply(fd: int, msg: dict[str, Any]) -> None:
    """One JSON line to the engine; atomic (< PIPE_BUF) and best effort."""
    if fd < 0:
        return
    try:
        os.write(fd, (json.dumps(msg) + "\n").encode())
    except OSError:
        pass  # the engine went away; it will read proc.json / exit.json when it comes back


if __name__ == "__main__":  # pragma: no cover - run via the zygote
    sys.exit("edgeorch.engine.executors.local.shim is started by the zygote, not directly")
