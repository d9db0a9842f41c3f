#!/usr/bin/env bash
# Idempotent set-up: .venv from Python 3.10, the package with its extras (dev, nnmeter, mpi,
# export + nnabla-converter without its dependencies), and graphviz's `dot`.
set -euo pipefail
cd "$(dirname "$0")/.."

find_python() {
    local cand
    if [ -n "${PYTHON:-}" ]; then echo "$PYTHON"; return 0; fi
    if command -v pyenv >/dev/null 2>&1; then
        for cand in "$(pyenv root)"/versions/3.10*/bin/python3.10; do
            [ -x "$cand" ] && { echo "$cand"; return 0; }
        done
    fi
    for cand in python3.10 "$HOME"/.pyenv/versions/3.10*/bin/python3.10; do
        if command -v "$cand" >/dev/null 2>&1; then command -v "$cand"; return 0; fi
    done
    return 1
}

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))'; then
    if ! py=$(find_python); then
        echo "error: nnabla publishes wheels for Python 3.8-3.10 only, and no Python 3.10 was found." >&2
        echo "  Install one (e.g. 'pyenv install 3.10' or 'apt-get install python3.10 python3.10-venv')," >&2
        echo "  or point PYTHON=/path/to/python3.10 at it, then run 'make setup' again." >&2
        exit 2
    fi
    echo "setup: creating .venv with $py"
    rm -rf .venv
    "$py" -m venv .venv
fi

stamp=.venv/.nnabla_nas-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing nnabla_nas[dev,nnmeter,mpi,export,trials,tpe] into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e ".[dev,nnmeter,mpi,export,trials,tpe]"
    # ONNX export: nnabla-converter without its declared TensorFlow stack (never imported).
    .venv/bin/python -m pip install -q --no-deps "nnabla-converter==1.39.0"
    touch "$stamp"
fi

if ! command -v dot >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "setup: installing graphviz (the 'dot' binary behind arch.png)"
        (apt-get install -y -q graphviz >/dev/null 2>&1 ||
            { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q graphviz >/dev/null; })
    else
        echo "setup: graphviz's 'dot' is missing; arch.png needs it. Install it with:" >&2
        echo "  sudo apt-get install graphviz" >&2
    fi
fi
