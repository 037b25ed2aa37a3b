# Sourced by scripts/check-deploy and scripts/render-deploy; do not run it. Makes sure the cached
# venv of deploy/tests/requirements.txt exists, with harness/lib/common.sh's installer (uv from
# ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/uv, else python3 -m venv + pip):
#   venv  ${XDG_CACHE_HOME:-$HOME/.cache}/eniplan/deploy-<first 12 hex of sha256(pin file)>
# The caller sets HARNESS_SCRIPT (its name, for messages) first.

DEPLOY_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../.." && pwd)"
# shellcheck source=../../harness/lib/common.sh
source "$DEPLOY_ROOT/harness/lib/common.sh"
DEPLOY_PINS="$DEPLOY_ROOT/deploy/tests/requirements.txt"
deploy_venv_ok() {
    "$1/bin/python" - >/dev/null 2>&1 <<'PY' && [[ -x "$1/bin/checkov" ]]
import helm_python, jsonschema, kubernetes_validate, pytest, yaml, yamllint  # noqa: F401
helm_python.helm_sdk_version()  # loads the bundled Go library
PY
}

# Sets $DEPLOY_VENV, installing the venv first if needed.
ensure_deploy_venv() {
    DEPLOY_VENV="$(ensure_pinned_venv deploy "$DEPLOY_PINS" deploy_venv_ok)"
}
