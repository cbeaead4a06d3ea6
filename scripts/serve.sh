#!/usr/bin/env bash
# Start a simplerpc server from a fresh clone: builds the package into .venv on
# first use, then runs `python -m simplerpc.server` with any arguments given
# (--host, --port, --token and the limits: see --help; it reads SIMPLERPC_SERVER_HOST/
# PORT/TOKEN when a flag is not given, never the clients' SIMPLERPC_*).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ] || ! "$venv/bin/python" -c "import simplerpc" 2>/dev/null; then
  echo "setting up $venv (first run builds the Rust library; this takes a minute)" >&2
  "$root/scripts/python-env.sh" "$venv" "numpy>=2" dill msgpack
fi
exec "$venv/bin/python" -m simplerpc.server "$@"
