"""The profile / drift / fairness commands, registered on a fresh parser."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from edgeorch.cli import main
from edgeorch.errors import DataError, UsageError
from edgeorch.kernels.cli import register


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="edgeorch")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def files(workdir: Path, rng: np.random.Generator) -> Path:
    n = 1500
    pacsv.write_csv(pa.table({"a": rng.normal(size=n), "b": rng.choice(["x", "y"], n)}), "ref.csv")
    pacsv.write_csv(pa.table({"a": rng.normal(size=n), "b": rng.choice(["x", "y"], n)}), "same.csv")
    pacsv.write_csv(pa.table({"a": rng.normal(3, size=n), "b": rng.choice(["z", "y"], n)}), "moved.csv")
    g = rng.choice(["m", "f"], n)
    pacsv.write_csv(pa.table({"g": g, "y": rng.integers(0, 2, n),
                              "p": np.where(g == "m", 1, rng.integers(0, 2, n))}), "scored.csv")
    return workdir


def test_profile_prints_a_table(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["profile", "ref.csv"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["COLUMN", "TYPE", "COUNT"]
    assert "profiled 1500 rows x 2 columns" in out


def test_profile_json_is_one_strict_document(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["profile", "ref.csv", "--json", "--columns", "a"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["kind"] == "profile" and [r["column"] for r in doc["rows"]] == ["a"]


def test_columns_holding_a_comma_are_named_in_double_quotes(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--columns` split at every comma: a column `price, usd` (a CSV header may quote one) could not be named."""
    Path("q.csv").write_text('"price, usd",qty,"say ""hi"""\n1.5,2,x\n2.5,3,y\n')
    assert run(["profile", "q.csv", "--json", "--columns", '"price, usd", qty']) == 0
    assert [r["column"] for r in json.loads(capsys.readouterr().out)["rows"]] == ["price, usd", "qty"]
    assert run(["profile", "q.csv", "--json", "--columns", '"say ""hi"""']) == 0
    assert [r["column"] for r in json.loads(capsys.readouterr().out)["rows"]] == ['say "hi"']
    with pytest.raises(UsageError, match="price"):  # unquoted, it is two names, neither a column
        run(["profile", "q.csv", "--columns", "price, usd"])


def test_drift_exits_0_without_dataset_drift(files: Path) -> None:
    assert run(["drift", "ref.csv", "same.csv"]) == 0


def test_drift_exits_1_on_dataset_drift_and_writes_html(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["drift", "ref.csv", "moved.csv", "--html", "r.html"]) == 1
    assert "dataset drift" in capsys.readouterr().out
    assert "<svg" in Path("r.html").read_text()


def test_drift_against_a_saved_profile(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["profile", "ref.csv", "--save", "ref.profile.json"]) == 0
    capsys.readouterr()
    assert run(["drift", "ref.profile.json", "moved.csv", "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["summary"]["dataset_drift"] is True


def test_drift_with_method_and_threshold(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["drift", "ref.csv", "same.csv", "--method", "psi", "--threshold", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in doc["rows"]} == {"psi"} and {r["threshold"] for r in doc["rows"]} == {5.0}


def test_bad_drift_share_is_a_usage_error(files: Path) -> None:
    with pytest.raises(UsageError):
        run(["drift", "ref.csv", "same.csv", "--drift-share", "2"])


def test_missing_file_is_a_data_error(files: Path) -> None:
    with pytest.raises(DataError, match="file not found"):
        run(["drift", "ref.csv", "nope.csv"])


# Exit codes through the main CLI: 1 means only "drift found" / "violation" (issue 9, item 6).

@pytest.mark.parametrize("argv", [
    ["drift", "ref.csv", "nope.csv"],
    ["drift", "nope.profile.json", "ref.csv"],
    ["profile", "nope.csv"],
    ["fairness", "nope.csv", "--group", "g", "--prediction", "p"],
])
def test_kernel_commands_exit_3_when_a_file_is_missing(files: Path, argv: list[str],
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 3
    assert "not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [
    ["drift", "ref.csv", "same.csv", "--columns", "nope"],
    ["profile", "ref.csv", "--columns", "a,nope"],
    ["fairness", "scored.csv", "--group", "nope", "--prediction", "p"],
    ["fairness", "scored.csv", "--group", "g", "--prediction", "nope"],
])
def test_kernel_commands_exit_2_on_an_unknown_column(files: Path, argv: list[str],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    assert "nope" in capsys.readouterr().err


def test_a_bad_method_exits_2_and_names_the_flag(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "ref.csv", "same.csv", "--method", "foo"]) == 2
    err = capsys.readouterr().err
    assert "--method" in err and "foo" in err
    assert "options" not in err and "<task options>" not in err


def test_a_bad_threshold_exits_2_and_names_the_flag(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["drift", "ref.csv", "same.csv", "--threshold", "-1"]) == 2
    assert "--threshold" in capsys.readouterr().err


def test_a_method_a_profile_cannot_serve_exits_2(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["profile", "ref.csv", "--save", "ref.profile.json"]) == 0
    assert main(["drift", "ref.profile.json", "same.csv", "--method", "wasserstein"]) == 2
    assert "--method" in capsys.readouterr().err


def test_drift_or_alert_never_alerts_on_a_typo(files: Path) -> None:
    """`edgeorch drift ... || alert` in a fresh process: a typo is 2, drift is 1, no drift is 0."""
    def code(*argv: str) -> int:
        return subprocess.run([sys.executable, "-m", "edgeorch.cli", *argv], capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[3])}).returncode

    assert code("drift", "ref.csv", "same.csv", "--methd", "ks") == 2  # argparse
    assert code("drift", "ref.csv", "same.csv", "--method", "kss") == 2
    assert code("drift", "ref.csv", "same.cvs") == 3
    assert code("drift", "ref.csv", "moved.csv") == 1


def test_fairness_prints_groups_and_metrics(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = run(["fairness", "scored.csv", "--group", "g", "--label", "y", "--prediction", "p"])
    out = capsys.readouterr().out
    assert code == 1  # m always selected, f half the time
    assert "GROUP" in out and "demographic_parity_ratio" in out and "violation" in out


def test_fairness_json(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run(["fairness", "scored.csv", "--group", "g", "--prediction", "p", "--json", "--min-group-size", "10"])
    doc = json.loads(capsys.readouterr().out)
    assert {r["metric"] for r in doc["rows"]} >= {"group", "disparate_impact"}


def test_help_texts_describe_exit_status() -> None:
    parser = argparse.ArgumentParser(prog="edgeorch")
    sub = parser.add_subparsers(dest="command")
    register(sub)
    text = sub.choices["drift"].format_help()
    assert "exit status" in text and "REFERENCE" in text


def test_commands_run_from_a_fresh_interpreter(files: Path) -> None:
    code = ("import argparse,sys; from edgeorch.kernels.cli import register; p=argparse.ArgumentParser();"
            "register(p.add_subparsers(dest='c')); a=p.parse_args(sys.argv[1:]); sys.exit(a.func(a))")
    repo = str(Path(__file__).parents[3])
    res = subprocess.run([sys.executable, "-c", code, "drift", "ref.csv", "moved.csv", "--json"],
                         capture_output=True, text=True, env={**__import__("os").environ, "PYTHONPATH": repo})
    assert res.returncode == 1, res.stderr
    assert json.loads(res.stdout)["verdict"] == "violation"
