"""``edgeorch top``'s keys (edgeorch/cli/top/keys.py): bytes to key names, and what each key does."""

from __future__ import annotations

import pytest

from edgeorch.cli.top.keys import ViewState, decode, on_key, reconcile
from edgeorch.cli.top.model import Item

ITEMS = [Item(5, "train", "fit"), Item(6, "etl", "load"), Item(4, "etl")]


@pytest.mark.parametrize("data, keys", [
    (b"j", ["j"]), (b"\x1b[A\x1b[B", ["up", "down"]), (b"\x1bOA", ["up"]), (b"\x1b", ["escape"]),
    (b"\r", ["enter"]), (b"\n", ["enter"]), (b"\x1b[5~G", ["pageup", "G"]),
    (b"\x1b[1;5Aq", ["q"]),  # an unknown sequence (Ctrl-Up) is dropped whole, not read as letters
    (b"\x07", []),  # a control character that means nothing here
])
def test_decode_reads_keys_and_escape_sequences(data, keys):
    assert decode(data) == keys


def test_the_cursor_moves_and_stops_at_both_ends():
    s = ViewState()
    reconcile(s, ITEMS)
    assert s.cursor == ITEMS[0]
    for key, expected in (("k", 0), ("j", 1), ("down", 2), ("j", 2), ("g", 0), ("G", 2), ("up", 1)):
        on_key(s, key, ITEMS, frozenset())
        assert s.cursor == ITEMS[expected], key


def test_the_cursor_stays_on_its_row_across_refreshes_and_moves_to_the_next_when_it_goes():
    s = ViewState()
    reconcile(s, ITEMS)
    on_key(s, "j", ITEMS, frozenset())
    reconcile(s, [Item(9, "new", "x"), *ITEMS])  # a new row above: the cursor follows its row
    assert s.cursor == ITEMS[1] and s.index == 2
    reconcile(s, [ITEMS[0], ITEMS[2]])  # its row is gone: the row now at its place
    assert s.cursor == ITEMS[2]
    reconcile(s, [])
    assert s.cursor is None


def test_cancel_asks_first_and_only_y_confirms():
    s = ViewState()
    reconcile(s, ITEMS)
    assert on_key(s, "c", ITEMS, frozenset()) is None
    assert s.message == "cancel run 5 (train)? y/n"
    assert on_key(s, "n", ITEMS, frozenset()) is None and s.message == "not cancelled"
    on_key(s, "c", ITEMS, frozenset())
    action = on_key(s, "y", ITEMS, frozenset())
    assert action is not None and (action.kind, action.item) == ("cancel", ITEMS[0])


def test_p_pauses_a_running_pipeline_and_resumes_a_paused_one():
    s = ViewState()
    reconcile(s, ITEMS)
    assert on_key(s, "p", ITEMS, frozenset()).kind == "pause"  # type: ignore[union-attr]
    assert on_key(s, "p", ITEMS, frozenset({"train"})).kind == "resume"  # type: ignore[union-attr]


def test_logs_open_on_l_or_enter_and_q_closes_them_before_it_quits():
    s = ViewState()
    reconcile(s, ITEMS)
    assert on_key(s, "enter", ITEMS, frozenset()).kind == "logs"  # type: ignore[union-attr]
    s.logs = ITEMS[0]
    assert on_key(s, "q", ITEMS, frozenset()).kind == "close_logs"  # type: ignore[union-attr]
    s.logs = None
    assert on_key(s, "q", ITEMS, frozenset()).kind == "quit"  # type: ignore[union-attr]


def test_acting_with_nothing_selected_says_so():
    s = ViewState()
    reconcile(s, [])
    for key in ("l", "c", "p"):
        assert on_key(s, key, [], frozenset()) is None
        assert s.message == "nothing selected"
