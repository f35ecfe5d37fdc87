"""The kernels package loads lazily: the daemon validates options without numba."""

from __future__ import annotations

import subprocess
import sys

import pytest

from edgeorch import kernels


def _modules_after(stmt: str) -> set[str]:
    code = f"import sys; {stmt}; print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["edgeorch.kernels.options", "edgeorch.kernels.kinds"])
def test_importing_options_does_not_import_numba_or_numpy(module: str) -> None:
    # the daemon validates pipeline options through the kind registry
    mods = _modules_after(f"import {module}")
    assert "numba" not in mods
    assert "numpy" not in mods


def test_importing_the_cli_commands_does_not_import_numba() -> None:
    # the main CLI registers these commands at start-up: it must stay fast
    mods = _modules_after("import edgeorch.kernels.cli")
    assert "numba" not in mods and "numpy" not in mods


def test_importing_the_package_does_not_import_numba() -> None:
    mods = _modules_after("import edgeorch.kernels")
    assert "numba" not in mods


def test_using_a_kernel_imports_numba() -> None:
    mods = _modules_after("import edgeorch.kernels as k; k.ks_2samp([1.0, 2.0], [3.0])")
    assert "numba" in mods


@pytest.mark.parametrize("name", kernels.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(kernels, name) is not None


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        kernels.no_such_function  # noqa: B018


def test_public_functions_are_functions_not_submodules() -> None:
    # `profile` and `validate` share names with nothing: the submodules are
    # profiling/validation, so a prior submodule import cannot shadow them.
    import edgeorch.kernels.profiling
    import edgeorch.kernels.validation  # noqa: F401

    assert callable(kernels.profile) and kernels.profile.__module__.endswith("profiling")
    assert callable(kernels.validate) and kernels.validate.__module__.endswith("validation")


def test_documented_api_matches_exports() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[3] / "docs" / "kernels.md").read_text()
    missing = [n for n in kernels.__all__ if f"`{n}" not in doc]
    assert missing == []


def test_profiling_and_drift_of_files_never_import_pandas(tmp_path) -> None:
    """pyarrow's own to_numpy imports pandas (0.4-0.8 s of `edgeorch profile`); the kernels read buffers."""
    data = tmp_path / "d.csv"
    data.write_text("x,n,flag,city,when\n" + "".join(
        f"{i / 3},{i},{'true' if i % 2 else 'false'},{'ab'[i % 2]},2024-01-{1 + i % 28:02d}\n" for i in range(200)))
    mods = _modules_after(f"import edgeorch.kernels as k; p = k.profile({str(data)!r}); "
                          f"k.dataset_drift({str(data)!r}, {str(data)!r})")
    assert "numba" in mods
    assert "pandas" not in mods
