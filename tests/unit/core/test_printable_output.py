"""Untrusted text on the operator's screen and in the journal: a dropped file's name is shown escaped.

A local user who may drop files chooses their names. Names with control characters are refused, and the
refusal is shown: in `edgeorch inputs`, on the `events` stream, in the daemon's log. Each showed the name
raw: an escape sequence recoloured or cleared the operator's terminal, a newline forged a table row or a
journal record. `textui.printable` is the one rule; tables, event lines and log records use it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgeorch.cli.commands.events import event_fields
from edgeorch.loglevel import PrintableArgs
from edgeorch.textui import printable, render_table

ESC_NAME = "\x1b[2K\x1b[1Agood.csv"  # erase the line, move up: would hide a line of what is shown


@pytest.mark.parametrize("text, shown", [
    ("plain.csv", "plain.csv"),
    ("café 中文 ü.csv", "café 中文 ü.csv"),  # other scripts are text, not escapes
    ("a\nb.csv", "a\\nb.csv"),
    ("tab\t.csv", "tab\\t.csv"),
    (ESC_NAME, "\\x1b[2K\\x1b[1Agood.csv"),
    ("del\x7f", "del\\x7f"),
    ("c1\x85\x9b", "c1\\x85\\x9b"),  # C1 controls: \x9b is a CSI on some terminals
    ("evil\u202egpj.exe", "evil\\u202egpj.exe"),  # a bidi override shows the name reversed
    ("rlm\u200f.csv", "rlm\\u200f.csv"),  # a bidi mark too
    ("a\u2028b\u2029c.csv", "a\\u2028b\\u2029c.csv"),  # line and paragraph separators: splitlines ends lines there
    *[(t, t) for t in ["\U0001f468\u200d\U0001f469", "\u0645\u06cc\u200c\u0634\u0648\u062f"]],  # joiners are text
    ("\udcff\udcfe.csv", "\\xff\\xfe.csv"),  # bytes that are not UTF-8, as os.fsdecode leaves them
])
def test_printable_escapes_controls_overrides_and_stray_bytes_and_keeps_text(text: str, shown: str) -> None:
    assert printable(text) == shown
    assert printable(shown) == shown  # what it gives is printable as it is


def test_a_newline_in_a_cell_cannot_forge_a_table_row() -> None:
    out = render_table(["id", "file", "reason"], [[1, "a\n 2  forged.csv  done", "refused"], [3, ESC_NAME, "refused"]])
    lines = out.splitlines()
    assert len(lines) == 3 and "\x1b" not in out
    assert lines[1].split()[:2] == ["1", "a\\n"] and "\\x1b[2K" in lines[2]


def test_an_event_line_shows_an_unprintable_name_quoted_and_escaped() -> None:
    line = event_fields({"kind": "input", "state": "refused", "file": f"/drop/{ESC_NAME}",
                         "reason": "the name contains control characters"})
    assert "\x1b" not in line
    assert line.startswith('state=refused file="/drop/\\x1b[2K\\x1b[1Agood.csv" reason=')  # as `inputs` shows it
    assert event_fields({"kind": "input", "file": "/drop/café.csv"}) == "file=/drop/café.csv"
    assert event_fields({"kind": "input", "file": "/drop/a\u202eb", "n": [ESC_NAME]}) == \
        'file="/drop/a\\u202eb" n=["\\u001b[2K\\u001b[1Agood.csv"]'


def test_a_log_record_shows_its_text_arguments_escaped_and_leaves_the_others() -> None:
    record = logging.LogRecord("edgeorch.triggers", logging.WARNING, __file__, 1,
                               "input refused: %s: %s (%d bytes, %r)", (Path(f"/drop/a\nINFO forged {ESC_NAME}"),
                                                                        "the name contains control characters", 12,
                                                                        Path("/drop/plain.csv")), None)
    assert PrintableArgs().filter(record) is True
    message = logging.Formatter("%(message)s").format(record)
    assert message == ("input refused: /drop/a\\nINFO forged \\x1b[2K\\x1b[1Agood.csv: the name contains control "
                       "characters (12 bytes, PosixPath('/drop/plain.csv'))")  # a printable path keeps its type


def test_a_table_lines_up_wide_characters_and_combining_marks_by_terminal_columns():
    """A column named `名前` (two columns each on a terminal) or `é` written as e + U+0301 pushed its row out of line:
    widths were counted in characters."""
    from edgeorch.textui import display_width

    out = render_table(["column", "n"], [["名前", 1], ["e\u0301t\u00e9", 22], ["plain", 333]]).splitlines()
    # The first column is 6 terminal columns wide (COLUMN), the second 3: every row ends at column 11.
    assert [display_width(line) for line in out[1:]] == [11, 11, 11], out
    assert [line[-3:] for line in out[1:]] == ["  1", " 22", "333"]
    assert display_width("名前") == 4 and display_width("e\u0301") == 1 and display_width("abc") == 3


def test_a_log_on_a_terminal_keeps_lines_tabs_progress_and_colours_and_nothing_else() -> None:
    """A dropped file echoed by a task cleared the operator's screen, set the window title and wrote the
    clipboard (OSC 52) through `edgeorch logs`."""
    from edgeorch.textui import terminal_safe

    shown = terminal_safe("a\x1b[31mred\x1b[0m\tb\r\n\x1b[2J\x1b[H\x1b]0;pwned\x07\x1b]52;c;Zm9v\x07 ok\x9b\n")
    assert shown == "a\x1b[31mred\x1b[0m\tb\r\n\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\x1b]52;c;Zm9v\\x07 ok\\x9b\n"
    assert terminal_safe("plain\n") == "plain\n"
    # A colour is kept; text concealed (8) or a parameter no terminal needs (21 digits) is not.
    assert terminal_safe("\x1b[38;5;208mo\x1b[0m") == "\x1b[38;5;208mo\x1b[0m"
    assert terminal_safe("\x1b[8mhidden") == "\\x1b[8mhidden"
    assert terminal_safe("\x1b[999999999999999999999m") == "\\x1b[999999999999999999999m"


def test_an_unreadable_state_file_says_so_never_to_move_it_away(tmp_path, monkeypatch) -> None:
    """A reader without access to the state folder was told "restore it from a backup, or move it away to start
    with empty state": advice that loses a good state file, for a permission problem."""
    import os

    import pytest

    from edgeorch.errors import StateError
    from edgeorch.store import Store
    from edgeorch.store import db

    folder = tmp_path / "var"
    folder.mkdir()
    (folder / "edgeorch.db").write_bytes(b"not opened: SQLite fails as it does for a permission")
    real = os.access
    monkeypatch.setattr(db.os, "access", lambda p, mode: False if str(p) == str(folder) else real(p, mode))
    with pytest.raises(StateError) as err:
        Store(folder / "edgeorch.db", readonly=True)
    said = err.value.render()
    assert f"cannot read the state file: {folder} is not open to you (mode" in said, said
    assert "move it away" not in said and "ask through the daemon" in said


def test_a_log_that_cannot_be_read_is_not_said_to_be_missing(tmp_path) -> None:
    """`show` said "(no log)" for a log another user could not read: it was there."""
    import os

    from edgeorch.cli.commands.runs import _tail

    assert _tail(tmp_path / "gone.log", 10) == ["(no log file: removed since, or the attempt never got to make one)"]
    assert _tail(tmp_path, 10)[0].startswith("(cannot read its log: ")
    if os.geteuid() != 0:  # root reads everything
        locked = tmp_path / "locked.log"
        locked.write_text("x\n")
        locked.chmod(0)
        assert "not readable by you" in _tail(locked, 10)[0]


def test_a_long_name_is_shortened_in_the_middle_keeping_its_extension():
    """Found by a tester: one 254-character file name padded every row of `edgeorch inputs` to ~480 columns."""
    from edgeorch.textui import shorten_middle

    assert shorten_middle("short.csv", 60) == "short.csv"
    name = "x" * 250 + ".csv"
    shown = shorten_middle(name, 60)
    assert len(shown) == 60 and shown.startswith("xxx") and shown.endswith("x.csv") and "..." in shown
