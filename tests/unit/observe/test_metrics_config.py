"""``[metrics]`` in config.toml: listen, textfile, interval, and the errors for bad values."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from edgeorch.config import load_config, parse_config, parse_listen
from edgeorch.errors import ConfigError


def _metrics(text: str):
    return parse_config(tomllib.loads(text), base=Path("/etc/eo"), file="config.toml", source=None).metrics


def test_metrics_are_off_by_default():
    m = load_config(None).metrics  # the embedded defaults
    assert (m.listen, m.textfile, m.interval) == (None, None, 15.0)


@pytest.mark.parametrize("value, expected", [
    ("9464", ("127.0.0.1", 9464)),  # a bare port: this machine only
    (9464, ("127.0.0.1", 9464)),
    ("0.0.0.0:9464", ("0.0.0.0", 9464)),
    ("[::1]:9100", ("::1", 9100)),
    ("localhost:0", ("localhost", 0)),  # any free port
])
def test_listen_accepts_a_port_or_host_and_port(value, expected):
    assert parse_listen(value) == expected


@pytest.mark.parametrize("value, reason", [
    ("a:b", "no valid port"), (70000, "no valid port"), ("::1:80", "IPv6 host without brackets"),
    ("[::1]", "not a valid [IPv6]:port"), (":9464", "no host"), (True, "not a port"), (["9464"], "not a port"),
])
def test_listen_refuses_anything_else_saying_why(value, reason):
    with pytest.raises(ValueError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse_listen(value)


def test_a_bad_listen_is_a_config_error_naming_the_field_the_value_and_what_is_expected():
    with pytest.raises(ConfigError) as err:
        _metrics('[metrics]\nlisten = "localhost:http"')
    text = err.value.render()
    assert "config.toml" in text and "metrics.listen" in text and "localhost:http" in text
    assert "host:port" in text


def test_the_textfile_is_resolved_against_the_config_folder_and_must_end_in_prom():
    assert _metrics('[metrics]\ntextfile = "prom/edgeorch.prom"').textfile == Path("/etc/eo/prom/edgeorch.prom")
    with pytest.raises(ConfigError, match=r"metrics.textfile: does not end in \.prom.*node_exporter"):
        _metrics('[metrics]\ntextfile = "/var/lib/node_exporter/edgeorch.txt"')


@pytest.mark.parametrize("value", ['"0s"', '"500ms"', '"soon"', "-1"])
def test_an_interval_below_one_second_or_not_a_duration_is_refused(value):
    with pytest.raises(ConfigError, match="metrics.interval"):
        _metrics(f"[metrics]\ninterval = {value}")


def test_an_unknown_key_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="metrics.port: unknown key.*interval, listen, textfile"):
        _metrics("[metrics]\nport = 9464")
