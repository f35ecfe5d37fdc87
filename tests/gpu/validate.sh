#!/usr/bin/env bash
# Validate edgeorch's GPU support on a machine with an NVIDIA GPU (issue 18), in under 5 minutes.
#
#   bash tests/gpu/validate.sh            # from anywhere, as root or as a user
#   OUT=/some/dir bash tests/gpu/validate.sh
#
# What it does:
#   1. records the machine (nvidia-smi -L, compute/persistence/MIG modes, remapped rows, driver,
#      nvidia-ml-py, what the daemon's own detection says) in $OUT/system.txt;
#   2. stops there, saying why, when this machine has no NVIDIA GPU (exit 3) or has GPUs that NVML
#      cannot use at all (exit 1);
#   3. runs the GPU tests (tests/gpu, and the GpuBackend contract on real NVML) with
#      EDGEORCH_REQUIRE_GPU=1, so nothing is skipped for want of a GPU: inventory vs nvidia-smi,
#      p50/p99 of every NVML call and of a scheduling decision, a CUDA child started through
#      libcuda (ctypes) with a lease's environment allocating 1 GiB (it sees exactly its device,
#      NVML lists it with a plausible size, the CUDA context is measured, a budget check acts,
#      it vanishes within 1 s of being killed), MIG (when configured), no drain on a healthy box,
#      and the engine running a CUDA task with the real backend;
#   4. as root, runs them again as an unprivileged user (nobody, through setpriv; when nobody cannot
#      read this checkout or its Python, from a world-readable copy under /tmp with a system
#      python3); as a user, again as root when `sudo -n` allows it;
#   5. prints a summary (also $OUT/summary.txt and $OUT/summary.json).
#
# Exit status: 0 every pass ran and passed, the contract skipped nothing, all within 300 s;
# 1 a failure (NVML broken, a test failed or skipped the contract, a pass could not run, too slow);
# 2 this script cannot run (no Python with edgeorch's source, pynvml and pytest); 3 no NVIDIA GPU
# here, nothing validated. ALLOW_NO_GPU=1 runs the passes anyway (to test this script on a CPU
# machine: every GPU test then fails with the detection's reason).
#
# Needs a Python 3.11+ with pynvml (nvidia-ml-py) and pytest; edgeorch itself is taken from this
# checkout (nothing else of its dependencies is imported). $PYTHON, else .venv/bin/python, else
# python3. Results: $OUT (default: a new /tmp folder). Only the GPU tests run: the suite's root
# conftest (numba warm-up, Ray) is not loaded (--confcutdir).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
ROOT=$(pwd)

PY=${PYTHON:-}
if [[ -z $PY ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
PY=$(command -v "$PY" || echo "$PY")
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
missing=$("$PY" -c '
import importlib.util, sys
gone = [m for m in ("edgeorch", "pynvml", "pytest") if importlib.util.find_spec(m) is None]
print(", ".join(gone) if gone else "python < 3.11" if sys.version_info < (3, 11) else "none")' 2>&1)
if [[ $missing != none ]]; then
    echo "validate.sh: $PY cannot run the GPU tests (Python 3.11+ with pynvml and pytest needed;" \
         "missing: ${missing:-a working python}): pip install nvidia-ml-py pytest, or set PYTHON" >&2
    exit 2
fi

OUT=${OUT:-$(mktemp -d /tmp/edgeorch-gpu.XXXXXX)}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
PER_PASS_TIMEOUT=${PER_PASS_TIMEOUT:-130}
TESTS=(tests/gpu tests/unit/resources/test_gpu_contract.py)
started=$(date +%s)

# -- 1. the machine ---------------------------------------------------------------------------
# What the daemon's own rule (detect_gpus) says, a tab, its message: "ok"; "partial" (NVML works but
# could not open some GPUs or watch their health); "broken" (GPUs here, NVML unusable); "none" (no GPU
# here); "error" (the rule itself failed).
view=$("$PY" -c '
from edgeorch.config import ResourcesConfig
from edgeorch.resources.gpus.detect import detect_gpus
d = detect_gpus(ResourcesConfig(gpu_backend="auto"))
if d.backend is not None:
    d.backend.close()
state = ("partial" if d.broken else "ok") if d.backend is not None else ("broken" if d.broken else "none")
print(state + "\t" + d.message)' 2>"$OUT/detect.log")
if [[ $view != *$'\t'* ]]; then
    view="error"$'\t'"the daemon's GPU detection failed: $(tail -n 1 "$OUT/detect.log")"
fi
state=${view%%$'\t'*}
message=${view#*$'\t'}
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
    echo "## daemon's view ($state): $message"
} >"$OUT/system.txt" 2>&1
cat "$OUT/system.txt"

summary() {  # summary PASS...: print and write the summary; exits with its status
    "$PY" "$ROOT/tests/gpu/validate_summary.py" "$OUT" "$(( $(date +%s) - started ))" "$state" "$message" "$@"
    exit $?
}

if [[ ${ALLOW_NO_GPU:-} != 1 ]]; then
    if [[ $state == none ]]; then
        echo "validate.sh: no NVIDIA GPU on this machine ($message): nothing to validate" >&2
        summary
    elif [[ $state == broken || $state == error ]]; then
        echo "validate.sh: NVIDIA GPUs here but NVML cannot be used: $message" >&2
        summary
    fi
fi

# -- 3/4. the test passes -----------------------------------------------------------------------
# can_run PY DIR [prefix...]: whether the prefix's user can import edgeorch, pynvml and pytest from DIR with PY.
can_run() {
    local py=$1 dir=$2; shift 2
    "$@" env -C "$dir" HOME=/tmp PYTHONPATH="$dir${STAGE_SITE:+:$STAGE_SITE}" "$py" -c \
        'import sys, edgeorch, pynvml, pytest; sys.exit(sys.version_info < (3, 11))' 2>&1
}

# stage DIR: a world-readable copy of what the passes read (edgeorch, the GPU tests, pyproject.toml
# and the pure-Python modules pytest and pynvml are made of), for a user who cannot read this checkout.
stage() {
    local s=$1
    mkdir -p "$s/src" "$s/site" || return 1
    tar -C "$ROOT" --exclude=__pycache__ -cf - pyproject.toml edgeorch tests/gpu tests/unit/resources \
        | tar -C "$s/src" -xf - || return 1
    "$PY" - "$s/site" <<'EOF' || return 1
import importlib, importlib.metadata as md, shutil, sys
from pathlib import Path

dest = Path(sys.argv[1])
for name in ("pytest", "_pytest", "pluggy", "iniconfig", "packaging", "pygments", "py", "pynvml"):
    try:
        f = Path(importlib.import_module(name).__file__)
    except ImportError:
        continue
    if f.name == "__init__.py":
        shutil.copytree(f.parent, dest / f.parent.name, ignore=shutil.ignore_patterns("__pycache__"),
                        dirs_exist_ok=True)
    else:
        shutil.copy2(f, dest / f.name)
for dist in ("pytest", "pluggy", "iniconfig", "packaging", "pygments", "nvidia-ml-py"):
    try:
        path = Path(str(md.distribution(dist)._path))  # the .dist-info: bindings_version() reads it
    except (md.PackageNotFoundError, AttributeError):
        continue
    shutil.copytree(path, dest / path.name, dirs_exist_ok=True)
EOF
    chmod -R a+rX "$s" && chmod 0755 "$s"
}

# run_pass NAME PY DIR [prefix...]: the GPU tests from DIR with PY, as whoever the prefix makes us.
run_pass() {
    local name=$1 py=$2 src=$3; shift 3
    local dir="$OUT/$name" work
    mkdir -p "$dir"
    work=$(mktemp -d /tmp/edgeorch-gpu-pass.XXXXXX)  # writable by the pass's user wherever $OUT is
    mkdir -p "$work/tmp" && chmod -R 0777 "$work"
    echo
    echo "== pass: $name (${*:-as $(id -un)}, $py, from $src) =="
    "$@" env -C "$src" EDGEORCH_REQUIRE_GPU=1 EDGEORCH_GPU_OUT="$work" TMPDIR="$work/tmp" HOME="$work/tmp" \
        PYTHONPATH="$src${STAGE_SITE:+:$STAGE_SITE}" PYTHONDONTWRITEBYTECODE=1 timeout "$PER_PASS_TIMEOUT" \
        "$py" -m pytest "${TESTS[@]}" -m gpu -o addopts="" --confcutdir=tests/gpu -p no:cacheprovider -q -rA \
        --junitxml="$work/junit.xml" --basetemp="$work/tmp/pytest" 2>&1 | tee "$dir/pytest.log"
    echo "${PIPESTATUS[0]}" >"$dir/rc"
    cp -p "$work"/*.json "$work"/*.xml "$dir/" 2>/dev/null
    rm -rf "$work"
}

not_run() {  # not_run NAME WHY: a pass that could not start
    mkdir -p "$OUT/$1"
    echo "validate.sh: pass $1 $2" | tee "$OUT/$1/pytest.log"
    echo 125 >"$OUT/$1/rc"
}

passes=()
if [[ $(id -u) -eq 0 ]]; then
    run_pass root "$PY" "$ROOT"; passes+=(root)
    nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups)
    if ! command -v setpriv >/dev/null; then
        not_run unprivileged "not run: no setpriv on this machine"
    elif can_run "$PY" "$ROOT" "${nobody[@]}" >"$OUT/unprivileged-precheck.log"; then
        run_pass unprivileged "$PY" "$ROOT" "${nobody[@]}"
    else
        # nobody cannot read this checkout or its Python (a venv under /root): a copy it can read.
        staged=$(mktemp -d /tmp/edgeorch-gpu-stage.XXXXXX)
        py_ok=
        if stage "$staged"; then
            export STAGE_SITE="$staged/site"
            for cand in "$PY" "$(readlink -f "$PY")" /usr/bin/python3 /usr/local/bin/python3; do
                if [[ -x $cand ]] && can_run "$cand" "$staged/src" "${nobody[@]}" >>"$OUT/unprivileged-precheck.log"; then
                    py_ok=$cand; break
                fi
            done
        fi
        if [[ -n $py_ok ]]; then
            run_pass unprivileged "$py_ok" "$staged/src" "${nobody[@]}"
        else
            not_run unprivileged "could not start: neither $PY from $ROOT nor a python3 (3.11+) from a copy in" \
                "$staged runs as nobody ($(tail -n 2 "$OUT/unprivileged-precheck.log" | tr '\n' ' '))"
        fi
        unset STAGE_SITE
        rm -rf "$staged"
    fi
    passes+=(unprivileged)
else
    run_pass unprivileged "$PY" "$ROOT"; passes+=(unprivileged)
    if sudo -n true 2>/dev/null; then
        run_pass root "$PY" "$ROOT" sudo -n; passes+=(root)
    else
        not_run root "not run: not root and no passwordless sudo"; passes+=(root)
    fi
fi

# -- 5. summary ------------------------------------------------------------------------------------
summary "${passes[@]}"
