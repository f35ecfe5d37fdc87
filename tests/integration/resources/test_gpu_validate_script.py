"""tests/gpu/validate.sh where there is no GPU, and its verdict (issue 18, "Prove it on a GPU").

The script is meant for a GPU machine; here it must stop at once and say
why, never with a traceback, and leave its files in ``$OUT``. Its verdict
(``validate_summary.py``) must never call a run OK that skipped the
contract suite, lost a pass or took too long.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeorch.config import ResourcesConfig
from edgeorch.resources.gpus.detect import detect_gpus

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests/gpu"))
import validate_summary  # a stdlib-only script of tests/gpu, imported by path


def test_without_a_gpu_it_stops_at_once_says_why_and_leaves_its_files(tmp_path: Path) -> None:
    found = detect_gpus(ResourcesConfig(gpu_backend="auto"))
    if found.backend is not None or found.broken:
        if found.backend is not None:
            found.backend.close()
        pytest.skip(f"this machine has NVIDIA GPUs ({found.message}): the script validates them instead")
    out = tmp_path / "out"
    p = subprocess.run(["bash", str(REPO / "tests/gpu/validate.sh")], cwd=tmp_path, capture_output=True, text=True, check=False,
                       timeout=120, env={"PATH": "/usr/bin:/bin", "OUT": str(out), "PYTHON": sys.executable})
    assert p.returncode == 3, (p.stdout, p.stderr)
    assert f"validate.sh: no NVIDIA GPU on this machine ({found.message}): nothing to validate" in p.stderr
    assert "Traceback" not in p.stdout + p.stderr
    assert "RESULT        NO GPU: nothing was validated" in p.stdout
    assert {f.name for f in out.iterdir()} >= {"system.txt", "summary.txt", "summary.json"}
    doc = json.loads((out / "summary.json").read_text())
    assert doc["ok"] is False and doc["detect"] == {"state": "none", "message": found.message}
    assert f"## daemon's view (none): {found.message}" in (out / "system.txt").read_text()


def test_without_pynvml_or_pytest_it_says_what_to_install(tmp_path: Path) -> None:
    p = subprocess.run(["bash", str(REPO / "tests/gpu/validate.sh")], cwd=tmp_path, capture_output=True, text=True, check=False,
                       timeout=60, env={"PATH": "/usr/bin:/bin", "OUT": str(tmp_path), "PYTHON": "/bin/true"})
    assert p.returncode == 2 and "validate.sh: /bin/true cannot run the GPU tests" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr


def _pass(out: Path, name: str, rc: int, cases: str) -> None:
    d = out / name
    d.mkdir(parents=True)
    (d / "rc").write_text(f"{rc}\n")
    (d / "junit.xml").write_text(f"<testsuites><testsuite>{cases}</testsuite></testsuites>")


OK_CASE = '<testcase classname="tests.gpu.test_x" name="test_ok"/>'
CONTRACT_SKIP = ('<testcase classname="tests.unit.resources.test_gpu_contract" name="test_a[nvml]">'
                 '<skipped message="no GPU"/></testcase>')


def test_the_verdict_is_ok_only_when_every_pass_ran_passed_and_skipped_no_contract_test(tmp_path: Path) -> None:
    _pass(tmp_path, "root", 0, OK_CASE)
    _pass(tmp_path, "unprivileged", 0, OK_CASE)
    status, text, doc = validate_summary.summarise(tmp_path, 120, "ok", "nvml: 1 GPU device", ["root", "unprivileged"])
    assert (status, doc["ok"]) == (0, True) and text.endswith(f"RESULT        OK in 120 s; results in {tmp_path}")
    status, text, _ = validate_summary.summarise(tmp_path, 301, "ok", "nvml: 1 GPU device", ["root", "unprivileged"])
    assert status == 1 and "301 s, over the 300 s the validation may take" in text


def test_a_skipped_contract_test_or_a_pass_that_could_not_start_fails_the_verdict(tmp_path: Path) -> None:
    _pass(tmp_path, "root", 0, OK_CASE + CONTRACT_SKIP)
    _pass(tmp_path, "unprivileged", 125, "")
    (tmp_path / "unprivileged" / "pytest.log").write_text("validate.sh: pass unprivileged could not start: …\n")
    status, text, doc = validate_summary.summarise(tmp_path, 60, "ok", "nvml", ["root", "unprivileged"])
    assert status == 1 and doc["ok"] is False
    assert "root          FAIL rc=0 passed=1 failed=0 skipped=1" in text
    assert "unprivileged  FAIL rc=125 (could not start)" in text and "not run: validate.sh: pass unprivileged" in text


def test_no_pass_is_no_gpu_or_broken_nvml_never_ok(tmp_path: Path) -> None:
    assert validate_summary.summarise(tmp_path, 1, "none", "no NVML library", [])[0] == 3
    status, text, _ = validate_summary.summarise(tmp_path, 1, "broken", "NVML cannot start", [])
    assert status == 1 and "FAIL: NVML is broken here, nothing was validated" in text
