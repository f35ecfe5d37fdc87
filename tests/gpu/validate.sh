#!/usr/bin/env bash
# Validate edgeorch's GPU support on a machine with an NVIDIA GPU (issue 18), in under 5 minutes.
#
#   bash tests/gpu/validate.sh            # from the repository root, as root or as a user
#   OUT=/some/dir bash tests/gpu/validate.sh
#
# What it does:
#   1. records the machine (nvidia-smi -L, compute/persistence/MIG modes, remapped rows, driver,
#      nvidia-ml-py) in $OUT/system.txt;
#   2. runs the GPU tests (tests/gpu, and the GpuBackend contract on real NVML) with
#      EDGEORCH_REQUIRE_GPU=1, so nothing is skipped for want of a GPU: inventory vs nvidia-smi,
#      p50/p99 of every NVML call and of a scheduling decision, a CUDA child started through
#      libcuda (ctypes) with a lease's environment allocating 1 GiB (it sees exactly its device,
#      NVML lists it with a plausible size, the CUDA context is measured, a budget check acts,
#      it vanishes within 1 s of being killed), MIG (when configured), no drain on a healthy box,
#      and the engine running a CUDA task with the real backend;
#   3. as root, runs them again as an unprivileged user (nobody); as a user, again as root when
#      `sudo -n` allows it;
#   4. prints a summary (also $OUT/summary.txt and $OUT/summary.json) and exits 0 only when every
#      pass had no failure and the contract skipped nothing.
#
# Needs a Python with edgeorch and its test extras installed (pip install -e '.[test]'):
# $PYTHON, else .venv/bin/python, else python3. Results: $OUT (default: a new /tmp folder).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)

PY=${PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
PY=$(command -v "$PY" || echo "$PY")
if ! "$PY" -c 'import edgeorch, pynvml, pytest' 2>/dev/null; then
    echo "validate.sh: $PY cannot import edgeorch, pynvml and pytest: pip install -e '.[test]' first" >&2
    exit 2
fi

OUT=${OUT:-$(mktemp -d /tmp/edgeorch-gpu.XXXXXX)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
PER_PASS_TIMEOUT=${PER_PASS_TIMEOUT:-130}
TESTS=(tests/gpu tests/unit/resources/test_gpu_contract.py)
started=$(date +%s)

# -- 1. the machine ---------------------------------------------------------------------------
{
    echo "# $(date -u +%FT%TZ) $(hostname) uid=$(id -u) $(uname -r)"
    echo "## python: $("$PY" -c 'import sys; print(sys.version.split()[0])')" \
         "nvidia-ml-py: $("$PY" -c 'from edgeorch.resources.gpus.nvml import bindings_version as v; print(v())')"
    if command -v nvidia-smi >/dev/null; then
        echo "## nvidia-smi -L"; nvidia-smi -L 2>&1
        echo "## GPUs"
        nvidia-smi --query-gpu=index,uuid,name,driver_version,memory.total,compute_mode,persistence_mode,mig.mode.current \
            --format=csv 2>&1
        echo "## remapped rows"
        nvidia-smi --query-remapped-rows=gpu_uuid,remapped_rows.correctable,remapped_rows.uncorrectable,remapped_rows.pending,remapped_rows.failure \
            --format=csv 2>&1
    else
        echo "## nvidia-smi: not found"
    fi
    echo "## PCI: $("$PY" -c 'from edgeorch.resources.gpus.detect import nvidia_pci_devices as f; print(f() or "no NVIDIA device")')"
    echo "## daemon's view: $("$PY" -c '
from edgeorch.config import ResourcesConfig
from edgeorch.resources.gpus.detect import detect_gpus
d = detect_gpus(ResourcesConfig(gpu_backend="auto"))
print(("BROKEN: " if d.broken else "") + d.message)' 2>&1)"
} >"$OUT/system.txt" 2>&1
cat "$OUT/system.txt"

# -- 2/3. the test passes -----------------------------------------------------------------------
run_pass() {  # run_pass NAME [command prefix...]: the GPU tests as whoever the prefix makes us
    local name=$1; shift
    local dir="$OUT/$name"
    mkdir -p "$dir/tmp"
    chmod 0777 "$dir" "$dir/tmp" 2>/dev/null
    echo
    echo "== pass: $name ($*) =="
    if ! "$@" env HOME="$dir/tmp" "$PY" -c 'import edgeorch' >"$dir/precheck.log" 2>&1; then
        echo "validate.sh: pass $name cannot run $PY from $ROOT as $* ($(tr '\n' ' ' <"$dir/precheck.log"));" \
             "install edgeorch where that user can read it (e.g. a venv under /opt)" | tee "$dir/pytest.log"
        echo 125 >"$dir/rc"
        return
    fi
    "$@" env EDGEORCH_REQUIRE_GPU=1 EDGEORCH_GPU_OUT="$dir" TMPDIR="$dir/tmp" HOME="$dir/tmp" \
        PYTHONDONTWRITEBYTECODE=1 timeout "$PER_PASS_TIMEOUT" \
        "$PY" -m pytest "${TESTS[@]}" -m gpu -o addopts="" -p no:cacheprovider -q -rA \
        --junitxml="$dir/junit.xml" --basetemp="$dir/tmp/pytest" 2>&1 | tee "$dir/pytest.log"
    echo "${PIPESTATUS[0]}" >"$dir/rc"
}

passes=()
if [[ $(id -u) -eq 0 ]]; then
    run_pass root; passes+=(root)
    if command -v setpriv >/dev/null; then
        run_pass unprivileged setpriv --reuid=65534 --regid=65534 --clear-groups; passes+=(unprivileged)
    else
        echo "validate.sh: no setpriv: the unprivileged pass is not run" | tee "$OUT/unprivileged.missing"
    fi
else
    run_pass unprivileged; passes+=(unprivileged)
    if sudo -n true 2>/dev/null; then
        run_pass root sudo -n; passes+=(root)
    else
        echo "validate.sh: not root and no passwordless sudo: the root pass is not run" | tee "$OUT/root.missing"
    fi
fi

# -- 4. summary ------------------------------------------------------------------------------------
"$PY" - "$OUT" "$(( $(date +%s) - started ))" "${passes[@]}" <<'EOF'
import json, sys
import xml.etree.ElementTree as ET
from pathlib import Path

out, seconds, passes = Path(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
lines, summary, ok = [], {"seconds": seconds, "passes": {}}, bool(passes)
for name in passes:
    d = out / name
    rc = int((d / "rc").read_text().strip() or 1) if (d / "rc").exists() else 1
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    skipped, failed = [], []
    junit = d / "junit.xml"
    if junit.exists():
        for case in ET.parse(junit).iter("testcase"):
            cid = f"{case.get('classname')}::{case.get('name')}"
            if case.find("skipped") is not None:
                counts["skipped"] += 1
                skipped.append(f"{cid}: {case.find('skipped').get('message', '')}")
            elif case.find("failure") is not None or case.find("error") is not None:
                counts["failed"] += 1
                el = case.find("failure") if case.find("failure") is not None else case.find("error")
                failed.append(f"{cid}: {(el.get('message') or '').splitlines()[0][:200] if el.get('message') else ''}")
            else:
                counts["passed"] += 1
    contract_skips = [s for s in skipped if "test_gpu_contract" in s]
    good = rc == 0 and counts["failed"] == 0 and not contract_skips and counts["passed"] > 0
    ok &= good
    summary["passes"][name] = {"rc": rc, **counts, "skipped_tests": skipped, "failed_tests": failed}
    lines.append(f"{name:13} {'OK  ' if good else 'FAIL'} rc={rc} passed={counts['passed']} "
                 f"failed={counts['failed']} skipped={counts['skipped']}")
    if rc == 125:
        lines.append("    not run: " + (d / "pytest.log").read_text().strip())
    lines += [f"    FAILED  {f}" for f in failed] + [f"    skipped {s}" for s in skipped]
    timing = d / "nvml_timing.json"
    if timing.exists():
        t = json.loads(timing.read_text())
        summary["passes"][name]["timing"] = t
        for call, s in sorted(t.get("calls", {}).items()):
            lines.append(f"    {call:44} n={s['n']:<5} p50={s['p50_ms']:.3f} ms  p99={s['p99_ms']:.3f} ms")
        for what, s in sorted(t.get("decision", {}).items()):
            if isinstance(s, dict):
                lines.append(f"    decision: {what:36} p50={s['p50_ms']:.3f} ms  p99={s['p99_ms']:.3f} ms")
    child = d / "cuda_child.json"
    if child.exists():
        c = json.loads(child.read_text())
        summary["passes"][name]["cuda_child"] = c
        lines.append(f"    CUDA child: listed after {c.get('listed_after_s')} s, context "
                     f"{c.get('context_overhead_mib')} MiB, gone {c.get('gone_after_kill_s')} s after SIGKILL")
lines.append(f"{'RESULT':13} {'OK' if ok else 'FAIL'} in {seconds} s; results in {out}")
text = "\n".join(lines)
print("\n== summary ==\n" + text)
(out / "summary.txt").write_text(text + "\n")
summary["ok"] = ok
(out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
sys.exit(0 if ok else 1)
EOF
