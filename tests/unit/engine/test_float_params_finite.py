"""A float param is a finite number: ``nan`` and ``inf`` parse as Python floats but are refused.

They compare with nothing and JSON has none: ``-p rmse=nan`` was accepted, its run created, and every reply
listing that run failed ("internal error in op 'runs.list'") until it left the listing's window.
"""

from __future__ import annotations

import pytest

from edgeorch.errors import UsageError
from edgeorch.pipelines import coerce_param, resolve_params, validate_path


@pytest.mark.parametrize("text", ["nan", "NaN", "inf", "-inf", "Infinity", " inf ", "1e999"])
def test_a_non_finite_float_is_refused_naming_the_param_and_what_is_expected(tmp_path, text) -> None:
    (tmp_path / "p.toml").write_text('[params]\nrmse = { type = "float", default = 1.0 }\n'
                                     '[tasks.t]\ncommand = ["true"]\n')
    pipeline = validate_path(tmp_path).pipelines["p"]
    with pytest.raises(UsageError) as err:
        resolve_params(pipeline, {"rmse": text})
    e = err.value
    assert "parameter rmse is not a finite number" in e.message
    assert e.field == "-p rmse" and e.expected == "a finite float" and e.value == text


def test_finite_floats_and_integers_still_pass() -> None:
    assert coerce_param("float", "2.5") == 2.5
    assert coerce_param("float", " -1e300 ") == -1e300
    assert coerce_param("float", 3) == 3.0


@pytest.mark.parametrize("decl", ['rmse = { type = "float", default = nan }', "rmse = nan", "rmse = -inf"])
def test_a_non_finite_default_in_the_pipeline_file_is_refused_naming_the_file(tmp_path, decl) -> None:
    """The shorthand form (``rmse = nan``) was taken: `validate` said ok and the run listed rmse as null."""
    (tmp_path / "p.toml").write_text(f'[params]\n{decl}\n[tasks.t]\ncommand = ["true"]\n')
    report = validate_path(tmp_path)
    assert "p" not in report.pipelines
    text = " ".join(e.render() for e in report.errors)
    assert "p.toml" in text and "params.rmse" in text and "finite" in text, text
