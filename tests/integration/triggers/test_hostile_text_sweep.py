"""One guard for every human output: text a hostile local user or a task controls never reaches the
operator's terminal raw.

Untrusted text enters through a dropped file's name (bidi overrides are valid in a name, control characters
are refused at the door) and through what a task writes (its last lines, shown when it fails). A daemon
takes a failing and a succeeding drop and a failing pipeline run; then every command a person reads after
a bad night is run in its human form, and none of its output may hold a control character (but the line
ends), a C1 control or a bidi override: each must come escaped (``textui.printable``). ``edgeorch logs``
is left out: it prints a task's own bytes, as ``cat`` would.
"""

from __future__ import annotations

import re

from test_daemon_triggers import drop_by_rename, n_inputs, wait_until

# ESC and BEL (a clear screen, an OSC 52 clipboard write, a window title), a C1 CSI, bidi overrides.
_RAW = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_HOSTILE_OUTPUT = r"printf 'bad \033[2J\033]52;c;ZXZpbA==\007 \302\233 \342\200\256gnp.exe\n'"
_NAME = "report\u202efdp.csv"  # shows as "reportpdf.csv" reversed: a valid name


def test_no_human_output_shows_hostile_text_raw(workspace, daemon, tmp_path):
    drop = workspace.watch_folder("ingest")
    script = tmp_path / "task.sh"
    script.write_text(f"if grep -q BAD \"$1\"; then {_HOSTILE_OUTPUT} >&2; exit 3; fi\n")
    workspace.pipeline("ingest", f"""
        [params]
        input = {{ type = "path", default = "" }}
        [tasks.check]
        command = ["sh", "{script}", "{{input}}"]
        """)
    workspace.pipeline("loud", f"""
        [tasks.speak]
        command = ["sh", "-c", "{_HOSTILE_OUTPUT.replace(chr(92), chr(92) * 2)}; exit 4"]
        """)
    daemon.start()
    drop_by_rename(tmp_path / "stage", drop, _NAME, b"BAD\n")
    drop_by_rename(tmp_path / "stage", drop, "ok" + _NAME, b"fine\n")
    wait_until(daemon, lambda: n_inputs(workspace, "done", "quarantined") >= 2, what="both inputs settled")
    run = workspace.invoke("run", "loud")  # through the daemon, with its progress lines
    assert run.returncode == 1, run.stderr

    outputs = {"run loud": run.stdout + run.stderr}
    runs = [str(i) for i in (1, 2, 3)]
    commands = [["status"], ["runs"], ["inputs"], ["inputs", "--quarantine"], ["pipelines"], ["resources"],
                ["audit", "--limit", "200"], ["events", "--help"]]
    commands += [[c, r] for r in runs for c in ("show", "why")]
    commands += [["lineage", f"run:{r}"] for r in runs]
    for argv in commands:
        res = workspace.invoke(*argv)
        assert res.returncode in (0, 1), (argv, res.stderr)
        outputs[" ".join(argv)] = res.stdout + res.stderr
    # A folder another user writes to (a file name may hold any byte but '/'), and a CSV's column names.
    shared = tmp_path / "shared"
    shared.mkdir()
    (shared / "a\x1b[2Jb\u202ec.csv").write_text("x\x1b]0;t\x07,y\n1,2\n")
    for argv in (["datasets", "add", "d", str(shared)], ["datasets", "show", "d"], ["datasets", "show", "d@latest"],
                 ["datasets", "list"], ["profile", str(next(shared.iterdir()))]):
        res = workspace.invoke(*argv)
        assert res.returncode == 0, (argv, res.stderr)
        outputs[" ".join(argv[:2]) if argv[0] == "datasets" else argv[0]] = res.stdout + res.stderr
    quarantined = sorted(p.name for p in (workspace.state / "quarantine").iterdir() if not p.name.endswith(".json"))
    res = workspace.invoke("requeue", str(workspace.state / "quarantine" / quarantined[0]))
    outputs["requeue"] = res.stdout + res.stderr

    assert "gnp.exe" in outputs["run loud"] and "\\u202e" in outputs["run loud"]  # the lines are there, escaped
    assert any("\\u202e" in text for argv, text in outputs.items() if argv.startswith("inputs"))
    assert "\\x1b" in outputs["datasets show"] and "\\x1b" in outputs["profile"]
    raw = {argv: sorted(set(_RAW.findall(text))) for argv, text in outputs.items() if _RAW.search(text)}
    assert raw == {}, f"raw hostile characters in: {raw}"
