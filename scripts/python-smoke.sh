#!/usr/bin/env bash
# Build the Python package's wheel once and smoke-test it on the oldest and the
# newest CPython (>= 3.8) this machine has.
#
# The wheel is built by `pip wheel ./bindings/python` with the OLDEST Python:
# that is what `pip install ./bindings/python` does on it (a PEP 517 build in
# an isolated env holding the newest build requirements that Python can get),
# so it checks the install from source on the oldest Python too. The wheel
# must be tagged py3-none-<platform>; it is then installed, with nothing
# rebuilt, into a fresh venv of the oldest and of the newest Python, where
# scripts/python_smoke.py starts `python -m simplerpc.server --port 0`,
# connects, calls, and round-trips an array when numpy has a binary wheel for
# that Python (numpy is optional here). The newest setuptools is exercised by
# the .venv that scripts/test.sh builds from source.
#
# Pythons: python3.8 ... python3.14 and python3 on PATH, plus those of pyenv
# (whose shims run only the selected versions), or the list in
# $SIMPLERPC_SMOKE_PYTHONS (space-separated commands or paths). Everything goes
# to target/python-smoke (git-ignored), pip's cache included; the venvs are
# made afresh on every run.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/python-smoke"
export PIP_CACHE_DIR="$out/pip-cache"
export PIP_DISABLE_PIP_VERSION_CHECK=1
unset PYTHONPATH

# A Python counts if it runs, is 3.8 or later and has venv; print "MINOR PATH".
probe() {
  "$1" -c 'import sys, venv, ensurepip
assert sys.version_info >= (3, 8) and sys.implementation.name == "cpython"
print(sys.version_info[1], sys.executable)' 2>/dev/null
}
candidates=()
if [ -n "${SIMPLERPC_SMOKE_PYTHONS:-}" ]; then
  read -r -a candidates <<<"$SIMPLERPC_SMOKE_PYTHONS"
else
  for m in 8 9 10 11 12 13 14; do
    command -v "python3.$m" >/dev/null && candidates+=("python3.$m")
  done
  candidates+=(python3)
  if command -v pyenv >/dev/null; then
    for p in "$(pyenv root)"/versions/3.*/bin/python3; do
      [ -x "$p" ] && candidates+=("$p")
    done
  fi
fi
oldest="" newest="" oldest_minor=999 newest_minor=-1
for c in "${candidates[@]}"; do
  read -r minor path < <(probe "$c") || continue
  if [ "$minor" -lt "$oldest_minor" ]; then oldest_minor=$minor oldest=$path; fi
  if [ "$minor" -gt "$newest_minor" ]; then newest_minor=$minor newest=$path; fi
done
if [ -z "$oldest" ]; then
  echo "no CPython >= 3.8 with venv found among: ${candidates[*]}" >&2
  echo "install one, or list them in SIMPLERPC_SMOKE_PYTHONS" >&2
  exit 1
fi
echo "oldest Python: 3.$oldest_minor ($oldest); newest: 3.$newest_minor ($newest)"

rm -rf "$out/wheel" "$out/venv-"*
mkdir -p "$out/wheel"
echo "building the wheel once, from source, with Python 3.$oldest_minor"
"$oldest" -m venv "$out/venv-build"
"$out/venv-build/bin/python" -m pip install -q "pip>=21.3"
"$out/venv-build/bin/python" -m pip wheel -q --no-deps -w "$out/wheel" ./bindings/python
wheels=("$out"/wheel/*.whl)
if [ "${#wheels[@]}" != 1 ]; then
  echo "expected one wheel, got: ${wheels[*]}" >&2
  exit 1
fi
wheel=${wheels[0]}
echo "wheel: $(basename "$wheel")"
case $(basename "$wheel") in
  simplerpc-*-py3-none-*.whl) ;;
  *) echo "the wheel is not tagged py3-none-<platform>: setup.py's bdist_wheel.get_tag was not used" >&2; exit 1 ;;
esac

pythons=("$oldest")
[ "$newest" != "$oldest" ] && pythons+=("$newest")
[ "${#pythons[@]}" = 1 ] && echo "only one Python (3.$oldest_minor) here: the wheel is smoke-tested on it alone"
for py in "${pythons[@]}"; do
  minor=$("$py" -c 'import sys; print(sys.version_info[1])')
  venv="$out/venv-3.$minor"
  echo "installing the wheel into a fresh Python 3.$minor venv"
  "$py" -m venv "$venv"
  "$venv/bin/python" -m pip install -q "pip>=21.3"
  "$venv/bin/python" -m pip install -q --prefer-binary "$wheel"
  if ! "$venv/bin/python" -m pip install -q --only-binary=:all: numpy; then
    echo "(no numpy binary wheel for Python 3.$minor: its smoke test skips the array)"
  fi
  "$venv/bin/simplerpc-server" --help >/dev/null
  (cd "$out" && "$venv/bin/python" "$root/scripts/python_smoke.py")
done
