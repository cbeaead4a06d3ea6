#!/usr/bin/env bash
# Build the C examples against libsimplerpc, check the header compiles as
# C11 and C++17 with warnings as errors, and run under valgrind (no leaks, no
# invalid reads or writes) the socketpair example and the C WebSocket client
# (tests/c/ws_client.c) against the C matrix server, and the stream transport
# over a socketpair (tests/c/stream_fd.c). The WebSocket C server is
# also driven by real clients in tests/interop.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
out="$root/target/c"
mkdir -p "$out"
lib="$root/target/debug"
cargo build -p simplerpc-ffi
cflags=(-std=c11 -Wall -Wextra -Werror -D_DEFAULT_SOURCE -g -Iinclude)
link=(-L"$lib" -lsimplerpc -Wl,-rpath,"$lib" -lpthread -ldl -lm)
gcc "${cflags[@]}" examples/c/pipe_session.c examples/c/matrix_executor.c "${link[@]}" -o "$out/pipe_session"
gcc "${cflags[@]}" examples/c/matrix_server.c examples/c/matrix_executor.c "${link[@]}" -o "$out/matrix_server"
gcc "${cflags[@]}" tests/c/faulty_server.c "${link[@]}" -o "$out/faulty_server"
gcc "${cflags[@]}" tests/c/ws_client.c "${link[@]}" -o "$out/ws_client"
gcc "${cflags[@]}" tests/c/stream_fd.c examples/c/matrix_executor.c "${link[@]}" -o "$out/stream_fd"
# The static library links too.
gcc "${cflags[@]}" examples/c/pipe_session.c examples/c/matrix_executor.c "$lib/libsimplerpc.a" -lpthread -ldl -lm -o "$out/pipe_session_static"
# The C host shown in the README compiles and links.
awk '/^```c$/{on=1; next} /^```$/{on=0} on' README.md > "$out/readme_host.c"
gcc "${cflags[@]}" -Wno-unused-parameter -Wno-missing-field-initializers "$out/readme_host.c" "${link[@]}" -o "$out/readme_host"
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
