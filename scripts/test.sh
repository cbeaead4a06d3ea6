#!/usr/bin/env bash
# Run every test of the project from a fresh clone: Rust (fmt, clippy, docs,
# unit, golden, property and WebSocket tests, a minute of fuzzing), the C ABI
# (header check, C examples under valgrind, C++17 compile, the README's C
# host) and the Python package (pytest in a numpy>=2 venv and a numpy<2 venv,
# interop with the stock simplerpyc from PyPI, its wheel installed on the
# oldest and newest Python here), then the stress probes of tests/stress at
# their reduced size. Installs what it needs into .venv, .venv-np1 and
# target/python-smoke (git-ignored), and cargo-fuzz.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n==> %s\n' "$*"; }
started=$(date +%s)

step "cargo fmt and clippy"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "cargo doc (warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --workspace

step "cargo build (regenerates include/simplerpc.h)"
cargo build --workspace --all-targets
if ! git diff --quiet -- include/simplerpc.h 2>/dev/null; then
  git --no-pager diff --stat -- include/simplerpc.h
  echo "include/simplerpc.h is not what the build produces: commit the regenerated header" >&2
  exit 1
fi

step "Python venvs: numpy>=2 with the stock simplerpyc (interop), numpy<2; the package built from this checkout"
scripts/python-env.sh .venv "numpy>=2" dill msgpack pytest "simplerpyc==0.0.1a3" "gymnasium>=1.0" cryptography
scripts/python-env.sh .venv-np1 "numpy<2" dill msgpack pytest "simplerpyc==0.0.1a3" "gymnasium>=1.0" "ale-py>=0.9"
export SIMPLERPC_REFERENCE_PYTHON="$root/.venv/bin/python"
export SIMPLERPC_NP1_PYTHON="$root/.venv-np1/bin/python"

step "cargo test"
cargo test --workspace

step "fuzzing: each cargo-fuzz target for 20 s (longer runs by hand: see scripts/fuzz.sh)"
scripts/fuzz.sh 20

step "C ABI: examples with gcc, header with g++ -std=c++17, valgrind"
scripts/test-c.sh

step "Python: the package in a numpy>=2 venv and a numpy<2 venv"
.venv-np1/bin/python -m pytest -q bindings/python/tests/test_serialization.py bindings/python/tests/test_executor.py
.venv/bin/python -m pytest -q tests/interop bindings/python/tests

step "Python packaging: one py3-none wheel built from source on the oldest Python, smoke-tested on the oldest and the newest"
scripts/python-smoke.sh

step "Stress probes at reduced size (full size by hand: SIMPLERPC_STRESS=full .venv/bin/python -m pytest -v tests/stress)"
.venv/bin/python -m pytest -q tests/stress

echo
echo "all tests passed in $(( $(date +%s) - started )) s"
