"""`edgeorch validate`: every error names file, pipeline, field, value and what was expected."""

from __future__ import annotations

import textwrap

import pytest

from edgeorch.errors import UsageError
from edgeorch.pipelines import find_cycle, parse_param_args, resolve_params, validate_path


def _errors(tmp_path, text: str, name: str = "p") -> list[str]:
    f = tmp_path / f"{name}.toml"
    f.write_text(textwrap.dedent(text))
    report = validate_path(f)
    return [e.render() for e in report.errors]


def test_a_valid_pipeline_has_a_topological_order_and_hashes(tmp_path):
    f = tmp_path / "ok.toml"
    f.write_text('[tasks.b]\ncommand=["true"]\nneeds=["a"]\n[tasks.a]\ncommand=["true"]\n')
    report = validate_path(f)
    assert report.ok
    p = report.pipelines["ok"]
    assert p.order == ("a", "b")
    assert len(p.content_hash) == 64 and p.tasks["a"].definition_hash != p.tasks["b"].definition_hash


@pytest.mark.parametrize("text,expected", [
    ('[tasks.a]\ncommand=["true"]\nretrys=2\n', ["tasks.a.retrys: unknown key", "did you mean 'retries'"]),
    ('[tasks.a]\ncomand=["true"]\n', ["tasks.a.comand: unknown key", "did you mean 'command'"]),
    ('nmae="x"\n[tasks.a]\ncommand=["true"]\n', ["nmae: unknown key", "did you mean 'name'"]),
    ('[tasks.a]\ncommand=["true"]\nretries="two"\n', ["tasks.a.retries: has the wrong type (string)", "found 'two'", "expected an integer"]),
    ('[tasks.a]\ncommand=["true"]\nretries=-1\n', ["tasks.a.retries: is out of range", "found -1"]),
    # TOML's nan and inf passed: "retry 2 of 3 in nans", a wait nobody asked for.
    ('[tasks.a]\ncommand=["true"]\nretry_jitter=nan\n', ["tasks.a.retry_jitter: is not a finite number", "found nan"]),
    ('[tasks.a]\ncommand=["true"]\nretry_backoff=inf\n', ["tasks.a.retry_backoff: is not a finite number"]),
    ('[tasks.a]\ncommand=["true"]\ntimeout="soon"\n', ["tasks.a.timeout: is not a valid duration", "found 'soon'", "'15m'"]),
    ('[tasks.a]\ncommand=["true"]\ntimeout="5300w"\n', ["tasks.a.timeout: is longer than 100 years", "found '5300w'"]),
    # A cap below the delay itself made every retry wait the cap, silently.
    ('[tasks.a]\ncommand=["true"]\nretry_delay="1h"\nretry_max_delay="10m"\n',
     ["tasks.a.retry_delay: is longer than retry_max_delay", "found '1h'", "(600s)"]),
    ('[tasks.a]\ncommand=["true"]\ngpu_memory="lots"\n', ["tasks.a.gpu_memory: is not a valid size", "'8G'"]),
    ('[tasks.a]\ncommand="echo hi"\n', ["tasks.a.command: is a string but shell is not true", "argv array"]),
    ('[tasks.a]\ncommand=[""]\n', ["tasks.a.command[0]: names no program", "found ''"]),
    ('[tasks.a]\ncommand=["  ", "x"]\n', ["tasks.a.command[0]: names no program"]),
    ('[tasks.a]\ncommand=["true"]\ncall="m:f"\n', ["tasks.a: must set exactly one of command, call or kind", "found 'command, call'"]),
    ('[tasks.a]\ncall="not a ref"\n', ["tasks.a.call: is not a function reference", "'package.module:function'"]),
    ('[tasks.a]\ncommand=["true"]\nneeds=["b"]\n', ["tasks.a.needs: needs an unknown task", "found 'b'"]),
    ('[tasks.a]\ncommand=["true"]\nneeds=["a"]\n', ["tasks.a.needs: a task cannot need itself"]),
    # Names sharing one variable: the later one's value hid the other's ($EDGEORCH_UPSTREAM_A_B held a_b's
    # outputs only); a task named outputs replaced the JSON map of every upstream's outputs.
    ('[tasks.a-b]\ncommand=["true"]\n[tasks.a_b]\ncommand=["true"]\n',
     ["tasks.a_b: would give its outputs as $EDGEORCH_UPSTREAM_A_B, as task 'a-b' does"]),
    ('[tasks.Train]\ncommand=["true"]\n[tasks.train]\ncommand=["true"]\n',
     ["tasks.train: would give its outputs as $EDGEORCH_UPSTREAM_TRAIN, as task 'Train' does"]),
    ('[tasks.outputs]\ncommand=["true"]\n', ["tasks.outputs: would give its outputs as $EDGEORCH_UPSTREAM_OUTPUTS, "
                                             "the JSON map", "outputs is reserved"]),
    ('[params]\nmy-param=1\nmy_param=2\n[tasks.a]\ncommand=["true"]\n',
     ["params.my_param: would be passed as $EDGEORCH_PARAM_MY_PARAM, as param 'my-param' is"]),
    ('[tasks.a]\ncommand=["echo", "{epoch}"]\n[params]\nepochs=3\n', ["tasks.a.command[0]" if False else "tasks.a.command[1]", "unknown placeholder {epoch}", "did you mean {epochs}"]),
    ('[tasks.a]\ncommand=["true"]\noutputs=["/etc/passwd"]\n', ["tasks.a.outputs: must be relative"]),
    ('[tasks]\n', ["tasks: the pipeline has no tasks"]),
    ('name="p"\n', ["tasks: the pipeline has no tasks"]),
    ('[params]\nx=[1,2]\n[tasks.a]\ncommand=["true"]\n', ["params.x: has an unsupported type"]),
    ('[params]\nx={type="int", default="ten"}\n[tasks.a]\ncommand=["true"]\n', ["params.x.default: is not an integer"]),
    ('[tasks."bad name"]\ncommand=["true"]\n', ["is not a valid task name", "found 'bad name'"]),
    ('[tasks.a]\ncommand=["true"]\ngpus=1\ngpu_memory="2G"\n', ["tasks.a.gpu_memory: cannot be combined with gpus"]),
    ('[params]\nn=1\n[tasks.a]\ncommand=["echo", "{n:03d}"]\n', ["tasks.a.command[1]", "has a format spec or conversion"]),
    ('[params]\nn=1\n[tasks.a]\ncommand=["echo", "{n!r}"]\n', ["has a format spec or conversion"]),
    # Another tool's layout: tasks as an array of tables, the pipeline's keys under [pipeline].
    ('[[tasks]]\nname="extract"\ncommand=["true"]\n[[tasks]]\nname="load"\ncommand=["true"]\n',
     ["tasks: is an array of 2 tables ([[tasks]])", "[tasks.NAME]", "write [tasks.extract] in place of each [[tasks]]"]),
    ('[pipeline]\nname="p"\n[tasks.a]\ncommand=["true"]\n',
     ["pipeline: is not a table of a pipeline file", "at the top of the file", "remove the [pipeline] line"]),
    # Airflow's names and layout: the key meant, or where it belongs.
    ('dag_id="x"\n[tasks.a]\ncommand=["true"]\n', ["dag_id: unknown key", "did you mean 'name'?"]),
    ('schedule_interval="@daily"\n[tasks.a]\ncommand=["true"]\n', ["did you mean 'schedule'?"]),
    ('retries=3\n[tasks.a]\ncommand=["true"]\n', ["retries: unknown key", "retries is a task's key: write it in each"]),
    ('[tasks.a]\ncommand=["true"]\nexecution_timeout=5\n', ["did you mean 'timeout'?"]),
    ('schedule="CRON_TZ=America/New_York 0 3 * * *"\n[tasks.a]\ncommand=["true"]\n',
     ["sets a timezone with CRON_TZ=, which edgeorch does not read", 'timezone = "Area/City"']),
    ('[tasks.a]\nshell=true\ncommand="cat ${DATA_DIR}/x.csv"\n',
     ["unknown placeholder {DATA_DIR} (an environment variable? write $DATA_DIR, or ${{DATA_DIR}} for the braces)"]),
    ('[tasks.a]\ncommand=["echo", "{{ ds }}"]\n', ["{{ ds }} is a Jinja template, which edgeorch does not fill in"]),
    ('[tasks.a]\ncommand=["true"]\nenv={DEBUG=true}\n', ["tasks.a.env.DEBUG: must be a string or number (found true)"]),
    # Another tool's name for a key: the key meant.
    ('[tasks.b]\ncommand=["true"]\n[tasks.a]\ncommand=["true"]\nafter=["b"]\n', ["tasks.a.after: unknown key", "did you mean 'needs'"]),
    ('[tasks.a]\ncommand=["true"]\nmax_retries=3\n', ["tasks.a.max_retries: unknown key", "did you mean 'retries'"]),
    # Braces of a shell group, an awk program or find's {}: not placeholders; the message shows them doubled.
    ('[tasks.a]\nshell=true\ncommand="test -f x || { echo \'no x: stop\' >&2; exit 3; }"\n',
     ["tasks.a.command: { echo 'no x: stop' >&2; exit 3; } is not a placeholder",
      "literal braces doubled: {{ echo 'no x: stop' >&2; exit 3; }}"]),
    ('[tasks.a]\ncommand=["awk", "{print $1}", "f"]\n', ["tasks.a.command[1]: {print $1} is not a placeholder", "{{print $1}}"]),
    ('[tasks.a]\ncommand=["find", ".", "-exec", "rm", "{}", ";"]\n', ["tasks.a.command[4]: {} is not a placeholder", "{{}}"]),
    ('[params]\nepochs=3\n[tasks.a]\ncommand=["train", "{ epochs }"]\n', ["{ epochs } is not a placeholder (did you mean {epochs}?)"]),
])
def test_each_mistake_is_reported_with_its_field(tmp_path, text, expected):
    errors = _errors(tmp_path, text)
    assert errors, "expected an error"
    joined = "\n".join(errors)
    assert str(tmp_path / "p.toml") in joined
    assert "pipeline p:" in joined
    for fragment in expected:
        assert fragment in joined


def test_a_cycle_is_printed_as_a_path(tmp_path):
    errors = _errors(tmp_path, """
        [tasks.train]
        command = ["true"]
        needs = ["evaluate"]
        [tasks.evaluate]
        command = ["true"]
        needs = ["train"]
    """)
    assert len(errors) == 1
    assert "dependency cycle: train -> evaluate -> train" in errors[0] or "dependency cycle: evaluate -> train -> evaluate" in errors[0]


def test_malformed_toml_names_line_and_column(tmp_path):
    errors = _errors(tmp_path, '[tasks.a]\ncommand = ["true"]\nretries = 3x\n')
    assert len(errors) == 1
    assert f"{tmp_path / 'p.toml'}:3:" in errors[0] and "malformed TOML" in errors[0]
    errors = _errors(tmp_path, '[tasks.a]\ncommand = ["true"\n')
    assert f"{tmp_path / 'p.toml'}:2" in errors[0] and "Unclosed array at the end of the file" in errors[0]


def test_duplicate_task_tables_are_a_toml_error_with_position(tmp_path):
    errors = _errors(tmp_path, '[tasks.a]\ncommand=["true"]\n[tasks.a]\ncommand=["false"]\n')
    assert len(errors) == 1 and ":3:" in errors[0]


def test_duplicate_pipeline_names_across_files(tmp_path):
    (tmp_path / "one.toml").write_text('name="same"\n[tasks.a]\ncommand=["true"]\n')
    (tmp_path / "two.toml").write_text('name="same"\n[tasks.a]\ncommand=["true"]\n')
    report = validate_path(tmp_path)
    assert [e.field for e in report.errors] == ["name"]
    assert "duplicate pipeline name" in report.errors[0].render()


def test_every_problem_is_reported_in_one_pass(tmp_path):
    errors = _errors(tmp_path, '[tasks.a]\ncommand=["true"]\nretries="x"\ntimeout="y"\nfoo=1\n')
    assert len(errors) == 3


def test_not_utf8_is_reported(tmp_path):
    f = tmp_path / "p.toml"
    f.write_bytes(b"\xff\xfe[tasks.a]")
    report = validate_path(f)
    assert "not UTF-8" in report.errors[0].render()


def test_find_cycle_on_a_dag_is_none():
    assert find_cycle({"a": [], "b": ["a"], "c": ["a", "b"]}) is None


def test_params_from_the_command_line_are_typed_and_checked(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[params]\nepochs=3\nrate=0.1\nfast=false\nname={type="str"}\n[tasks.a]\ncommand=["true"]\n')
    p = validate_path(f).pipelines["p"]
    got = resolve_params(p, parse_param_args(["epochs=5", "fast=yes", "name=a=b"]))
    assert got == {"epochs": 5, "rate": 0.1, "fast": True, "name": "a=b"}
    # Each names its pipeline (a script starting many pipelines read `"pipeline": null`).
    with pytest.raises(UsageError, match="is not an integer") as err:
        resolve_params(p, {"epochs": "many", "name": "x"})
    assert err.value.pipeline == "p" and err.value.render().startswith("pipeline p: -p epochs: ")
    with pytest.raises(UsageError, match="did you mean 'epochs'") as err:
        resolve_params(p, {"epoch": "1", "name": "x"})
    assert err.value.render().startswith("pipeline p: -p epoch: has no parameter 'epoch'")
    assert err.value.value == "epoch" and "(found" not in err.value.render()  # --json's value: the bad name (null)
    with pytest.raises(UsageError, match="parameter name is required") as err:
        resolve_params(p, {})
    assert err.value.pipeline == "p"
    with pytest.raises(UsageError, match="key=value"):
        parse_param_args(["novalue"])


def test_an_unknown_key_like_no_known_one_gets_no_did_you_mean(tmp_path):
    """`bogus = 1` was asked "did you mean 'gpus'?": two shared letters are not a typo."""
    from edgeorch.tomlcheck import suggest

    assert suggest("bogus", ["gpus", "cpus", "needs"]) is None
    assert suggest("gpu", ["gpus", "cpus"]) == "gpus" and suggest("aeg", ["age"]) == "age"
    assert suggest("retrys", ["retries"]) == "retries" and suggest("nmae", ["name"]) == "name"


def test_a_key_set_twice_is_named(tmp_path):
    """tomllib says only "Cannot overwrite a value": the message names the key from the line it points at."""
    f = tmp_path / "p.toml"
    f.write_text('[tasks.a]\ncommand = ["true"]\ncommand = ["false"]\n')
    (err,) = validate_path(f).errors
    assert err.render() == f"{f}:3:20: malformed TOML: command is set twice in one table (Cannot overwrite a value)"


def test_the_default_cap_never_shortens_a_retry_delay_written_out(tmp_path):
    from edgeorch.pipelines.load import load_pipeline_file

    path = tmp_path / "p.toml"
    path.write_text('[tasks.a]\ncommand = ["true"]\nretry_delay = "1h 30m"\n[tasks.b]\ncommand = ["true"]\n')
    pipeline, errors = load_pipeline_file(path)
    assert not errors and pipeline is not None
    assert (pipeline.tasks["a"].retry_max_delay, pipeline.tasks["b"].retry_max_delay) == (5400.0, 300.0)


def test_an_operator_written_the_other_way_round_gets_the_one_meant():
    """A rule's `op = "=>"` got "did you mean '>'?" (the gate parser says '>=')."""
    from edgeorch.tomlcheck import suggest

    assert suggest("=>", [">", ">=", "<", "<="]) == ">="
    assert suggest("=<", [">", ">=", "<", "<="]) == "<="


def test_a_task_whose_model_key_has_an_error_still_registers_its_model(tmp_path):
    """An invalid `model.path` also said "models.m: no task of this pipeline registers this model": false."""
    errors = _errors(tmp_path, '[tasks.t]\ncommand = ["true"]\nmodel = { name = "m", path = "/abs/x" }\n'
                               '[models.m]\nmetrics = ["rmse"]\n')
    joined = "\n".join(errors)
    assert "tasks.t.model.path: must be relative" in joined and "no task of this pipeline registers" not in joined


def test_a_param_with_a_bad_default_is_one_error_not_also_an_unknown_placeholder(tmp_path):
    """`epochs = { type = "int", default = "ten" }` was reported twice: its default, and each {epochs} as "unknown
    placeholder ... expected a param", denying that the param was declared."""
    f = tmp_path / "p.toml"
    f.write_text('[params]\nepochs = { type = "int", default = "ten" }\n[tasks.a]\ncommand = ["echo", "{epochs}"]\n')
    res = validate_path(f)
    assert [e.field for e in res.errors] == ["params.epochs.default"], [e.render() for e in res.errors]


def test_a_param_with_a_bad_default_is_not_also_unknown_to_the_pipelines_rules(tmp_path):
    f = tmp_path / "p.toml"
    f.write_text('[params]\nn = { type = "int", default = 1.5 }\n[tasks.a]\ncommand = ["true"]\n'
                 '[[on]]\nname = "r"\nsignal = "failure_rate"\nthreshold = 0.5\ndedupe = "{params.n}"\n'
                 '[[on.do]]\ntrigger = "p"\nparams = { n = "{params.n}" }\n')
    res = validate_path(f)
    assert [e.field for e in res.errors] == ["params.n.default"], [e.render() for e in res.errors]


def test_a_name_two_files_declare_stays_with_its_holder_then_its_own_file_then_the_first(tmp_path):
    """Found by an operator: `cp nightly.toml aa_test.toml` (its name left as it was) took `nightly` over at the
    next reload, first in file order: the copy's command ran, the original's schedule was gone, and the error
    blamed the original file."""
    from edgeorch.pipelines.load import settle_names

    (tmp_path / "cached.toml").write_text('[tasks.a]\ncommand=["echo", "real"]\n')  # named by its file: "cached"
    (tmp_path / "aa_copy.toml").write_text('name="cached"\n[tasks.a]\ncommand=["echo", "impostor"]\n')
    report = validate_path(tmp_path)
    assert report.pipelines["cached"].source_file == str(tmp_path / "cached.toml")
    (err,) = report.errors
    assert err.file == str(tmp_path / "aa_copy.toml") and err.value == "cached"
    assert f"{tmp_path / 'cached.toml'} keeps pipeline 'cached' (the file named after it)" in err.render()
    # The file a daemon serves the name from keeps it, whatever its file name.
    (tmp_path / "one.toml").write_text('name="same"\n[tasks.a]\ncommand=["true"]\n')
    (tmp_path / "two.toml").write_text('name="same"\n[tasks.a]\ncommand=["true"]\n')
    assert validate_path(tmp_path).pipelines["same"].source_file == str(tmp_path / "one.toml")  # first in order
    report = validate_path(tmp_path, {"same": (str(tmp_path / "two.toml"), None)})
    assert report.pipelines["same"].source_file == str(tmp_path / "two.toml")
    assert any(e.file == str(tmp_path / "one.toml") and "(it serves it already)" in e.render() for e in report.errors)
    assert settle_names([]) == ({}, [])


def test_a_task_that_is_not_a_table_is_one_error(tmp_path):
    """`[tasks] a = "echo hi"` also said "must set exactly one of command, call or kind (found 'none')"."""
    errors = _errors(tmp_path, '[tasks]\na = "echo hi"\n')
    assert len(errors) == 1 and "tasks.a: must be a table" in errors[0], errors
