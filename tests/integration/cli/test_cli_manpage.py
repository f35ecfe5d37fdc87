"""The man page (issue 19, point 8): ``edgeorch man`` prints roff generated from the parser; it renders
with man/groff without warnings and names every command, option, exit code, and the config lookup order."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from edgeorch.cli.cmdtree import command_tree
from edgeorch.cli.exits import EXIT_CODES
from edgeorch.cli.main import build_parser
from edgeorch.cli.manpage import man_page
from edgeorch.config import CONFIG_ENV, config_candidates


@pytest.fixture(scope="module")
def roff() -> str:
    return man_page(build_parser())


@pytest.fixture(scope="module")
def rendered(roff, tmp_path_factory) -> str:
    """The page as ``man -l`` shows it (plain text, 200 columns so no name is hyphenated)."""
    if shutil.which("man") is None:
        pytest.skip("man is not installed: the page is not rendered here")
    path = tmp_path_factory.mktemp("man") / "edgeorch.1"
    path.write_text(roff)
    env = {k: v for k, v in os.environ.items() if k != "MAN_KEEP_FORMATTING"} | {"MANWIDTH": "200", "MANPAGER": "cat"}
    proc = subprocess.run(["man", "-l", str(path)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.replace("\u2010", "-").replace("\u2212", "-")


def test_groff_reads_the_page_without_a_warning(roff, tmp_path):
    if shutil.which("groff") is None:
        pytest.skip("groff is not installed: the roff is not checked for warnings here")
    proc = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z"], input=roff, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_the_page_has_the_sections_of_a_manual_page(rendered):
    for section in ("NAME", "SYNOPSIS", "DESCRIPTION", "GLOBAL OPTIONS", "COMMANDS", "EXIT STATUS", "ENVIRONMENT",
                    "FILES", "SEE ALSO"):
        assert f"\n{section}\n" in rendered, section


def test_every_command_and_each_of_its_options_is_on_the_page(rendered):
    for cmd in command_tree(build_parser())[1:]:
        assert f"   {cmd.name}\n" in rendered, cmd.name
        for o in cmd.options:
            for flag in o.flags:
                assert flag in rendered, (cmd.name, flag)
        for p in cmd.positionals:
            assert p.name in rendered, (cmd.name, p.name)


def test_every_exit_code_with_its_meaning(rendered):
    text = " ".join(rendered.split())
    for code, meaning in EXIT_CODES:
        assert f"{code} {' '.join(meaning.split())}" in text, code


def test_the_config_lookup_order_and_the_socket(rendered):
    text = " ".join(rendered.split())
    order = ["--config PATH", f"${CONFIG_ENV}", *(how for _, how in config_candidates()), "embedded defaults"]
    positions = [text.find(item, text.find("FILES")) for item in order]
    assert -1 not in positions and positions == sorted(positions), list(zip(order, positions))
    assert "$RUNTIME_DIRECTORY/edgeorch.sock" in text and "/run/edgeorch/edgeorch.sock" in text


def test_the_command_prints_it(workspace):
    proc = subprocess.run([*workspace.cli(), "man"], env=workspace.cli_env(), capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and proc.stdout.startswith(".TH EDGEORCH 1 ")
    assert ".SH EXIT STATUS" in proc.stdout and '.SS "edgeorch completion"' in proc.stdout


def test_text_that_looks_like_roff_is_escaped():
    from edgeorch.cli.manpage import _esc

    assert _esc(".start\n'quote\na-b c\\d") == "\\&.start\n\\&'quote\na\\-b c\\ed"
