"""A reload's summary says what the drop folders watch after it, not what the config's tables say.

Found by a tester: a `[[watch]]` added for a pipeline whose file is broken was "reloaded: [[watch]]: 1 added (FOLDER)"
above the warning "[[watch]] not watched: ..." while `inputs --json` listed no watch."""

from __future__ import annotations


def test_a_watch_that_did_not_start_is_said_not_watched_never_added(workspace, daemon, tmp_path):
    drop = tmp_path / "drop"
    drop.mkdir()
    workspace.pipeline("good", '[params]\ninput = { type = "path", default = "" }\n[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("broken", '[tasks.x]\ncommand = 5\n')
    daemon.start()
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "broken"\n')
    res = daemon.call("reload")
    assert f"[[watch]]: 1 not watched ({drop})" in res["summary"] and "added" not in res["summary"], res
    assert any("not watched" in w for w in res["warnings"]), res
    assert daemon.call("inputs.list", {})["watches"] == []
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "good"\n')
    res = daemon.call("reload")
    assert f"[[watch]]: 1 started ({drop})" in res["summary"], res  # refused before, watched now
    workspace.write_config("")
    assert daemon.call("reload")["summary"].endswith(f"[[watch]]: 1 removed ({drop})")
    workspace.write_config(f'[[watch]]\nfolder = "{drop}"\npipeline = "good"\n')
    assert daemon.call("reload")["summary"].endswith(f"[[watch]]: 1 added ({drop})")
    workspace.write_config("")
    assert daemon.call("reload")["summary"].endswith(f"[[watch]]: 1 removed ({drop})")
