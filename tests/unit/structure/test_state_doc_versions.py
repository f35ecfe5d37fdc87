"""docs/state.md's schema-version table cannot fall behind the migrations the code runs."""

from __future__ import annotations

import re
from pathlib import Path

from edgeorch.store.schema import SCHEMA_VERSION

DOC = Path(__file__).resolve().parents[3] / "docs" / "state.md"


def test_the_documented_schema_version_and_table_match_the_migrations() -> None:
    text = DOC.read_text()
    section = text.split("## Schema versions and migrations", 1)[1].split("\n## ", 1)[0]
    assert re.search(r"version is \*\*(\d+)\*\*", section).group(1) == str(SCHEMA_VERSION)
    rows = [int(n) for n in re.findall(r"^\| (\d+) \|", section, flags=re.M)]
    assert rows == list(range(1, SCHEMA_VERSION + 1))
    assert f"newer than this edgeorch ({SCHEMA_VERSION})" in section
