# Shared by the recipes (sourced, not run): where they run, which Python, and running two jobs side
# by side, one core each.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PY=${PYTHON:-.venv/bin/python}
mkdir -p runs

# side_by_side FUNC ARG LOG FUNC ARG LOG: run FUNC ARG twice at once, each logging to its LOG; fail
# when either fails, once both have ended
side_by_side() {
    "$1" "$2" > "$3" 2>&1 &
    local first=$!
    "$4" "$5" > "$6" 2>&1 &
    local second=$!
    wait "$first"
    wait "$second"
}
