"""The task key ``container``: parsed with errors naming file, field, value and what was expected; in the
definition hash; the published schema and the config agree with the parser."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeorch.config import parse_config
from edgeorch.containers.spec import (
    CONTAINER_KEYS,
    PULL_POLICIES,
    RUNTIMES,
    ContainerSpec,
    Mount,
)
from edgeorch.errors import ConfigError
from edgeorch.pipelines.parse import parse_pipeline

ROOT = Path(__file__).resolve().parents[3]


def _parse(task: dict, params: dict | None = None):
    data = {"name": "p", "tasks": {"t": task}, **({"params": params} if params else {})}
    return parse_pipeline(data, file=Path("/pipes/p.toml"), text="")


def _errors(task: dict) -> list[tuple[str, str, object]]:
    pipeline, errors = _parse(task)
    assert pipeline is None, "expected errors"
    return [(e.field, str(e), e.value) for e in errors]


def test_a_full_container_key_is_read():
    pipeline, errors = _parse({"command": ["python", "x.py"], "container": {
        "image": "localhost/trainer:{tag}", "runtime": "docker", "mounts": ["/srv/data:/data:ro", "cache:/cache"],
        "user": "1000:1000", "workdir": "/work", "args": ["--network", "none"], "pull": "never"}},
        params={"tag": "3"})
    assert errors == []
    assert pipeline.tasks["t"].container == ContainerSpec(
        image="localhost/trainer:{tag}", runtime="docker", mounts=(Mount("/srv/data", "/data", True),
                                                                   Mount("cache", "/cache", False)),
        user="1000:1000", workdir="/work", args=("--network", "none"), pull="never")


def test_defaults_are_the_configured_runtime_and_pull_missing():
    pipeline, errors = _parse({"command": ["true"], "container": {"image": "bb:1"}})
    assert errors == []
    spec = pipeline.tasks["t"].container
    assert spec.runtime is None and spec.pull == "missing" and spec.mounts == () and spec.args == ()


@pytest.mark.parametrize("container, field, words", [
    ({}, "tasks.t.container.image", "is required"),
    ({"image": ""}, "tasks.t.container.image", "must not be empty"),
    ({"image": "bad image"}, "tasks.t.container.image", "not an image reference"),
    ({"image": "-rm"}, "tasks.t.container.image", "not an image reference"),
    ({"image": "a", "runtime": "lxc"}, "tasks.t.container.runtime", "unknown value"),
    ({"image": "a", "pull": "sometimes"}, "tasks.t.container.pull", "unknown value"),
    ({"image": "a", "mounts": ["/x"]}, "tasks.t.container.mounts[0]", "SOURCE:TARGET"),
    ({"image": "a", "mounts": ["/x:rel"]}, "tasks.t.container.mounts[0]", "relative target"),
    ({"image": "a", "mounts": ["/x:/y:rx"]}, "tasks.t.container.mounts[0]", "unknown mount option"),
    ({"image": "a", "mounts": ["/x:/edgeorch/output"]}, "tasks.t.container.mounts[0]", "reserves"),
    ({"image": "a", "mounts": ["/x:/y", "/z:/y"]}, "tasks.t.container.mounts", "same target"),
    ({"image": "a", "mounts": ["/x:/y", "/z:/y/"]}, "tasks.t.container.mounts", "same target"),
    ({"image": "a", "mounts": "/x:/y"}, "tasks.t.container.mounts", "wrong type"),
    ({"image": "a", "user": "a b"}, "tasks.t.container.user", "not a user"),
    ({"image": "a", "workdir": "rel"}, "tasks.t.container.workdir", "absolute path"),
    ({"image": "a", "args": ["--rm"]}, "tasks.t.container.args[0]", "edgeorch sets itself"),
    ({"image": "a", "args": ["--cpuset-cpus=0"]}, "tasks.t.container.args[0]", "edgeorch sets itself"),
    ({"image": "a", "args": ["-d"]}, "tasks.t.container.args[0]", "edgeorch sets itself"),
    # Short options as the runtime reads them: a cluster, or a value attached (`-dt` detached the container).
    ({"image": "a", "args": ["-dt"]}, "tasks.t.container.args[0]", "edgeorch sets itself (-d)"),
    ({"image": "a", "args": ["--init", "-u0"]}, "tasks.t.container.args[1]", "edgeorch sets itself (-u)"),
    ({"image": "a", "args": ["-w/etc"]}, "tasks.t.container.args[0]", "edgeorch sets itself (-w)"),
    ({"image": "a", "args": ["-m1g"]}, "tasks.t.container.args[0]", "edgeorch sets itself (-m)"),
    ({"image": "a", "args": ["-Pit"]}, "tasks.t.container.args[0]", "edgeorch sets itself (-i)"),
    ({"image": "a", "imgae": "b"}, "tasks.t.container.imgae", "unknown key"),
    ({"image": "a:{nope}"}, "tasks.t.container.image", "unknown placeholder {nope}"),
])
def test_bad_container_keys_are_errors_naming_the_field(container, field, words):
    found = _errors({"command": ["true"], "container": container})
    assert any(f == field and words in msg for f, msg, _ in found), found
    assert all("/pipes/p.toml" in msg for _, msg, _ in found)


def test_a_container_that_is_not_a_table_is_one_error():
    found = _errors({"command": ["true"], "container": "bb:1"})
    assert [(f, "must be a table" in m) for f, m, _ in found] == [("tasks.t.container", True)]


def test_call_and_kind_tasks_cannot_have_a_container():
    found = _errors({"call": "m:f", "container": {"image": "a"}})
    assert any(f == "tasks.t.container" and "not a call" in m for f, m, _ in found), found


def test_the_host_workdir_is_refused_with_a_container():
    found = _errors({"command": ["true"], "workdir": "/srv", "container": {"image": "a"}})
    assert any(f == "tasks.t.workdir" and "container.workdir" in m for f, m, _ in found), found


def test_the_definition_hash_covers_what_runs_but_not_runtime_or_pull():
    def h(container):
        pipeline, errors = _parse({"command": ["true"], **({"container": container} if container else {})})
        assert errors == []
        return pipeline.tasks["t"].definition_hash

    base = h({"image": "a:1"})
    assert base != h(None)
    assert h({"image": "a:2"}) != base
    assert h({"image": "a:1", "mounts": ["/x:/y"]}) != base
    assert h({"image": "a:1", "args": ["--network", "none"]}) != base
    assert h({"image": "a:1", "runtime": "docker", "pull": "always"}) == base


def test_the_schema_knows_the_container_keys():
    schema = json.loads((ROOT / "schemas" / "pipeline.schema.json").read_text())
    prop = schema["definitions"]["task"]["properties"]["container"]
    assert list(prop["properties"]) == CONTAINER_KEYS and prop["additionalProperties"] is False
    assert prop["properties"]["runtime"]["enum"] == list(RUNTIMES)
    assert prop["properties"]["pull"]["enum"] == list(PULL_POLICIES)


def test_the_containers_config_table():
    cfg = parse_config({"containers": {"runtime": "docker", "podman_command": ["podman", "--runtime", "runc"]}},
                       base=Path("/"), file="c.toml", source=None)
    assert cfg.containers.runtime == "docker"
    assert cfg.containers.command("podman") == ("podman", "--runtime", "runc")
    assert cfg.containers.command("docker") == ("docker",)
    with pytest.raises(ConfigError) as err:
        parse_config({"containers": {"docker_command": []}}, base=Path("/"), file="c.toml", source=None)
    assert "containers.docker_command" in str(err.value) and "must name the program" in str(err.value)


def test_the_pipeline_document_shows_a_tasks_container():
    from edgeorch.pipelines.document import pipeline_document

    pipeline, errors = _parse({"command": ["true"], "container": {"image": "bb:1", "pull": "never"}})
    assert errors == []
    assert pipeline_document(pipeline)["tasks"]["t"]["container"] == {"image": "bb:1", "runtime": None,
                                                                      "pull": "never"}


def test_short_options_that_set_nothing_reserved_pass():
    """A value attached to an option that takes one is its value (`-edata=1` sets an variable named data)."""
    from edgeorch.containers.spec import reserved_option

    for arg in ("-edata=1", "-e", "DEBUG=1", "--env=X", "-P", "--init", "-v/x:/y", "--shm-size=8g", "-", "x-d"):
        assert reserved_option(arg) is None, arg
    assert [reserved_option(a) for a in ("--name=x", "-dt", "-td", "-it", "-u0", "--user=1")] == [
        "--name", "-d", "-t", "-i", "-u", "--user"]


def test_an_image_a_param_filled_in_is_checked_before_the_runtime_sees_it(tmp_path):
    """`image = "{img}"` with `-p img=--help` ran `podman image inspect --help` ("an unexpected answer"): the
    substituted reference is checked as the key is, and never reaches the runtime."""
    from edgeorch.containers.image import ContainerError, resolve

    ran = tmp_path / "ran"
    fake = tmp_path / "podman"
    fake.write_text(f"#!/bin/sh\ntouch {ran}\nexit 1\n")
    fake.chmod(0o755)
    for reference in ("--help", "-latest", "two words", ""):
        with pytest.raises(ContainerError, match="is not an image reference once its placeholders are filled in"):
            resolve([str(fake)], "podman", reference, "never", where="tasks.t.container")
    assert not ran.exists()
