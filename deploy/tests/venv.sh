# Sourced by scripts/check-deploy and scripts/render-deploy; do not run it. Makes sure the cached
# venv of deploy/tests/requirements.txt exists, with harness/lib/common.sh's installer (uv from
# ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/uv, else python3 -m venv + pip):
#   venv  ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/deploy-<first 12 hex of sha256(pin file)>
# The caller sets HARNESS_SCRIPT (its name, for messages) first.

DEPLOY_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
# shellcheck source=../../harness/lib/common.sh
source "$DEPLOY_ROOT/harness/lib/common.sh"
DEPLOY_PINS="$DEPLOY_ROOT/deploy/tests/requirements.txt"
DEPLOY_PIN_HASH="$(sha256sum "$DEPLOY_PINS" | cut -c1-12)"
DEPLOY_VENV="$CACHE_ROOT/deploy-$DEPLOY_PIN_HASH"

deploy_venv_ok() {
    "$DEPLOY_VENV/bin/python" - >/dev/null 2>&1 <<'PY'
import helm_python, jsonschema, kubernetes_validate, pytest, yaml, yamllint  # noqa: F401
helm_python.helm_sdk_version()  # loads the bundled Go library
PY
    [[ -x "$DEPLOY_VENV/bin/checkov" ]]
}

# Idempotent; serialised with flock so two scripts starting at once do not install twice.
ensure_deploy_venv() {
    local marker="$DEPLOY_VENV/.eniplan-installed"
    [[ -f "$marker" && -x "$DEPLOY_VENV/bin/python" ]] && return 0
    mkdir -p "$CACHE_ROOT"
    exec 7>"$CACHE_ROOT/.install-deploy-$DEPLOY_PIN_HASH.lock"
    flock 7
    if [[ ! -f "$marker" ]]; then
        local start; start="$(now)"
        hlog "installing $(basename "$DEPLOY_PINS") into $DEPLOY_VENV"
        create_venv "$DEPLOY_VENV" "$DEPLOY_PINS"
        deploy_venv_ok || { rm -rf "$DEPLOY_VENV"; die "the new venv lacks a pinned tool"; }
        echo "$DEPLOY_PIN_HASH" >"$marker"
        hlog "installed in $(elapsed "$start") s"
    fi
    flock -u 7
}
