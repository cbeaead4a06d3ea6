#!/usr/bin/env bash
# Fuzz every cargo-fuzz target in fuzz/ (the frame decoder, the server
# session, the client session, the TLS record layer), or the TARGETs named, for
# SECONDS_PER_TARGET seconds each (default 20), from seeds made of the
# golden frames (fuzz/seeds.sh). Fails when a
# target crashes; libFuzzer leaves the input that did it in
# fuzz/artifacts/<target>/. Installs cargo-fuzz when it is missing.
#
# Works on a stable toolchain: cargo-fuzz needs nightly flags (sanitizers,
# coverage instrumentation), which RUSTC_BOOTSTRAP=1 allows on stable.
#
# Longer runs by hand (each keeps what it finds in fuzz/corpus/<target>/):
#   scripts/fuzz.sh 600                   # ten minutes per target
#   scripts/fuzz.sh 3600 server_session    # an hour of one target
# and cargo-fuzz itself for the rest (replay, minimize, coverage), e.g.
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -a --target-dir target/fuzz server_session fuzz/artifacts/server_session/crash-...
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET [TARGET...]]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
secs=${1:-20}
targets=(frame_decoder server_session client_session tls_records)
if [ $# -gt 1 ]; then
  targets=("${@:2}")
fi
cargo_fuzz_version=0.13.2

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "installing cargo-fuzz $cargo_fuzz_version"
  # Built in a directory of its own, not in the project's target dir.
  env -u CARGO_TARGET_DIR -u RUSTC_BOOTSTRAP \
    cargo install cargo-fuzz --version "$cargo_fuzz_version" --locked
fi

export RUSTC_BOOTSTRAP=1
# -a: debug assertions on, so an arithmetic overflow is a crash too.
build_flags=(-a --target-dir "${CARGO_TARGET_DIR:-$root/target}/fuzz")
fuzz/seeds.sh
cargo fuzz build "${build_flags[@]}"

logs=$(mktemp -d)
failed=()
for t in "${targets[@]}"; do
  echo "==> fuzzing $t for $secs s"
  # The sanitizer's memory grows slowly over a long run (a GiB after ten
  # minutes of the decoder), so a long run would stop on a false
  # out-of-memory at libFuzzer's 2 GiB default: allow 4 in all, but no
  # single allocation of more than 256 MiB, which no input of a few KiB
  # should ever cause.
  if cargo fuzz run "${build_flags[@]}" "$t" "fuzz/corpus/$t" -- \
    -max_total_time="$secs" -dict=fuzz/msgpack.dict -timeout=10 \
    -rss_limit_mb=4096 -malloc_limit_mb=256 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$logs/$t.log")
    cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1)
    echo "$t: ${execs:-?} runs in $secs s, $cov, corpus $(ls "fuzz/corpus/$t" | wc -l) inputs"
  else
    # What broke (a panic's message, or the sanitizer's report), then
    # where the input was left and how to replay it.
    grep -m 1 -A 4 -E "panicked at|ERROR: (AddressSanitizer|libFuzzer)" "$logs/$t.log" || true
    sed -n '/^Failing input:/,/cargo fuzz tmin/p' "$logs/$t.log" | grep -v '^\s*\[' || true
    echo "(on a stable toolchain, put RUSTC_BOOTSTRAP=1 in front of those commands)"
    failed+=("$t")
  fi
done
rm -rf "$logs"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz targets that crashed: ${failed[*]} (inputs in fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzzing found nothing: ${targets[*]}"
