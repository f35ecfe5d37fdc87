"""A problem that a periodic check finds again and again, logged when it starts, changes and ends (not each time).

A daemon's 2-second path check that cannot make its lock file or socket again (a link put at its place, a folder
it may not write) would otherwise log the same error 43,200 times a day, burying everything else in the journal.
"""

from __future__ import annotations

import logging


class Repeats:
    """The problems now standing, by key; each is logged once while it stays the same.

    :meth:`problem` logs at ERROR the first time a key has a problem and when its text changes; :meth:`over`
    logs at INFO once that it has cleared (only when one was said). Pure bookkeeping: the caller still acts.
    """

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._standing: dict[str, str] = {}

    def problem(self, key: str, text: str) -> None:
        if self._standing.get(key) != text:
            self._standing[key] = text
            self._log.error("%s (said once: checked again every few seconds; a line follows when it clears)", text)

    def over(self, key: str, text: str) -> None:
        if self._standing.pop(key, None) is not None:
            self._log.info("%s", text)
