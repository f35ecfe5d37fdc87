"""The summary of ``tests/gpu/validate.sh``: one line per pass, the figures, and a verdict (stdlib only).

    python tests/gpu/validate_summary.py OUT SECONDS DETECT_STATE DETECT_MESSAGE [PASS ...]

Reads each pass's ``OUT/PASS/rc``, ``junit.xml``, ``nvml_timing.json`` and
``cuda_child.json``; prints the summary and writes ``OUT/summary.txt`` and
``OUT/summary.json``. Exit status: 0 when every pass ran, had no failure,
passed something and skipped nothing of the contract suite, and the whole
validation took at most :data:`BUDGET_S`; 3 when no pass ran because this
machine has no NVIDIA GPU (``DETECT_STATE`` ``none``); 1 otherwise.

``DETECT_STATE`` is what the daemon's own rule (``detect_gpus``) says of this
machine: ``ok``, ``partial`` (NVML works but could not open some GPUs or
watch their health), ``broken`` (GPUs here but NVML unusable), ``none`` (no
GPU here) or ``error`` (the rule itself could not run).
"""

from __future__ import annotations

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

BUDGET_S = 300
"""The issue's limit for the whole validation (both passes)."""


def read_pass(d: Path) -> dict[str, Any]:
    """rc, counts, skipped and failed tests (with their first message line) of one pass folder."""
    rc_file = d / "rc"
    text = rc_file.read_text().strip() if rc_file.exists() else ""
    rc = int(text) if text.lstrip("-").isdigit() else 1
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    skipped: list[str] = []
    failed: list[str] = []
    junit = d / "junit.xml"
    if junit.exists():
        try:
            cases = list(ET.parse(junit).iter("testcase"))
        except ET.ParseError as exc:
            failed.append(f"{junit}: unreadable ({exc})")
            cases = []
        for case in cases:
            cid = f"{case.get('classname')}::{case.get('name')}"
            skip = case.find("skipped")
            bad = case.find("failure")
            if bad is None:
                bad = case.find("error")
            if skip is not None:
                counts["skipped"] += 1
                skipped.append(f"{cid}: {skip.get('message', '')}")
            elif bad is not None:
                counts["failed"] += 1
                message = (bad.get("message") or "").strip().splitlines()
                failed.append(f"{cid}: {message[0][:300] if message else ''}")
            else:
                counts["passed"] += 1
    return {"rc": rc, **counts, "skipped_tests": skipped, "failed_tests": failed}


def summarise(out: Path, seconds: int, state: str, message: str, passes: list[str]) -> tuple[int, str, dict[str, Any]]:
    """(exit status, text, JSON document) of the validation whose results are in ``out``."""
    lines = [f"{'machine':13} {state}: {message}"]
    doc: dict[str, Any] = {"seconds": seconds, "detect": {"state": state, "message": message}, "passes": {}}
    ok = bool(passes)
    for name in passes:
        d = out / name
        p = read_pass(d)
        contract_skips = [s for s in p["skipped_tests"] if "test_gpu_contract" in s]
        good = p["rc"] == 0 and p["failed"] == 0 and not contract_skips and p["passed"] > 0
        ok &= good
        doc["passes"][name] = p
        why = {124: " (timed out)", 125: " (could not start)"}.get(p["rc"], "")
        lines.append(f"{name:13} {'OK  ' if good else 'FAIL'} rc={p['rc']}{why} passed={p['passed']} "
                     f"failed={p['failed']} skipped={p['skipped']}")
        if p["rc"] == 125 and (d / "pytest.log").exists():
            lines.append("    not run: " + (d / "pytest.log").read_text().strip())
        lines += [f"    FAILED  {f}" for f in p["failed_tests"]] + [f"    skipped {s}" for s in p["skipped_tests"]]
        timing = d / "nvml_timing.json"
        if timing.exists():
            t = json.loads(timing.read_text())
            p["timing"] = t
            for call, s in sorted(t.get("calls", {}).items()):
                lines.append(f"    {call:44} n={s['n']:<5} p50={s['p50_ms']:.3f} ms  p99={s['p99_ms']:.3f} ms")
            for what, s in sorted(t.get("decision", {}).items()):
                if isinstance(s, dict):
                    lines.append(f"    decision: {what:36} p50={s['p50_ms']:.3f} ms  p99={s['p99_ms']:.3f} ms")
        child = d / "cuda_child.json"
        if child.exists():
            c = json.loads(child.read_text())
            p["cuda_child"] = c
            lines.append(f"    CUDA child: listed after {c.get('listed_after_s')} s, context "
                         f"{c.get('context_overhead_mib')} MiB, gone {c.get('gone_after_kill_s')} s after SIGKILL")
    if seconds > BUDGET_S:
        ok = False
        lines.append(f"{'time':13} FAIL {seconds} s, over the {BUDGET_S} s the validation may take")
    if not passes:
        verdict = ("NO GPU: nothing was validated" if state == "none"
                   else "FAIL: NVML is broken here, nothing was validated" if state == "broken"
                   else "FAIL: no pass ran")
    else:
        verdict = "OK" if ok else "FAIL"
    lines.append(f"{'RESULT':13} {verdict} in {seconds} s; results in {out}")
    doc["ok"] = ok
    status = 0 if ok else (3 if not passes and state == "none" else 1)
    return status, "\n".join(lines), doc


def main(argv: list[str]) -> int:
    if len(argv) < 4 or not argv[1].isdigit():
        print("usage: validate_summary.py OUT SECONDS DETECT_STATE DETECT_MESSAGE [PASS ...]", file=sys.stderr)
        return 2
    out = Path(argv[0])
    status, text, doc = summarise(out, int(argv[1]), argv[2], argv[3], argv[4:])
    print("\n== summary ==\n" + text)
    (out / "summary.txt").write_text(text + "\n")
    (out / "summary.json").write_text(json.dumps(doc, indent=2) + "\n")
    return status


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
