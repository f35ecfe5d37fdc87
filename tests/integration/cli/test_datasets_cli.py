"""``edgeorch datasets`` without a daemon, as a user runs it: exit codes, clear errors.

The command runs in-process (``Workspace.invoke``: the same ``main`` and environment, no interpreter start
per call); the real process is tested by tests/fault/test_datasets_crash.py (killed mid-add) and
tests/integration/daemon/test_datasets_daemon.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

def cli(ws, *args: str) -> subprocess.CompletedProcess[str]:
    proc = ws.invoke("datasets", *args)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def ok_json(ws, *args: str):
    proc = cli(ws, *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def src(tmp_path: Path) -> Path:
    folder = tmp_path / "batch"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(1)
    (folder / "sales.csv").write_bytes(b"day,amount\n" + b"".join(b"1,%d\n" % i for i in range(100_000)))
    (folder / "images" / "a.png").write_bytes(rng.integers(0, 256, 700_000, dtype=np.uint8).tobytes())
    return folder


def test_add_list_show_restore_and_prune_without_a_daemon(workspace, src, tmp_path):
    v1 = ok_json(workspace, "add", "sales", str(src), "--compress")
    assert (v1["ref"], v1["files"], v1["source"]) == ("sales@1", 2, "add")
    v2 = ok_json(workspace, "add", "sales", str(src))
    assert v2["ref"] == "sales@2" and v2["new_bytes"] == 0
    with open(src / "sales.csv", "ab") as f:
        f.write(b"2,5\n" * 1000)
    v3 = ok_json(workspace, "add", "sales", str(src))
    assert 0 < v3["new_bytes"] < (src / "sales.csv").stat().st_size

    listing = ok_json(workspace, "list")
    (entry,) = listing["datasets"]
    assert (entry["name"], entry["versions"], entry["latest"]) == ("sales", 3, 3)
    assert listing["totals"]["stored_bytes"] < entry["logical_bytes"] / 2
    shown = ok_json(workspace, "show", "sales")
    assert [v["version"] for v in shown["versions"]] == [1, 2, 3]
    one = ok_json(workspace, "show", "sales@1")
    assert [f["path"] for f in one["entries"]] == ["images/a.png", "sales.csv"]

    before = tree(src)
    assert ok_json(workspace, "restore", "sales", str(tmp_path / "latest"))["dataset"] == "sales@3"
    assert tree(tmp_path / "latest") == before
    ok_json(workspace, "restore", "sales@1", str(tmp_path / "first"))
    assert len(tree(tmp_path / "first")["sales.csv"]) == len(before["sales.csv"]) - 4000

    pruned = ok_json(workspace, "prune", "--keep", "1")
    assert [v["ref"] for v in pruned["removed"]] == ["sales@1", "sales@2"] and pruned["bytes_freed"] > 0
    text = cli(workspace, "show", "sales")
    assert text.returncode == 0 and "1 version(s)" in text.stdout
    assert cli(workspace, "list").stdout.splitlines()[0].split()[:3] == ["DATASET", "VERSIONS", "LATEST"]


BAD_INPUTS = [
    (("show", "nope"), 3, "no dataset named 'nope'"),
    (("show", "sales@9"), 3, "dataset sales has no version 9"),
    (("show", "sales@x"), 2, "has a bad version"),
    (("add", "bad name", "PATH"), 2, "is not a valid dataset name"),
    (("add", "a/b", "PATH"), 2, "is not a valid dataset name"),
    (("add", "sales", "/no/such/path"), 3, "/no/such/path: no such file or folder"),
    (("restore", "nope", "DEST"), 3, "no dataset named 'nope'"),
    (("restore", "sales", "FULL"), 5, "is not empty"),
    (("prune",), 2, "a retention rule is needed"),
    (("prune", "--keep", "0"), 2, "--keep: is not a number of versions to keep"),
    (("prune", "--max-age", "soon"), 2, "--max-age: is not a valid age"),
    (("prune", "nope", "--keep", "1"), 3, "no dataset named 'nope'"),
]


def test_bad_inputs_get_a_clear_error_and_their_exit_code(workspace, src, tmp_path):
    ok_json(workspace, "add", "sales", str(src / "sales.csv"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for args, code, words in BAD_INPUTS:
        args = tuple({"PATH": str(src), "DEST": str(tmp_path / "dest"), "FULL": str(tmp_path / "full")}.get(a, a)
                     for a in args)
        proc = cli(workspace, *args)
        assert proc.returncode == code, (args, proc.stderr)
        assert words in proc.stderr and proc.stderr.startswith("edgeorch: error:"), (args, proc.stderr)
        assert not (tmp_path / "dest").exists()
    assert [v["version"] for v in ok_json(workspace, "show", "sales")["versions"]] == [1]  # nothing recorded


def test_a_link_inside_the_folder_is_refused_and_nothing_is_recorded(workspace, src):
    os.symlink("/etc/hostname", src / "images" / "link.png")
    proc = cli(workspace, "add", "sales", str(src))
    assert proc.returncode == 2
    assert f"{src / 'images' / 'link.png'}: is a symbolic link" in proc.stderr
    assert cli(workspace, "show", "sales").returncode == 3


def test_restore_names_a_corrupted_object_and_leaves_dest_alone(workspace, src, tmp_path):
    ok_json(workspace, "add", "sales", str(src / "images"))
    objects = sorted((workspace.state / "datasets" / "objects").rglob("*"))
    victim = next(p for p in objects if p.is_file())
    victim.write_bytes(b"\0" + victim.read_bytes()[1:])
    proc = cli(workspace, "restore", "sales@1", str(tmp_path / "out"))
    assert proc.returncode == 1
    assert f"{victim}: the object is corrupted" in proc.stderr and "dataset sales@1, file a.png" in proc.stderr
    assert not (tmp_path / "out").exists()
    err = json.loads(cli(workspace, "restore", "sales@1", str(tmp_path / "out"), "--json").stderr)
    assert err["error"]["code"] == "corrupt"


def test_the_objects_of_a_version_are_closed_to_other_users_in_an_older_open_state_folder(workspace, tmp_path):
    """Found by a tester: in a state folder made 0755 before edgeorch narrowed it (to 0751), `datasets/` and
    `objects/` stayed 0755 and every object 0644: any user listed and read what was added, a 0600 file included."""
    for folder in (workspace.state, workspace.state / "datasets", workspace.state / "datasets" / "objects"):
        folder.mkdir(mode=0o755, exist_ok=True)
        os.chmod(folder, 0o755)
    secret = tmp_path / "salaries.csv"
    secret.write_text("name,salary\nann,1\n")
    os.chmod(secret, 0o600)
    assert cli(workspace, "add", "hr", str(secret), "-q").returncode == 0
    assert os.stat(workspace.state / "datasets").st_mode & 0o007 == 0  # nobody else may enter it
    objects = [p for p in (workspace.state / "datasets" / "objects").rglob("*") if p.is_file()]
    assert objects and all(p.stat().st_mode & 0o007 == 0 for p in objects)
    restored = tmp_path / "back"
    assert cli(workspace, "restore", "hr@1", str(restored)).returncode == 0
    assert (restored / "salaries.csv").stat().st_mode & 0o777 == 0o600  # its own mode, as recorded


def test_a_name_that_is_not_utf8_is_refused_naming_it_not_an_internal_error(workspace, tmp_path):
    """Found by a tester: `datasets add w8 w8` with a file named b'\\xff\\xfe.csv' inside was exit 70
    (UnicodeEncodeError at the record, after its chunks were stored)."""
    folder = tmp_path / "w8"
    folder.mkdir()
    (folder / "ok.csv").write_text("a\n")
    bad = os.fsdecode(bytes(folder) + b"/\xff\xfe.csv")
    Path(bad).write_text("b\n")
    for source in (str(folder), bad):
        proc = cli(workspace, "add", "w8", source)
        assert proc.returncode == 2, proc.stderr
        assert "\\xff\\xfe.csv: its name is not valid UTF-8" in proc.stderr
    assert "no datasets yet" in cli(workspace, "list").stdout
