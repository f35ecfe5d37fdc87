"""Shell completion (issue 19, point 8): ``edgeorch completion bash|zsh|fish`` completes for real.

bash: the script is sourced in a real bash and ``_edgeorch`` called with COMP_WORDS, as bash does on TAB.
fish: ``complete -C`` asks a real fish. zsh: a real interactive zsh on a pseudo-terminal (zpty) gets a TAB,
with ``compadd`` reporting what it was given. A shell that is not installed is skipped, saying so.
Pipeline names and run ids are asked of a real ``edgeorch`` (a script named so on PATH).
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from edgeorch.cli.cmdtree import command_tree
from edgeorch.cli.completion import SHELLS, completion_script
from edgeorch.cli.main import build_parser

ZSH_CAPTURE = r"""
# zsh -f capture.zsh SCRIPT 'command line': prints each completion candidate of the line on a line of its own
zmodload zsh/zpty || exit 2
zpty z zsh -f -i
zpty -w z 'PROMPT=; RPROMPT='
zpty -w z 'autoload -U compinit; compinit -u -D'
zpty -w z "source ${(q)1}"
zpty -w z "bindkey '^I' complete-word"
zpty -w z "null-line () { echo -E - \$'\\0' }"
zpty -w z 'compprefuncs=( null-line )'
zpty -w z 'comppostfuncs=( null-line exit )'
zpty -w z "zstyle ':completion:*' list-grouped false"
zpty -w z "zstyle ':completion:*' insert-tab false"
zpty -w z 'compadd () {
  [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]] && { builtin compadd "$@"; return $? }
  typeset -a __hits __dscr
  builtin compadd -A __hits -D __dscr "$@"
  typeset -i i
  for i in {1..$#__hits}; do echo -E - "MATCH:${__hits[i]}"; done
}'
zpty -n -w z "$2"$'\t'
integer seen=0
while zpty -r z; do :; done | while IFS= read -r line; do
  line=${line//$'\r'/}
  if [[ $line == *$'\0'* ]]; then (( seen++ )) && return 0 || continue; fi
  (( seen )) && [[ $line == MATCH:* ]] && echo -E - "${line#MATCH:}"
done
"""


@pytest.fixture
def shell_env(workspace, tmp_path):
    """An environment whose PATH has an ``edgeorch`` that is this checkout's, with the workspace's config."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "edgeorch"
    exe.write_text(f"#!/bin/sh\nexec {sys.executable} -m edgeorch \"$@\"\n")
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    workspace.pipeline("nightly", '[tasks.a]\ncommand = ["true"]\n')
    workspace.pipeline("hourly", '[tasks.a]\ncommand = ["true"]\n')
    env = workspace.cli_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    return env


def script_file(tmp_path: Path, shell: str) -> Path:
    path = tmp_path / f"edgeorch.{shell}"
    path.write_text(completion_script(build_parser(), shell))
    return path


def need(shell: str) -> str:
    exe = shutil.which(shell)
    if exe is None:
        pytest.skip(f"{shell} is not installed: its completion script is not checked here")
    return exe


# -- bash -------------------------------------------------------------------------------------

def bash_complete(script: Path, env: dict[str, str], *words: str) -> list[str]:
    """What ``_edgeorch`` offers for ``words`` (the last one is the word under the cursor)."""
    code = (f'source "{script}"\n'
            'COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}\n'
            '_edgeorch edgeorch "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"\n'
            'printf "%s\\n" "${COMPREPLY[@]}"\n')
    proc = subprocess.run([need("bash"), "--norc", "-c", code, "bash", *words], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [w for w in proc.stdout.splitlines() if w]


@pytest.mark.parametrize(("words", "expected"), [
    (["edgeorch", "ru"], ["run", "runs"]),
    (["edgeorch", "runs", "--st"], ["--state"]),
    (["edgeorch", "runs", "--state", "f"], ["failed"]),
    (["edgeorch", "runs", "--state", "=", "c"], ["cancelled"]),  # --state=c: bash splits at '='
    (["edgeorch", "--log-level", "d"], ["debug"]),
    (["edgeorch", "-q", "pipelines", ""], ["list", "show", "validate", "pause", "resume"]),
    (["edgeorch", "completion", ""], ["bash", "zsh", "fish"]),
    (["edgeorch", "runs", "-n", "5", "--js"], ["--json"]),  # an option's value is skipped, not a positional
    (["edgeorch", "show", "--"], ["--help", "--json", "--config", "--quiet", "--verbose", "--log-level"]),
])
def test_bash_completes_commands_options_and_choices(tmp_path, shell_env, words, expected):
    assert sorted(bash_complete(script_file(tmp_path, "bash"), shell_env, *words)) == sorted(expected)


def test_bash_completes_pipeline_names_and_run_ids_by_asking_edgeorch(workspace, tmp_path, shell_env):
    script = script_file(tmp_path, "bash")
    assert bash_complete(script, shell_env, "edgeorch", "run", "") == ["hourly", "nightly"]
    assert bash_complete(script, shell_env, "edgeorch", "pipelines", "show", "n") == ["nightly"]
    assert bash_complete(script, shell_env, "edgeorch", "runs", "--pipeline", "h") == ["hourly"]
    subprocess.run(["edgeorch", "run", "nightly", "-q"], env=shell_env, check=True, capture_output=True, timeout=120)
    assert bash_complete(script, shell_env, "edgeorch", "show", "") == ["1"]


def test_bash_passes_the_typed_config_on_when_it_asks(workspace, tmp_path, shell_env):
    other = tmp_path / "other"
    (other / "pipelines").mkdir(parents=True)
    (other / "pipelines" / "weekly.toml").write_text('[tasks.a]\ncommand = ["true"]\n')
    (other / "config.toml").write_text(f'[state]\ndir = "{other}/var"\n[pipelines]\ndir = "{other}/pipelines"\n')
    script = script_file(tmp_path, "bash")
    words = ["edgeorch", "--config", str(other / "config.toml"), "run", ""]
    assert bash_complete(script, shell_env, *words) == ["weekly"]


def test_bash_completes_file_arguments(tmp_path, shell_env):
    (tmp_path / "data.csv").write_text("a\n1\n")
    got = bash_complete(script_file(tmp_path, "bash"), shell_env, "edgeorch", "profile", str(tmp_path / "da"))
    assert got == [str(tmp_path / "data.csv")]


def test_bash_registers_the_function_for_edgeorch(tmp_path, shell_env):
    code = f'source "{script_file(tmp_path, "bash")}"; complete -p edgeorch'
    proc = subprocess.run([need("bash"), "--norc", "-c", code], env=shell_env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.strip() == "complete -F _edgeorch edgeorch", proc.stderr


# -- fish -------------------------------------------------------------------------------------

def fish_complete(script: Path, env: dict[str, str], line: str) -> list[str]:
    proc = subprocess.run([need("fish"), "--no-config", "-c", f"source {script}; complete -C {_fish_quote(line)}"],
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return sorted(w.split("\t")[0] for w in proc.stdout.splitlines() if w)


def _fish_quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def test_fish_script_parses(tmp_path):
    proc = subprocess.run([need("fish"), "--no-config", "-n", str(script_file(tmp_path, "fish"))],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("line", "expected"), [
    ("edgeorch ru", ["run", "runs"]),
    ("edgeorch runs --state ", ["cancelled", "failed", "queued", "running", "succeeded"]),
    ("edgeorch -v runs --st", ["--state"]),
    ("edgeorch run ", ["hourly", "nightly"]),
    ("edgeorch pipelines show n", ["nightly"]),
])
def test_fish_completes_for_real(tmp_path, shell_env, line, expected):
    assert fish_complete(script_file(tmp_path, "fish"), shell_env, line) == expected


# -- zsh --------------------------------------------------------------------------------------

def zsh_complete(tmp_path: Path, env: dict[str, str], line: str, script: Path | None = None) -> list[str]:
    zsh = need("zsh")
    capture = tmp_path / "capture.zsh"
    capture.write_text(ZSH_CAPTURE)
    if subprocess.run([zsh, "-f", "-c", "zmodload zsh/zpty"], capture_output=True, timeout=30).returncode != 0:
        pytest.skip("zsh has no zpty module: the zsh script is only syntax-checked")
    proc = subprocess.run([zsh, "-f", str(capture), str(script or script_file(tmp_path, "zsh")), line], env=env,
                          capture_output=True, text=True, timeout=60)
    return sorted(set(proc.stdout.split()))


def test_zsh_script_parses(tmp_path):
    proc = subprocess.run([need("zsh"), "-n", str(script_file(tmp_path, "zsh"))], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(("line", "expected"), [
    ("edgeorch ru", ["run", "runs"]),
    ("edgeorch runs --state ", ["cancelled", "failed", "queued", "running", "succeeded"]),
    ("edgeorch --log-level ", ["debug", "error", "info", "warning"]),
    ("edgeorch run ", ["hourly", "nightly"]),
])
def test_zsh_completes_for_real(tmp_path, shell_env, line, expected):
    assert zsh_complete(tmp_path, shell_env, line) == expected


# -- nested commands, in every shell ----------------------------------------------------------------

def nested_parser():
    """A parser with a command that has commands of its own (``edgeorch store add --kind ...``)."""
    from edgeorch.cli.globalopts import finish_parser
    from edgeorch.cli.parsing import Parser

    parser = Parser(prog="edgeorch")
    store = parser.add_subparsers(dest="command").add_parser("store", help="a group")
    inner = store.add_subparsers(dest="action")
    add = inner.add_parser("add", help="add one")
    add.add_argument("--kind", choices=["raw", "clean"])
    add.add_argument("name")
    inner.add_parser("drop", help="drop one")
    finish_parser(parser)
    return parser


def nested_script(tmp_path: Path, shell: str) -> Path:
    path = tmp_path / f"nested.{shell}"
    path.write_text(completion_script(nested_parser(), shell))
    return path


def test_nested_commands_complete_in_bash(tmp_path, shell_env):
    script = nested_script(tmp_path, "bash")
    assert bash_complete(script, shell_env, "edgeorch", "store", "") == ["add", "drop"]
    assert bash_complete(script, shell_env, "edgeorch", "store", "add", "--kind", "r") == ["raw"]
    assert bash_complete(script, shell_env, "edgeorch", "-q", "store", "add", "--k") == ["--kind"]


def test_nested_commands_complete_in_fish(tmp_path, shell_env):
    script = nested_script(tmp_path, "fish")
    assert fish_complete(script, shell_env, "edgeorch store ") == ["add", "drop"]
    assert fish_complete(script, shell_env, "edgeorch store add --kind ") == ["clean", "raw"]


def test_nested_commands_complete_in_zsh(tmp_path, shell_env):
    script = nested_script(tmp_path, "zsh")
    assert zsh_complete(tmp_path, shell_env, "edgeorch store ", script=script) == ["add", "drop"]
    assert zsh_complete(tmp_path, shell_env, "edgeorch store add --kind ", script=script) == ["clean", "raw"]


# -- every shell --------------------------------------------------------------------------------

@pytest.mark.parametrize("shell", SHELLS)
def test_every_command_and_option_is_in_every_script(shell):
    parser = build_parser()
    script = completion_script(parser, shell)
    for cmd in command_tree(parser):
        for name, _ in cmd.subcommands:
            assert name in script, (shell, name)
        for o in cmd.options:
            for flag in o.flags:
                assert flag.lstrip("-") in script, (shell, cmd.path, flag)


def test_the_command_prints_the_script_and_refuses_another_shell(workspace):
    out = subprocess.run([*workspace.cli(), "completion", "bash"], env=workspace.cli_env(), capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0 and "complete -F _edgeorch edgeorch" in out.stdout
    bad = subprocess.run([*workspace.cli(), "completion", "tcsh"], env=workspace.cli_env(), capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode == 2 and "invalid choice: 'tcsh'" in bad.stderr
