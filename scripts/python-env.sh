#!/usr/bin/env bash
# Creates the project's Python environments at the workspace root, idempotently:
#   .venv       moto's server + botocore (tests: local AWS stack, CodeBuild service model) and
#               schemathesis (the ops API checked against docs/openapi.json)
#   .venv-lint  aws-sam-cli, cfn-lint, cfn-lint-serverless (template linting)
# Two venvs because aws-sam-cli and moto pin conflicting boto3/botocore versions.
#
# Each venv carries a stamp holding the sha256 of its requirements file and the interpreter
# version; when both still match, the venv is left alone (a run then takes well under a second).
# On any change the venv is rebuilt from scratch so packages dropped from the file disappear too.
#
# Usage: scripts/python-env.sh [stack|lint]...   (no argument: both)
# Env:   PYTHON  the interpreter to build the venvs from (default: python3)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REQUIREMENTS="$ROOT/scripts/requirements"
PYTHON="${PYTHON:-python3}"
STAMP_NAME=".requirements.sha256"

log() { printf 'python-env: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Debian and Ubuntu ship `venv` without `ensurepip` unless python3-venv is installed; detect
# that up front rather than leave a half-made venv behind.
ensure_python() {
    if command -v "$PYTHON" >/dev/null 2>&1 \
        && "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1; then
        return
    fi
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
        log "$PYTHON cannot create venvs (no ensurepip); installing python3 and python3-venv with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq python3 python3-venv >/dev/null
        PYTHON=python3
        "$PYTHON" -c 'import venv, ensurepip' >/dev/null 2>&1 \
            || die "python3 still cannot create venvs after installing python3-venv"
        return
    fi
    die "'$PYTHON -m venv' does not work here. Install Python 3 with venv support, e.g. 'sudo apt-get install python3-venv' on Debian/Ubuntu, or point PYTHON at another interpreter."
}

# The stamp: what the venv was built from. A venv is tied to the interpreter that built it.
wanted_stamp() {
    local requirements="$1"
    printf '%s %s\n' \
        "$(sha256sum "$requirements" | cut -d' ' -f1)" \
        "$("$PYTHON" -c 'import sys; print(sys.version.split()[0])')"
}

ensure_venv() {
    local dir="$1" requirements="$2"
    local stamp="$dir/$STAMP_NAME" want
    want="$(wanted_stamp "$requirements")"
    if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        log "${dir#"$ROOT"/} is up to date"
        return
    fi
    log "building ${dir#"$ROOT"/} from ${requirements#"$ROOT"/}"
    local started=$SECONDS
    # The stamp goes first so an interrupted install is never taken for a finished one.
    rm -f "$stamp"
    "$PYTHON" -m venv --clear "$dir"
    "$dir/bin/python" -m pip install --quiet --disable-pip-version-check --no-input \
        --requirement "$requirements"
    printf '%s\n' "$want" >"$stamp"
    log "${dir#"$ROOT"/} ready in $((SECONDS - started)) s"
}

main() {
    local targets=("$@")
    [[ ${#targets[@]} -gt 0 ]] || targets=(stack lint)
    ensure_python
    for target in "${targets[@]}"; do
        case "$target" in
            stack) ensure_venv "$ROOT/.venv" "$REQUIREMENTS/stack.txt" ;;
            lint) ensure_venv "$ROOT/.venv-lint" "$REQUIREMENTS/lint.txt" ;;
            *) die "unknown environment '$target' (expected: stack, lint)" ;;
        esac
    done
}

main "$@"
