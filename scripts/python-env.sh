#!/usr/bin/env bash
# Create (or refresh) a Python venv with the simplerpc package installed from
# this checkout. Usage: scripts/python-env.sh VENV_DIR [extra pip requirements...]
# The package build runs cargo (setuptools-rust), so a Rust toolchain is needed.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$1
shift
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q "msgpack>=1.0" "$@"
# Always rebuild from this checkout (cargo keeps the build incremental).
"$venv/bin/python" -m pip install -q --force-reinstall --no-deps "$root/bindings/python"
