#!/usr/bin/env bash
# HA Notepad: one command for the demo, the walkthrough and the tests.
#   ./demo.sh         run the demo (creates .venv on its first run)
#   ./demo.sh test    run the whole test suite
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
venv="$here/.venv"

bootstrap() {
    # Reuse the venv once its install has completed; a half-made venv is rebuilt.
    if [[ -x "$venv/bin/python" && -f "$venv/.installed" && "$venv/.installed" -nt pyproject.toml ]]; then
        return
    fi
    echo "demo.sh: setting up $venv (first run only)..." >&2
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e '.[test]'
    touch "$venv/.installed"
}

cmd="${1:-demo}"
case "$cmd" in
    test)
        shift
        bootstrap
        export PATH="$venv/bin:$PATH"
        "$venv/bin/ruff" check --quiet .
        exec "$venv/bin/python" -m pytest "$@"
        ;;
    demo)
        bootstrap
        echo "The live demo is not built yet. Available now:"
        echo "  ./demo.sh test                       run the test suite"
        echo "  .venv/bin/hacluster --help           the cluster command line"
        echo "  .venv/bin/hanotepad FILE             the editor"
        ;;
    -h|--help|help)
        sed -n '2,4p' "$0" | sed 's/^# \{0,1\}//'
        ;;
    *)
        echo "demo.sh: unknown command '$cmd'; try './demo.sh --help'" >&2
        exit 2
        ;;
esac
