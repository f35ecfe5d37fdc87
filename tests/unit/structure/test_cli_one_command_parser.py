"""A command line builds only the command it names (issue 11: building every command's parser was most
of a short command's start-up); what it parses, prints for --help and refuses is the whole tree's."""

from __future__ import annotations

import argparse

import pytest

from edgeorch.cli.globalopts import VALUE_FLAGS
from edgeorch.cli.main import build_parser, parse_command_line
from edgeorch.cli.parsing import ParserError, command_word, subcommands, walk

WHOLE = build_parser()
TOP_COMMANDS = [name for name, _, _ in subcommands(WHOLE)]


@pytest.mark.parametrize(("argv", "word"), [
    (["run", "p"], "run"),
    (["--config", "c.toml", "run", "p"], "run"),
    (["-c", "c.toml", "--json", "-q", "runs"], "runs"),
    (["--config=c.toml", "-vv", "models", "promote"], "models"),
    (["--log-level", "debug", "status"], "status"),
    (["-cc.toml", "status"], "status"),
    ([], None),
    (["--json"], None),
    (["--help", "run"], None),
    (["-h"], None),
    (["--version"], None),
    (["--", "run"], None),
    (["--config"], None),
])
def test_command_word(argv: list[str], word: str | None) -> None:
    assert command_word(argv, VALUE_FLAGS) == word


def test_value_flags_are_the_global_options_that_take_a_value() -> None:
    assert VALUE_FLAGS == {"--config", "-c", "--log-level"}


def test_a_one_command_parser_holds_that_command_alone() -> None:
    parser = build_parser("models")
    assert [name for name, _, _ in subcommands(parser)] == ["models"]
    assert "promote" in [name for name, _, _ in subcommands(subcommands(parser)[0][1])]


@pytest.mark.parametrize("top", TOP_COMMANDS)
def test_each_command_built_alone_is_the_whole_trees_command(top: str) -> None:
    """Every level under the command: the same help text, so the same options, defaults and exit codes."""
    alone = dict(walk(build_parser(top)))
    whole = {path: p for path, p in walk(WHOLE) if path[:1] == (top,)}
    assert set(alone) - {()} == set(whole)
    for path, parser in whole.items():
        assert alone[path].format_help() == parser.format_help(), path


def _namespace(ns: argparse.Namespace) -> dict[str, object]:
    return {k: v for k, v in vars(ns).items() if k != "whole_parser"}


@pytest.mark.parametrize("argv", [
    ["run", "p", "-p", "a=1", "--detach"],
    ["--json", "-c", "x.toml", "runs", "-n", "3", "--state", "failed"],
    ["-v", "models", "promote", "m", "2", "--alias", "prod", "-v"],
    ["lineage", "5/train", "--upstream"],
    ["profile", "data.csv", "--columns", "a,b"],
    ["status", "-q"],
])
def test_parsing_with_one_command_gives_what_the_whole_tree_gives(argv: list[str]) -> None:
    _, args = parse_command_line(argv)
    assert _namespace(args) == _namespace(WHOLE.parse_args(argv))


@pytest.mark.parametrize("argv", [["nosuch"], ["run"], ["runs", "--limit", "x"], ["-c", "run", "x"]])
def test_a_refused_line_is_refused_by_the_whole_tree(argv: list[str]) -> None:
    """A typo in the command lists every command; a bad option of a command reads as it always did."""
    with pytest.raises(ParserError) as ours:
        parse_command_line(argv)
    with pytest.raises(ParserError) as whole:
        WHOLE.parse_args(argv)
    assert (ours.value.argparse_message, ours.value.usage) == (whole.value.argparse_message, whole.value.usage)
    if argv == ["nosuch"]:
        assert "'run'" in ours.value.argparse_message and "'profile'" in ours.value.argparse_message


def test_completion_and_man_describe_the_whole_command_line() -> None:
    _, args = parse_command_line(["man"])
    assert [name for name, _, _ in subcommands(args.whole_parser())] == TOP_COMMANDS
