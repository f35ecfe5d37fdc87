"""The CLI's start-up imports only what a command needs (issue 11): `edgeorch --help`, `status` and the
kernel commands pay no asyncio, no pipeline parser, no engine, no pandas; each command imports its own
heavy parts when it runs."""

from __future__ import annotations

import subprocess
import sys

import pytest

HEAVY_AT_START = ("asyncio", "subprocess", "edgeorch.pipelines", "edgeorch.engine", "edgeorch.store", "numpy",
                  "numba", "pandas", "pyarrow")


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", f"import sys\n{code}\nprint(' '.join(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_building_the_whole_command_line_imports_nothing_heavy() -> None:
    mods = _modules_after("from edgeorch.cli.main import build_parser\nbuild_parser()")
    assert sorted(m for m in HEAVY_AT_START if m in mods) == []


@pytest.mark.parametrize("argv", [["--help"], ["run", "--help"], ["profile", "--help"], ["status", "--help"]])
def test_help_imports_nothing_heavy(argv: list[str]) -> None:
    mods = _modules_after(f"from edgeorch.cli.main import main\ntry:\n    main({argv!r})\nexcept SystemExit:\n    pass")
    assert sorted(m for m in HEAVY_AT_START if m in mods) == []


def test_the_blocking_clients_do_not_import_asyncio() -> None:
    """The CLI talks to the daemon through edgeorch.Client; AsyncClient and the server load only when used."""
    mods = _modules_after("from edgeorch.client import Client\nfrom edgeorch.control import Client as Raw")
    assert "asyncio" not in mods
    mods = _modules_after("from edgeorch.client import AsyncClient")
    assert "asyncio" in mods


def test_parsing_a_pipeline_without_a_schedule_does_not_import_apscheduler(tmp_path) -> None:
    """APScheduler (0.1 s) computes fire times: only a pipeline with a schedule needs it."""
    plain = tmp_path / "plain.toml"
    plain.write_text('[tasks.a]\ncommand = ["true"]\n')
    mods = _modules_after(f"from pathlib import Path\nfrom edgeorch.pipelines import validate_path\n"
                          f"assert validate_path(Path({str(plain)!r})).ok")
    assert "apscheduler" not in mods
    nightly = tmp_path / "nightly.toml"
    nightly.write_text('schedule = "0 2 * * *"\n[tasks.a]\ncommand = ["true"]\n')
    mods = _modules_after(f"from pathlib import Path\nfrom edgeorch.pipelines import validate_path\n"
                          f"assert validate_path(Path({str(nightly)!r})).ok")
    assert "apscheduler" in mods


def test_a_daemon_backed_run_does_not_load_the_pipeline_parser_or_lineage() -> None:
    """`edgeorch run NAME` through a daemon parses `-p` and asks whether NAME is a file: no parser, registry,
    container task key or OpenLineage (uuid) for that (edgeorch/lazyexports.py)."""
    mods = _modules_after("from edgeorch.pipelines import parse_param_args\n"
                          "from edgeorch.pipelines.load import names_a_file\n"
                          "from edgeorch.config import load_config\nload_config(None)\n"
                          "from edgeorch.cli.main import build_parser\nbuild_parser('lineage')")
    loaded = {"edgeorch.pipelines.parse", "edgeorch.pipelines.registry", "edgeorch.containers.spec",
              "uuid"} & mods
    assert sorted(loaded) == []


def test_a_plain_pipeline_is_parsed_without_the_modules_of_keys_it_does_not_have(tmp_path) -> None:
    """The schedule, watch, [[on]], dataset, model and container checkers load only for a pipeline that
    uses them (issue 11: an offline `edgeorch run`); one that does use them is checked by each."""
    plain = tmp_path / "plain.toml"
    plain.write_text('[tasks.a]\ncommand = ["true"]\n[tasks.b]\ncommand = ["true"]\nneeds = ["a"]\n')
    mods = _modules_after(f"from edgeorch.pipelines import load_pipeline_file\n"
                          f"p, e = load_pipeline_file(__import__('pathlib').Path({str(plain)!r}))\nassert p and not e")
    loaded = {"edgeorch.triggers.schedule", "edgeorch.triggers.drop", "edgeorch.monitor.spec", "zoneinfo",
              "edgeorch.datasets.names", "edgeorch.models.spec", "edgeorch.containers.spec"} & mods
    assert sorted(loaded) == []
    full = tmp_path / "full.toml"
    full.write_text('every = "bogus"\n[tasks.a]\ncommand = ["true"]\nmodel = "Bad Name!"\n'
                    'container = { image = "" }\ndataset = { path = "x" }\n')
    out = subprocess.run([sys.executable, "-m", "edgeorch", "validate", str(full)], capture_output=True, text=True)
    assert out.returncode == 1
    for field in ("every", "tasks.a.model", "tasks.a.container.image", "tasks.a.dataset.name"):
        assert field in out.stdout + out.stderr, field


@pytest.mark.parametrize("only", ["run", "status", "show"])
def test_building_a_command_line_does_not_import_shutil(only: str | None) -> None:
    """argparse makes a formatter for each argument it adds, and its own width lookup imports shutil (with bz2
    and lzma, ~2.5 ms of every command's start): edgeorch's formatter reads the width itself."""
    mods = _modules_after(f"from edgeorch.cli.main import build_parser\nbuild_parser({only!r})")
    assert "shutil" not in mods


def test_opening_the_state_file_and_the_model_service_load_no_restore_or_statistics() -> None:
    """A restore's acknowledgement (its key derivation) and a canary's statistics load when used: every command
    that opens the state file, and every run's model service, loaded them (an offline `run` of one task imported
    `statistics`, `fractions` and `decimal` for nothing)."""
    mods = _modules_after("import edgeorch.store.audit, edgeorch.models.deploy, edgeorch.models.service")
    assert sorted(m for m in ("edgeorch.audit.restore", "statistics", "fractions", "decimal") if m in mods) == []
