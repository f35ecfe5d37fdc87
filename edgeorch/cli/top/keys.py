"""Keys of ``edgeorch top``: terminal bytes -> key names, and what each key does to the view (pure).

:func:`decode` reads what a terminal in cbreak mode sends (arrows are escape
sequences); :func:`on_key` moves the cursor, asks for a confirmation, or
returns the :class:`Action` the screen must carry out through an op. Keys:

====================  =====================================================
``↑``/``k``, ``↓``/``j``  move the cursor (tasks, then recent runs)
``g`` / ``G``            first / last row
``l`` or Enter           show the selected task's log (live); ``q``/Esc closes it
``c``                    cancel the selected run (asks ``y``/``n``)
``p``                    pause the selected pipeline, or resume it if paused
``q``                    quit (Ctrl-C too)
====================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass

from ...records import frozen
from .model import Item

SEQUENCES = {
    b"\x1b[A": "up", b"\x1bOA": "up", b"\x1b[B": "down", b"\x1bOB": "down",
    b"\x1b[H": "home", b"\x1bOH": "home", b"\x1b[1~": "home", b"\x1b[F": "end", b"\x1bOF": "end", b"\x1b[4~": "end",
    b"\x1b[5~": "pageup", b"\x1b[6~": "pagedown", b"\x1b[C": "right", b"\x1b[D": "left",
}
HELP = "↑↓/jk move · l logs · c cancel run · p pause/resume pipeline · q quit"


def decode(data: bytes) -> list[str]:
    """Key names in ``data``: a printable character is itself, arrows ``up``/``down``..., ``enter``, ``escape``.

    A lone ESC (nothing follows in the same read) is ``escape``; an escape
    sequence that is not known is dropped whole, never read as letters.
    """
    keys: list[str] = []
    i = 0
    while i < len(data):
        if data[i] == 0x1B:
            for seq, name in SEQUENCES.items():
                if data.startswith(seq, i):
                    keys.append(name)
                    i += len(seq)
                    break
            else:
                if i + 1 == len(data) or data[i + 1] not in b"[O":
                    keys.append("escape")
                    i += 1
                else:  # an unknown CSI/SS3 sequence: skip to its final byte
                    j = i + 2
                    while j < len(data) and not 0x40 <= data[j] <= 0x7E:
                        j += 1
                    i = j + 1
            continue
        ch = data[i]
        i += 1
        if ch in (0x0D, 0x0A):
            keys.append("enter")
        elif 0x20 <= ch < 0x7F:
            keys.append(chr(ch))
    return keys


@frozen
class Action:
    """Something the screen does through an op (or ``quit``): ``kind`` and what it applies to."""

    kind: str
    """quit | logs | close_logs | cancel | pause | resume"""
    item: Item | None = None


@dataclass
class ViewState:
    """The view's own state between refreshes: cursor, an action waiting for y/n, the open log, a message."""

    cursor: Item | None = None
    index: int = 0
    confirm: Action | None = None
    logs: Item | None = None
    message: str = ""


def reconcile(state: ViewState, items: list[Item]) -> None:
    """Keep the cursor on the same row across refreshes; when its row is gone, on the row now at its place."""
    if state.cursor in items:
        state.index = items.index(state.cursor)  # type: ignore[arg-type]
    elif items:
        state.index = min(state.index, len(items) - 1)
        state.cursor = items[state.index]
    else:
        state.cursor, state.index = None, 0


def on_key(state: ViewState, key: str, items: list[Item], paused: frozenset[str]) -> Action | None:
    """Apply ``key`` to ``state``; returns the action to carry out, if any."""
    if state.confirm is not None:
        action, state.confirm = state.confirm, None
        if key in ("y", "Y"):
            return action
        state.message = "not cancelled"
        return None
    if key in ("q", "escape") and state.logs is not None:
        return Action("close_logs")
    if key == "q":
        return Action("quit")
    if key == "escape":
        state.message = ""
        return None
    moves = {"down": 1, "j": 1, "up": -1, "k": -1, "pagedown": 10, "pageup": -10}
    if key in moves or key in ("g", "home", "G", "end"):
        if items:
            if key in ("g", "home"):
                state.index = 0
            elif key in ("G", "end"):
                state.index = len(items) - 1
            else:
                state.index = max(0, min(len(items) - 1, state.index + moves[key]))
            state.cursor = items[state.index]
        return None
    if key in ("l", "enter", "c", "p") and state.cursor is None:
        state.message = "nothing selected"
        return None
    item = state.cursor
    if key in ("l", "enter"):
        return Action("logs", item)
    if key == "c":
        assert item is not None
        state.confirm = Action("cancel", item)
        state.message = f"cancel run {item.run_id} ({item.pipeline})? y/n"
        return None
    if key == "p":
        assert item is not None
        return Action("resume" if item.pipeline in paused else "pause", item)
    return None
