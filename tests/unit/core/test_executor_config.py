"""``[executor]`` in config.toml: local by default, ray with an address and namespace, storage moves run
folders; bad values are config errors naming file, field, value and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeorch.config import ExecutorConfig, parse_config
from edgeorch.errors import ConfigError


def _cfg(table: dict, base: Path = Path("/etc/eo")):
    return parse_config({"state": {"dir": "/var/lib/eo"}, "executor": table}, base=base, file="config.toml",
                        source=None)


def test_by_default_attempts_run_here_and_run_folders_are_in_the_state_dir():
    cfg = parse_config({"state": {"dir": "/var/lib/eo"}}, base=Path("/"), file="config.toml", source=None)
    assert cfg.executor == ExecutorConfig()
    assert cfg.executor.kind == "local" and cfg.executor.namespace == "edgeorch"
    assert cfg.runs_dir == Path("/var/lib/eo/runs")


def test_ray_with_address_namespace_and_a_shared_storage():
    cfg = _cfg({"kind": "ray", "address": "10.0.0.5:6379", "namespace": "lab-2", "storage": "/mnt/shared/eo"})
    assert cfg.executor == ExecutorConfig("ray", "10.0.0.5:6379", "lab-2", Path("/mnt/shared/eo"))
    assert cfg.runs_dir == Path("/mnt/shared/eo/runs")  # the one rule: every user of runs_dir follows


def test_a_relative_storage_is_relative_to_the_config_folder():
    assert _cfg({"kind": "ray", "storage": "shared"}).executor.storage == Path("/etc/eo/shared")


@pytest.mark.parametrize("table,field,expected", [
    ({"kind": "kubernetes"}, "executor.kind", "one of local, ray"),
    ({"kind": "ray", "namespace": "my space"}, "executor.namespace", "letters, digits"),
    ({"kind": "ray", "namespace": 3}, "executor.namespace", "string"),
    ({"kind": "ray", "storage": "s3://bucket/eo"}, "executor.storage", "every node mounts"),
    ({"address": "auto"}, "executor.address", 'kind = "ray"'),
    ({"kind": "ray", "adress": "auto"}, "executor.adress", "address"),
])
def test_a_bad_value_is_a_config_error_naming_file_field_value_and_expected(table, field, expected):
    with pytest.raises(ConfigError) as err:
        _cfg(table)
    text = err.value.render()
    assert "config.toml" in text and field in text and expected in text, text
