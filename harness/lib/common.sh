# Shared by harness/up, harness/down and harness/test. Source it; do not run it.
#
# Locations (none inside the clone):
#   venv    ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/localstack-<first 12 hex of sha256(pin file)>
#   uv      ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/uv/bin/uv
#   state   ${ENIPLAN_HARNESS_DIR:-$HOME/.cache/eniplan/harness}
#   .pyc    ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/pycache (PYTHONPYCACHEPREFIX)
# ENIPLAN_INSTALLER=pip forces the python3 -m venv + pip path instead of uv.

HARNESS_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.." && pwd)"
CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/eniplan"
PIN_FILE="$HARNESS_ROOT/localstack-requirements.txt"
TEST_PIN_FILE="$HARNESS_ROOT/test-requirements.txt"
PIN_HASH="$(sha256sum "$PIN_FILE" | cut -c1-12)"
VENV="$CACHE_ROOT/localstack-$PIN_HASH"
UV_DIR="$CACHE_ROOT/uv"
STATE_DIR="${ENIPLAN_HARNESS_DIR:-$HOME/.cache/eniplan/harness}"

# Bytecode goes to the cache: nothing is written into the clone, and starts stay fast
# (LocalStack starts in about 1.5 s with cached bytecode, 3.5 s without).
export PYTHONPYCACHEPREFIX="$CACHE_ROOT/pycache"
unset PYTHONDONTWRITEBYTECODE

hlog() { printf '%s: %s\n' "${HARNESS_SCRIPT:-harness}" "$*" >&2; }
die() { hlog "$*"; exit 1; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# Installs uv into $UV_DIR with the system pip if it is not there yet. Fails quietly (the
# caller falls back to venv + pip).
ensure_uv() {
    [[ -x "$UV_DIR/bin/uv" ]] && return 0
    hlog "installing uv into $UV_DIR"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --disable-pip-version-check --target "$UV_DIR" uv >&2 \
        || return 1
    [[ -x "$UV_DIR/bin/uv" ]]
}

# Creates the venv DIR from the pin file PINS with uv, or with python3 -m venv + pip when uv
# fails (ENIPLAN_INSTALLER=pip skips uv, to exercise the fallback); dies when neither works.
create_venv() {
    local dir="$1" pins="$2"
    rm -rf "$dir"
    if [[ "${ENIPLAN_INSTALLER:-uv}" != pip ]] && ensure_uv \
        && "$UV_DIR/bin/uv" venv -q -p python3 "$dir" >&2 \
        && "$UV_DIR/bin/uv" pip install -q --python "$dir/bin/python" -r "$pins" >&2; then
        return 0
    fi
    hlog "uv failed or skipped; falling back to python3 -m venv + pip (slower)"
    rm -rf "$dir"
    python3 -m venv "$dir" >&2 \
        && "$dir/bin/pip" install -q --disable-pip-version-check -r "$pins" >&2 \
        || { rm -rf "$dir"; die "could not install $pins"; }
}

venv_imports_ok() {
    "$VENV/bin/python" - >/dev/null 2>&1 <<'PY'
from importlib import metadata
assert metadata.version("localstack-core") == "4.14.0"
assert metadata.version("moto-ext") == "5.1.24"
import boto3, localstack.runtime.main, moto.ec2.models  # noqa: F401
PY
}

# Makes sure $VENV holds the pinned LocalStack. Idempotent; serialised with flock so two
# scripts starting at once do not install twice.
ensure_venv() {
    local marker="$VENV/.eniplan-installed"
    [[ -f "$marker" && -x "$VENV/bin/python" ]] && return 0
    mkdir -p "$CACHE_ROOT"
    exec 8>"$CACHE_ROOT/.install-$PIN_HASH.lock"
    flock 8
    if [[ -f "$marker" && -x "$VENV/bin/python" ]]; then flock -u 8; return 0; fi
    if [[ -x "$VENV/bin/python" ]] && venv_imports_ok; then
        # a venv built from the same pin file by other means (e.g. by hand): adopt it
        echo "$PIN_HASH" >"$marker"
        flock -u 8
        return 0
    fi
    local start; start="$(now)"
    hlog "installing LocalStack 4.14.0 from $(basename "$PIN_FILE") into $VENV"
    create_venv "$VENV" "$PIN_FILE"
    venv_imports_ok || { rm -rf "$VENV"; die "installed venv does not import LocalStack 4.14.0 / moto-ext 5.1.24"; }
    echo "$PIN_HASH" >"$marker"
    hlog "installed in $(elapsed "$start") s"
    flock -u 8
}

# Adds the pinned test runner to $VENV (harness/test only).
ensure_test_requirements() {
    local hash marker
    hash="$(sha256sum "$TEST_PIN_FILE" | cut -c1-12)"
    marker="$VENV/.eniplan-test-$hash"
    [[ -f "$marker" ]] && return 0
    exec 8>"$CACHE_ROOT/.install-$PIN_HASH.lock"
    flock 8
    if [[ ! -f "$marker" ]]; then
        hlog "installing $(basename "$TEST_PIN_FILE") into $VENV"
        if [[ "${ENIPLAN_INSTALLER:-uv}" != pip && -x "$UV_DIR/bin/uv" ]]; then
            "$UV_DIR/bin/uv" pip install -q --python "$VENV/bin/python" \
                -r "$TEST_PIN_FILE" -c "$PIN_FILE" >&2 || die "could not install $TEST_PIN_FILE"
        else
            "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
                -r "$TEST_PIN_FILE" -c "$PIN_FILE" >&2 || die "could not install $TEST_PIN_FILE"
        fi
        touch "$marker"
    fi
    flock -u 8
}

# PID of the running harness for $STATE_DIR, or nothing. Checks the command line, so a
# recycled PID is never taken for ours.
harness_pid() {
    local pid
    pid="$(cat "$STATE_DIR/launcher.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    { tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null | grep 'eniplan_harness.launch' >/dev/null || return 1
    echo "$pid"
}

# ensure_pinned_venv NAME PINS CHECK: makes sure the venv $CACHE_ROOT/NAME-<first 12 hex of
# sha256(PINS)> holds the pins, installing it with create_venv on first use, and prints its
# directory. CHECK (a function) is called with the new venv's directory and must succeed, or
# the venv is removed. Idempotent; serialised with flock so two scripts starting at once do not
# install twice. Used for every pinned tool set but LocalStack's (ensure_venv, above).
ensure_pinned_venv() {
    local name="$1" pins="$2" check="$3" hash dir start
    hash="$(sha256sum "$pins" | cut -c1-12)"
    dir="$CACHE_ROOT/$name-$hash"
    if [[ ! -f "$dir/.eniplan-installed" || ! -x "$dir/bin/python" ]]; then
        mkdir -p "$CACHE_ROOT"
        exec 7>"$CACHE_ROOT/.install-$name-$hash.lock"
        flock 7
        if [[ ! -f "$dir/.eniplan-installed" ]]; then
            start="$(now)"
            hlog "installing $(basename "$pins") into $dir"
            create_venv "$dir" "$pins"
            "$check" "$dir" >&2 || { rm -rf "$dir"; die "$dir lacks a pinned tool after install"; }
            echo "$hash" >"$dir/.eniplan-installed"
            hlog "installed in $(elapsed "$start") s"
        fi
        flock -u 7
    fi
    printf '%s\n' "$dir"
}

GRPC_PIN_FILE="$HARNESS_ROOT/grpc-requirements.txt"

grpc_venv_ok() { "$1/bin/python" -c 'import grpc, grpc_tools.protoc'; }

# Sets $GRPC_VENV to the venv holding the pinned gRPC client (harness/grpc-python).
ensure_grpc_venv() {
    GRPC_VENV="$(ensure_pinned_venv grpc "$GRPC_PIN_FILE" grpc_venv_ok)"
}
