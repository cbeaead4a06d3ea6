#!/usr/bin/env bash
# Install libsimplerpc (scripts/install-c.sh, the debug build) and build the
# C examples and tests and the C++ example against it with pkg-config's
# flags; check the SONAME and srpc_version(), that the header compiles as
# C11 and C++17 with warnings as errors, and run under valgrind (no leaks, no
# invalid reads or writes) the socketpair example and the C WebSocket client
# (tests/c/ws_client.c) against the C matrix server, the stream transport
# over a socketpair (tests/c/stream_fd.c), the msgpack helpers
# (tests/c/msgpack.c), the API's edges (tests/c/edges.c), the smallest
# server session (examples/c/add_socketpair.c) and the C++ example
# (examples/cpp/add.cpp). The WebSocket C server is
# also driven by real clients in tests/interop. Last, the README's C host is
# run and the Python client (.venv/bin/python, or $SIMPLERPC_REFERENCE_PYTHON)
# calls it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/c"
mkdir -p "$out"
# Install the debug build as a user would install a release
# (scripts/install-c.sh: lib with its SONAME links, headers, pkg-config file)
# and build everything with the flags pkg-config gives.
prefix="$out/prefix"
rm -rf "$prefix"
scripts/install-c.sh "$prefix" --profile dev
lib="$prefix/lib"
export PKG_CONFIG_PATH="$lib/pkgconfig"
read -r -a pc_cflags <<<"$(pkg-config --cflags simplerpc)"
read -r -a pc_libs <<<"$(pkg-config --libs simplerpc)"
# --static, with the archive named so the linker cannot pick the .so.
read -r -a pc_static <<<"$(pkg-config --static --libs simplerpc | sed 's/-lsimplerpc\b/-l:libsimplerpc.a/')"
cflags=(-std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -g "${pc_cflags[@]}")
link=("${pc_libs[@]}" -Wl,-rpath,"$lib" -lpthread -ldl -lm)
# The shared library names its ABI (SONAME) and reports the crate's version.
readelf -d "$lib/libsimplerpc.so" | grep -q 'Library soname: \[libsimplerpc.so.0\]' ||
  { echo "libsimplerpc.so has no SONAME libsimplerpc.so.0" >&2; exit 1; }
crate_version=$(cargo metadata --no-deps --format-version 1 |
  python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="simplerpc-ffi"))')
printf '#include <stdio.h>\n#include <string.h>\n#include "simplerpc.h"\nint main(void) { puts(srpc_version()); return strcmp(srpc_version(), SRPC_VERSION) != 0; }\n' > "$out/version.c"
gcc "${cflags[@]}" "$out/version.c" "${link[@]}" -o "$out/version"
lib_version=$("$out/version") || { echo "srpc_version() differs from the header's SRPC_VERSION" >&2; exit 1; }
[ "$lib_version" = "$crate_version" ] ||
  { echo "srpc_version() is $lib_version, the crate is $crate_version" >&2; exit 1; }
gcc "${cflags[@]}" examples/c/add_socketpair.c "${link[@]}" -o "$out/add_socketpair"
gcc "${cflags[@]}" tests/c/msgpack.c "${link[@]}" -o "$out/msgpack"
gcc "${cflags[@]}" tests/c/edges.c "${link[@]}" -o "$out/edges"
gcc "${cflags[@]}" examples/c/pipe_session.c examples/c/matrix_executor.c "${link[@]}" -o "$out/pipe_session"
gcc "${cflags[@]}" examples/c/matrix_server.c examples/c/matrix_executor.c "${link[@]}" -o "$out/matrix_server"
gcc "${cflags[@]}" tests/c/faulty_server.c "${link[@]}" -o "$out/faulty_server"
gcc "${cflags[@]}" tests/c/ws_client.c "${link[@]}" -o "$out/ws_client"
gcc "${cflags[@]}" tests/c/stream_fd.c examples/c/matrix_executor.c "${link[@]}" -o "$out/stream_fd"
# The static library links too.
gcc "${cflags[@]}" examples/c/pipe_session.c examples/c/matrix_executor.c "${pc_static[@]}" -o "$out/pipe_session_static"
# The C host shown in the README compiles and links, as C and as C++17, with
# every warning an error (it runs at the end).
awk '/^```c$/{on=1; next} /^```$/{on=0} on' README.md > "$out/readme_host.c"
gcc "${cflags[@]}" -pedantic "$out/readme_host.c" "${link[@]}" -o "$out/readme_host"
cp "$out/readme_host.c" "$out/readme_host.cpp"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -c "$out/readme_host.cpp" -o "$out/readme_host_cpp.o"
# The C++ example, through the header-only wrapper (include/simplerpc.hpp).
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -g "${pc_cflags[@]}" examples/cpp/add.cpp "${link[@]}" -pthread -o "$out/add_cpp"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -g "${pc_cflags[@]}" tests/cpp/wrapper.cpp "${link[@]}" -pthread -o "$out/wrapper_cpp"
# The header alone, twice, as C11 and C++17.
printf '#include "simplerpc.h"\n#include "simplerpc.h"\nint main(void) { return SRPC_STATUS_OK; }\n' > "$out/header.c"
gcc -std=c11 -Wall -Wextra -Werror -pedantic -Iinclude -c "$out/header.c" -o "$out/header_c.o"
cp "$out/header.c" "$out/header.cpp"
g++ -std=c++17 -Wall -Wextra -Werror -pedantic -Iinclude -c "$out/header.cpp" -o "$out/header_cpp.o"
# Every function in the header is exported by the shared library.
missing=0
for f in $(grep -oE '\bsrpc_[a-z_]+\(' include/simplerpc.h | tr -d '(' | sort -u); do
  nm -D --defined-only "$lib/libsimplerpc.so" | grep -q " T $f\$" || { echo "not exported: $f"; missing=1; }
done
[ "$missing" = 0 ]
"$out/pipe_session"
"$out/pipe_session_static"
if ! command -v valgrind >/dev/null; then
  echo "valgrind is not installed: apt-get install valgrind" >&2
  exit 1
fi
vg=(valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect
  --error-exitcode=9)
"${vg[@]}" --trace-children=yes "$out/pipe_session"
# The msgpack helpers (every dtype), and the edges of the C API.
"${vg[@]}" "$out/msgpack"
timeout 300 "${vg[@]}" "$out/edges"
timeout 300 "${vg[@]}" "$out/add_cpp"
# The wrapper when the library refuses: the executor freed once.
timeout 300 "${vg[@]}" "$out/wrapper_cpp"
timeout 300 "${vg[@]}" "$out/add_socketpair"
# The stream transport over a socketpair: server thread and client.
timeout 300 "${vg[@]}" "$out/stream_fd"
# The C client against the C server, each under valgrind: the server prints
# "PORT n" and "TOKEN t", and stops cleanly when told "stop" on stdin.
coproc server { exec "${vg[@]}" "$out/matrix_server"; }
server_pid=$server_PID
server_in=${server[1]}
read -r -t 120 -u "${server[0]}" _ port
read -r -t 120 -u "${server[0]}" _ token
rc=0
timeout 300 "${vg[@]}" "$out/ws_client" "$port" "$token" || rc=$?
echo stop >&"$server_in"
wait "$server_pid" || { echo "matrix_server exited $? (valgrind errors or leaks?)" >&2; rc=1; }
[ "$rc" = 0 ] || { echo "ws_client against matrix_server failed" >&2; exit 1; }
# The same over TLS: a lab CA and a certificate for 127.0.0.1 made by the
# lab_cert example (rcgen), the server given certfile and keyfile, the
# client trusting the CA; a plain client of it must fail naming wss://.
certs="$out/tls"
cargo run -q -p simplerpc-ws --example lab_cert -- "$certs" 127.0.0.1 localhost
# ring's AES-GCM assembly is opaque to memcheck: scripts/valgrind-ring.supp.
vg_tls=("${vg[@]}" --suppressions="$root/scripts/valgrind-ring.supp")
coproc tls_server { exec "${vg_tls[@]}" "$out/matrix_server" 0 "" "$certs/cert.pem" "$certs/key.pem"; }
tls_pid=$tls_server_PID
tls_in=${tls_server[1]}
read -r -t 120 -u "${tls_server[0]}" _ port
read -r -t 120 -u "${tls_server[0]}" _ token
rc=0
timeout 300 "${vg_tls[@]}" "$out/ws_client" "$port" "$token" "$certs/ca.pem" || rc=$?
echo stop >&"$tls_in"
wait "$tls_pid" || { echo "matrix_server (TLS) exited $? (valgrind errors or leaks?)" >&2; rc=1; }
[ "$rc" = 0 ] || { echo "ws_client against matrix_server over TLS failed" >&2; exit 1; }
# The README's C host, run as a reader would: it prints the export lines
# (through a pipe, so only if it flushes them), the Python client connects
# with them as its environment and gets the host's answers, and the host
# stops on Enter.
python=${SIMPLERPC_REFERENCE_PYTHON:-$root/.venv/bin/python}
if ! "$python" -c 'import simplerpc' 2>/dev/null; then
  echo "no Python with simplerpc at $python: make one with scripts/python-env.sh .venv" >&2
  echo "(or point SIMPLERPC_REFERENCE_PYTHON at one)" >&2
  exit 1
fi
coproc host { exec timeout 120 "$out/readme_host"; }
host_pid=$host_PID
host_in=${host[1]}
client_env=()
for _ in 1 2 3; do
  if ! read -r -t 60 -u "${host[0]}" word assignment || [ "$word" != export ]; then
    echo "the README's C host did not print its three export lines within 60 s" >&2
    exit 1
  fi
  client_env+=("${assignment//\'/}")
done
rc=0
env "${client_env[@]}" timeout 60 "$python" - <<'EOF' || rc=$?
import simplerpc
from simplerpc import materialize

with simplerpc.connect() as conn:  # SIMPLERPC_HOST/_PORT/_TOKEN as the host printed them
    value = materialize(conn.modules.anything)
    if value != 42:
        raise SystemExit("the README's C host materialized a module as %r, not 42" % (value,))
    try:
        materialize(conn.modules.anything.attr)
    except NotImplementedError as e:
        if "not here" not in str(e):
            raise SystemExit("the README's C host raised %r, not its 'not here'" % (e,))
    else:
        raise SystemExit("the README's C host answered a getattr it should refuse")
print("the README's C host answered the Python client: 42, and NotImplementedError")
EOF
echo >&"$host_in"
host_rc=0
wait "$host_pid" || host_rc=$?
[ "$host_rc" = 0 ] || { echo "the README's C host exited $host_rc after Enter (expected 0)" >&2; rc=1; }
[ "$rc" = 0 ] || { echo "the Python client against the README's C host failed" >&2; exit 1; }
