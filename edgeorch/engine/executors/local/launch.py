"""Starting the zygote's process, and starting one ahead of the engine that will use it.

Cheap to import (``subprocess`` and :mod:`edgeorch.selfexec` only), so that a
command can start the zygote before it imports the engine: an in-process
``edgeorch run`` spends most of its time importing, and a zygote started
first boots meanwhile on another core instead of after the engine has
started (see :class:`EarlyZygote`).
"""

from __future__ import annotations

import subprocess

from ....errors import EdgeorchError
from ....selfexec import module_argv, module_env


def spawn_zygote() -> subprocess.Popen[bytes]:
    """Start a zygote: its stdin and stdout are the request and reply pipes. Raises OSError when it cannot start.

    It runs this package whatever the working directory holds (:mod:`edgeorch.selfexec`),
    without ``site`` (the standard library and this package are all it needs), in a
    session of its own (a Ctrl-C at the terminal reaches the engine, which stops tasks
    itself), with no descriptor of ours but its pipes.
    """
    argv = module_argv("edgeorch.engine.executors.local.zygote", site=False)
    try:
        return subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True,
                                env=module_env(), close_fds=True)
    except OSError as exc:
        raise LaunchError(exc, argv[0]) from None


class LaunchError(EdgeorchError, OSError):
    """The zygote (the process every task is started from) could not start: the program, the system's words, and
    what to do; exit 77 when the user may not run it. Still an ``OSError`` (what a caller that tries again
    catches). A daemon started as a user who may not run its Python said only
    ``/var/tmp/venv/bin/python3.11: Permission denied``."""

    def __init__(self, exc: OSError, program: str) -> None:
        denied = isinstance(exc, PermissionError)
        super().__init__(
            f"cannot start the task launcher (edgeorch's zygote, which starts every task): {exc.strerror}",
            file=program,
            hint=("this user may not run that Python: keep the environment and its Python where the daemon's user "
                  "can read them (/opt, not root's home: docs/operations.md, \"Install\")" if denied
                  else "is the environment complete? (reinstall edgeorch: docs/operations.md, \"Install\")"))
        self.errno = exc.errno
        self.strerror = exc.strerror
        self.filename = program
        if denied:
            self.exit_code = 77


class EarlyZygote:
    """A zygote started before the engine that will use it: a head start for a command that runs one.

    The :class:`~.executor.LocalExecutor` takes it (:meth:`take`) at its first
    start instead of starting one; a zygote that is never taken (the engine
    failed to start, or uses another executor) is let go by :meth:`discard`:
    its request pipe is closed, so it exits as it does when an engine exits.

    Only where the zygote's place does not depend on what the engine does
    before it starts its own: an engine with a delegated cgroup moves itself
    into a leaf first (:func:`edgeorch.resources.memory.prepare`), and a
    process started before that would stay in the cgroup's root, where the
    kernel then refuses ``+memory``. :meth:`start` says None there.
    """

    def __init__(self, popen: subprocess.Popen[bytes]) -> None:
        self._popen: subprocess.Popen[bytes] | None = popen

    @classmethod
    def start(cls) -> EarlyZygote | None:
        """A zygote started now, or None where one must not start early (a delegated cgroup) or cannot start.

        A failure to start is not reported here: the executor's own start
        tries again and reports it as usual.
        """
        from ....resources.memory import detect

        if detect().enforced:
            return None
        try:
            return cls(spawn_zygote())
        except OSError:
            return None

    @property
    def pid(self) -> int | None:
        """The process's pid while it has not been taken or discarded."""
        return self._popen.pid if self._popen is not None else None

    def take(self) -> subprocess.Popen[bytes] | None:
        """The zygote's process, handed over once (None after that, or after :meth:`discard`)."""
        popen, self._popen = self._popen, None
        return popen

    def discard(self) -> None:
        """Let an untaken zygote go: close its request pipe (it exits at EOF) and reap it. Idempotent."""
        popen = self.take()
        if popen is None:
            return
        for pipe in (popen.stdin, popen.stdout):
            if pipe is not None:
                pipe.close()
        try:
            popen.wait(timeout=5)
        except subprocess.TimeoutExpired:  # pragma: no cover - a zygote ignores nothing but SIGCHLD
            popen.kill()
            popen.wait()
