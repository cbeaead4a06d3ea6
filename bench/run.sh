#!/usr/bin/env bash
# The benchmark harness in one command (not part of the test suite):
#   bench/run.sh            full run, about 6 minutes on 2 cores (RPyC at 32-64 MiB is half of it)
#   bench/run.sh --quick    smoke run: few iterations, sizes up to 1 MiB
# Other options go to bench/harness.py (--peers a,b --no-floor --out DIR);
# --no-install skips refreshing bench/.venv (which also rebuilds our package).
# Output: bench/results/{RESULTS.md,latency.png,results.json,logs/}.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$root/target}
venv=bench/.venv
install=1
args=()
for a in "$@"; do
  case $a in
    --no-install) install=0 ;;
    *) args+=("$a") ;;
  esac
done
if [ "$install" = 1 ] || [ ! -x "$venv/bin/python" ]; then
  echo "==> $venv: the peers, and simplerpc built from this checkout"
  # Peer versions are pinned so that runs stay comparable.
  scripts/python-env.sh "$venv" "numpy>=2" dill matplotlib "gymnasium>=1.0" \
    "simplerpyc==0.0.1a3" "rpyc==6.0.2" "Pyro5==5.17"
  # With the pyo3 accelerator built in: the harness runs the package with it
  # (the simplerpc-speedups column) and without (SIMPLERPC_NO_SPEEDUPS=1).
  SIMPLERPC_SPEEDUPS=1 "$venv/bin/python" -m pip install -q --force-reinstall --no-deps ./bindings/python
  "$venv/bin/python" -c "from simplerpc import _native; assert _native.speedups_enabled(), 'the accelerator was not built'"
fi
echo "==> cargo build --release -p simplerpc-bench, and the lab_cert example"
cargo build --release -q -p simplerpc-bench
# The TLS columns' certificates are made by this example, for each run.
cargo build --release -q -p simplerpc-ws --example lab_cert
exec "$venv/bin/python" bench/harness.py ${args[@]+"${args[@]}"}
