"""docs/config.md names every config section and key the parser accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgeorch.config import ConfigError, parse_config
from edgeorch.triggers.drop.spec import WATCH_KEYS

DOC = Path(__file__).resolve().parents[3] / "docs" / "config.md"


def _accepted(section: str) -> set[str]:
    """The keys of ``[section]``, as the parser's unknown-key error lists them."""
    with pytest.raises(ConfigError) as exc:
        parse_config({section: {"zz_unknown": 1}}, base=Path("/"), file="probe.toml", source=None)
    listed = re.search(r"one of ([^;\n]+)", exc.value.render()).group(1)
    return {k.strip() for k in listed.split(",")}


def _documented() -> dict[str, set[str]]:
    sections = re.split(r"^## ", DOC.read_text(), flags=re.M)[1:]
    out = {}
    for text in sections:
        name = re.match(r"`\[\[?(\w+)\]?\]`", text).group(1)
        out[name] = set(re.findall(r"^\| `(\w+)` \|", text, flags=re.M))
    return out


def test_every_section_and_key_the_parser_accepts_is_documented() -> None:
    documented = _documented()
    with pytest.raises(ConfigError) as exc:
        parse_config({"zz_unknown": {}}, base=Path("/"), file="probe.toml", source=None)
    sections = {k.strip() for k in re.search(r"one of ([^;\n]+)", exc.value.render()).group(1).split(",")}
    assert set(documented) == sections
    for section in sections - {"watch"}:
        assert documented[section] == _accepted(section), section
    assert documented["watch"] == set(WATCH_KEYS)
