"""``last_log_line``: the line a failed task's reason quotes (pure reading of a real file)."""

from __future__ import annotations

import pytest

from edgeorch.engine.files import last_log_line


@pytest.mark.parametrize("content, expected", [
    (b"", None),
    (b"\n \n\t\n", None),
    (b"hello\nworld\n", "world"),
    (b"a\n\x1b[31mred error\x1b[0m\n  \n", "red error"),
    (b"x\r\nTraceback (most recent call last):\r\nValueError: bad\r\n", "ValueError: bad"),
    (b"\x1b]0;a title\x07ok line\x00with\x07controls\n", "ok line with controls"),
    (b"progress 10%\rprogress 100%\rdone", "done"),
    (b"\xff\xfe not utf-8: \xe9t\xe9\n", "\\xff\\xfe not utf-8: \\xe9t\\xe9"),  # which bytes (was U+FFFD)
    (b"\xc2\x9b31m C1 control\n", "31m C1 control"),
    (b"edgeorch: error: agee: no such column\n  hint: did you mean 'age'?\n",
     "edgeorch: error: agee: no such column (hint: did you mean 'age'?)"),  # the error, not its hint alone
], ids=["empty", "blank", "plain", "colours", "crlf-traceback", "title-and-controls", "carriage-returns",
        "not-utf8", "c1-csi", "error-and-hint"])
def test_last_line(tmp_path, content, expected):
    path = tmp_path / "output.log"
    path.write_bytes(content)
    assert last_log_line(path) == expected


def test_a_long_line_is_cut_and_a_huge_log_read_from_its_end(tmp_path):
    path = tmp_path / "output.log"
    with open(path, "wb") as f:
        f.write(b"x" * (8 << 20) + b"\n" + b"y" * 500 + b"\n")
    line = last_log_line(path, limit=50)
    assert line == "y" * 47 + "..."


def test_a_missing_log_quotes_nothing(tmp_path):
    assert last_log_line(tmp_path / "nope.log") is None
