#!/usr/bin/env bash
# One prepared check for the few minutes a GPU machine is available.
#
# Run from the repository root on a machine with an NVIDIA GPU and access to PyPI:
#
#     bash benchmarks/gpu_check.sh [--dry-run] [--no-torch] [--python PY] [REPORT.md]
#
# Stages, each under its own `timeout` so that a hang in one still leaves a report:
#   1. a virtual environment (.venv-gpu, or $TINYGEN_GPU_VENV) with pip install -e ".[test]"
#   2. CuPy for CUDA 12 (cupy-cuda12x)
#   3. nvidia-smi's one-line summary, and CuPy's view of the GPU
#   4. the tests' CUDA cases on the real CuPy (TINYGEN_TEST_FAKE_CUPY=0: no NumPy stand-in)
#   5. PyTorch, optional (skipped when its install fails or time runs short, or --no-torch)
#   6. python -m benchmarks --device cuda (tinygen, and PyTorch on CUDA when present)
# The report (markdown) goes to REPORT.md, else $OUT/gpu_report.md, else ./gpu_report.md,
# and is written stage by stage. The whole run stays under $GPU_CHECK_BUDGET seconds
# (default 470, under 8 minutes): each stage gets at most what is left.
#
#   --dry-run    run no stage: write the report with the commands that would run
#   --no-torch   do not install PyTorch (the benchmarks then time tinygen alone)
#   --python PY  use this interpreter as it is: no venv, no installs (stages 1, 2, 5 skip)
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1

DRY_RUN=0
WITH_TORCH=1
PY=""
REPORT=""
while (($#)); do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --no-torch) WITH_TORCH=0 ;;
        --python) PY="${2:?--python needs an interpreter}"; shift ;;
        -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
        -*) echo "gpu_check.sh: unknown option $1" >&2; exit 2 ;;
        *) REPORT="$1" ;;
    esac
    shift
done
REPORT="${REPORT:-${OUT:-.}/gpu_report.md}"
VENV="${TINYGEN_GPU_VENV:-.venv-gpu}"
BUDGET="${GPU_CHECK_BUDGET:-470}"
START=$(date +%s)
DEADLINE=$((START + BUDGET))
LOGS=$(mktemp -d "${TMPDIR:-/tmp}/gpu_check.XXXXXX")
SUMMARY=()

mkdir -p "$(dirname "$REPORT")"
{
    echo "# tinygen GPU check"
    echo
    echo "- started: $(date -u '+%Y-%m-%d %H:%M:%S UTC') on $(hostname)"
    echo "- commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with local changes)')"
    echo "- budget: ${BUDGET} s$( ((DRY_RUN)) && echo ', DRY RUN: no stage was run')"
    echo
} >"$REPORT"

# stage NAME CAP_SECONDS COMMAND...: run COMMAND under timeout (at most CAP_SECONDS, and
# never past the deadline), then append its status and the end of its output to the report.
stage() {
    local name=$1 cap=$2
    shift 2
    local log left limit rc status t0 seconds
    log="$LOGS/$(printf '%s' "$name" | tr -c 'A-Za-z0-9' '_').log"
    left=$((DEADLINE - $(date +%s)))
    limit=$((cap < left ? cap : left))
    t0=$(date +%s)
    if ((limit < 5)); then
        rc=125
        status="skipped: out of time"
        : >"$log"
    elif ((DRY_RUN)); then
        rc=0
        status="dry run (limit ${limit} s)"
        printf '%s\n' "$*" >"$log"
    else
        echo "== $name (limit ${limit} s)"
        timeout --kill-after=10 "$limit" "$@" >"$log" 2>&1
        rc=$?
        case $rc in
            0) status="ok" ;;
            124 | 137) status="TIMED OUT after ${limit} s" ;;
            *) status="FAILED (exit $rc)" ;;
        esac
    fi
    seconds=$(($(date +%s) - t0))
    SUMMARY+=("| $name | $status | $seconds |")
    echo "   $status (${seconds} s)"
    {
        echo "## $name: $status (${seconds} s)"
        echo
        echo '```'
        tail -n "${TAIL_LINES:-25}" "$log"
        echo '```'
        echo
    } >>"$REPORT"
    return "$rc"
}

skip() {  # skip NAME REASON
    SUMMARY+=("| $1 | skipped: $2 | 0 |")
    printf '## %s: skipped: %s\n\n' "$1" "$2" >>"$REPORT"
    echo "== $1: skipped: $2"
}

# shellcheck disable=SC2317  # reached through the EXIT trap
finish() {
    {
        echo "## Summary"
        echo
        echo "| stage | status | seconds |"
        echo "| --- | --- | --- |"
        printf '%s\n' "${SUMMARY[@]}"
        echo
        echo "Total: $(($(date +%s) - START)) s. Full logs: $LOGS"
    } >>"$REPORT"
    echo "report: $REPORT"
}
trap finish EXIT

# --------------------------------------------------------------------------- installs
if [[ -n "$PY" ]]; then
    skip "install tinygen" "--python $PY given"
    skip "install cupy-cuda12x" "--python $PY given"
else
    PY="$VENV/bin/python"
    # shellcheck disable=SC2016  # $1 is expanded by the inner bash
    stage "install tinygen" 180 bash -c \
        '{ [ -x "$1/bin/python" ] || python3 -m venv "$1"; } && "$1/bin/python" -m pip install -q -e ".[test]"' \
        _ "$VENV"
    stage "install cupy-cuda12x" 150 "$PY" -m pip install -q cupy-cuda12x
fi

# --------------------------------------------------------------------------- the GPU
stage "nvidia-smi" 20 nvidia-smi \
    --query-gpu=name,driver_version,memory.total,memory.used,utilization.gpu,temperature.gpu \
    --format=csv,noheader
stage "cupy sees the GPU" 90 "$PY" -c "
import cupy, tinygen
x = cupy.arange(1 << 20, dtype=cupy.float32)
print('cupy', cupy.__version__, 'from', cupy.__file__)
print('stand-in' if getattr(cupy, 'IS_STAND_IN', False) else 'real CuPy',
      '| devices:', cupy.cuda.runtime.getDeviceCount(),
      '| CUDA runtime', cupy.cuda.runtime.runtimeGetVersion(),
      '| sum check:', float((x * 2).sum()) == float(x.sum()) * 2)
print('tinygen.cuda_available():', tinygen.cuda_available())
assert not getattr(cupy, 'IS_STAND_IN', False) and tinygen.cuda_available()
"

# --------------------------------------------------------------------------- tests
# The device fixture's CUDA ids are "cuda"; -k cuda also takes the tests about CUDA.
TAIL_LINES=40 stage "tests: CUDA cases on the GPU" 200 env TINYGEN_TEST_FAKE_CUPY=0 \
    HYPOTHESIS_PROFILE=ci MPLBACKEND=Agg "$PY" -m pytest -p no:cacheprovider -q -rfE \
    --durations=10 -k cuda tests

# --------------------------------------------------------------------------- benchmarks
if ((!WITH_TORCH)); then
    skip "install torch" "--no-torch"
elif [[ "$PY" != "$VENV/bin/python" ]]; then
    skip "install torch" "--python given: no installs"
elif ((DEADLINE - $(date +%s) < 200)); then
    skip "install torch" "less than 200 s left, kept for the benchmarks"
else
    stage "install torch" 100 "$PY" -m pip install -q torch
fi
TAIL_LINES=15 stage "benchmarks --device cuda" 150 "$PY" -m benchmarks --device cuda \
    --repeat 6 --warmup 2
exit 0
