"""How many refusals of one peer reach the audit log: the one rate rule for ``permission_denied`` records.

A peer that may not use the socket can still connect in a loop (or, with read
access, ask for ``act`` ops in a loop), and each refusal used to become an
audit record: one peer could grow the state file by megabytes a minute and
push real records out of ``edgeorch audit list``'s view. So per uid, at most
:data:`AUDITED_PER_WINDOW` refusals are recorded in a window of
:data:`WINDOW_S` seconds, the window starting at the uid's first refusal. The
rest are counted, and the count is itself recorded once, as a
:class:`Suppressed` summary ("N more refused requests from uid U"), when the
window has ended: at the uid's next refusal (before that refusal's record), at
the server's flush timer, or when the server closes. So the log still says
every refusal happened, in at most ``AUDITED_PER_WINDOW + 1`` records a window.

Pure bookkeeping on an injected clock (seconds, the daemon's clock): no I/O,
no timers, not thread-safe (the server's event loop owns it).
"""

from __future__ import annotations

from collections.abc import Callable

from ..records import frozen

AUDITED_PER_WINDOW = 10
"""Refusals of one uid recorded per window; more are only counted."""
WINDOW_S = 60.0
"""A uid's window, in seconds of the clock, from its first refusal."""


@frozen
class Suppressed:
    """Refusals of one uid counted but not recorded in one window [``since``, ``until``) of the clock."""

    uid: int
    user: str
    count: int
    since: float
    until: float

    def message(self) -> str:
        """The summary's one line, as the audit record and the log show it."""
        return (f"{self.count} more refused request{'s' if self.count != 1 else ''} from {self.user} "
                f"(uid {self.uid}) suppressed")


class _Window:
    __slots__ = ("start", "user", "recorded", "suppressed")

    def __init__(self, start: float, user: str) -> None:
        self.start = start
        self.user = user
        self.recorded = 0
        self.suppressed = 0


class RefusalLimiter:
    """Decides which refusals are recorded (see the module docstring).

    ``limit`` refusals of a uid per ``window`` seconds of ``clock``. A clock
    that steps back before a window's start ends that window (as if it were over),
    so a wall clock set back never silences a uid for longer than ``window``.
    """

    def __init__(self, *, limit: int = AUDITED_PER_WINDOW, window: float = WINDOW_S,
                 clock: Callable[[], float]) -> None:
        if limit < 1 or window <= 0:
            raise ValueError("a refusal limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.clock = clock
        self._windows: dict[int, _Window] = {}

    def admit(self, uid: int, user: str) -> tuple[list[Suppressed], bool]:
        """Count one refusal of ``uid`` now.

        Returns the summaries of windows that have ended (any uid's: write them
        first, they are older) and whether this refusal is to be recorded. When
        it is not, :meth:`next_end` says when its summary will be due.
        """
        now = self.clock()
        ended = self._take_ended(now)
        win = self._windows.get(uid)
        if win is None:
            win = self._windows[uid] = _Window(now, user)
        if win.recorded < self.limit:
            win.recorded += 1
            return ended, True
        win.suppressed += 1
        return ended, False

    def due(self) -> list[Suppressed]:
        """The summaries of every window that has ended by now (each given once)."""
        return self._take_ended(self.clock())

    def drain(self) -> list[Suppressed]:
        """Every pending summary, ended or not (the server is closing); forgets every window."""
        now = self.clock()
        out = [self._summary(uid, w, max(now, w.start)) for uid, w in self._windows.items() if w.suppressed]
        self._windows.clear()
        return out

    def next_end(self) -> float | None:
        """When the earliest window holding suppressed refusals ends (clock time); None when none does."""
        ends = [w.start + self.window for w in self._windows.values() if w.suppressed]
        return min(ends) if ends else None

    def _take_ended(self, now: float) -> list[Suppressed]:
        out: list[Suppressed] = []
        for uid, win in list(self._windows.items()):
            end = win.start + self.window
            if now >= end or now < win.start:
                del self._windows[uid]
                if win.suppressed:
                    out.append(self._summary(uid, win, min(end, max(now, win.start))))
        return out

    @staticmethod
    def _summary(uid: int, win: _Window, until: float) -> Suppressed:
        return Suppressed(uid=uid, user=win.user, count=win.suppressed, since=win.start, until=until)
