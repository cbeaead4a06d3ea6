#!/usr/bin/env bash
# Run every test of the project from a fresh clone: Rust (fmt, clippy, docs,
# unit, golden, property and WebSocket tests, a minute of fuzzing), the C ABI
# (header check, C examples under valgrind, C++17 compile, the README's C
# host) and the Python package (pytest in a numpy>=2 venv and a numpy<2 venv,
# with and without the pyo3 accelerator simplerpc._speedups,
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
# The pyo3 feature (off by default: the workspace builds without Python):
# the accelerator simplerpc._speedups and PyExecutor. pyo3 builds against
# python3 on PATH, the Python the venvs below are made from.
PYO3_PYTHON=python3 cargo clippy -p simplerpc-speedups -p simplerpc-pyexec --all-targets --features pyo3 -- -D warnings

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

step "cargo test: unit, integration and doc tests (every example in the rustdoc runs; none is disabled)"
cargo test --workspace
# PyExecutor in the CPython the tests embed, importing simplerpc from .venv
# (also builds the example py_server that tests/interop serves Python objects with).
PYO3_PYTHON=python3 PYTHONPATH="$(.venv/bin/python -c 'import site; print(site.getsitepackages()[0])')" \
  cargo test -p simplerpc-pyexec --features pyo3

step "fuzzing: each cargo-fuzz target for 20 s (longer runs by hand: see scripts/fuzz.sh)"
scripts/fuzz.sh 20

step "C ABI: examples with gcc, header with g++ -std=c++17, valgrind"
scripts/test-c.sh

step "Python: the package in a numpy>=2 venv and a numpy<2 venv"
.venv-np1/bin/python -m pytest -q bindings/python/tests/test_serialization.py bindings/python/tests/test_executor.py
.venv/bin/python -m pytest -q tests/interop bindings/python/tests

step "Python: the same tests with the accelerator simplerpc._speedups (cargo feature pyo3), then forced off"
SIMPLERPC_SPEEDUPS=1 .venv/bin/python -m pip install -q --force-reinstall --no-deps ./bindings/python
.venv/bin/python -c "from simplerpc import _native; assert _native.speedups_enabled(), 'simplerpc._speedups was not built'"
.venv/bin/python -m pytest -q tests/interop bindings/python/tests
SIMPLERPC_NO_SPEEDUPS=1 .venv/bin/python -m pytest -q bindings/python/tests/test_speedups.py bindings/python/tests/test_e2e_api.py
# Back to the package as python-env.sh builds it (ctypes only) for the steps below.
.venv/bin/python -m pip install -q --force-reinstall --no-deps ./bindings/python

step "Python packaging: one py3-none wheel built from source on the oldest Python, smoke-tested on the oldest and the newest"
scripts/python-smoke.sh

step "Stress probes at reduced size (full size by hand: SIMPLERPC_STRESS=full .venv/bin/python -m pytest -v tests/stress)"
.venv/bin/python -m pytest -q tests/stress

echo
echo "all tests passed in $(( $(date +%s) - started )) s"
