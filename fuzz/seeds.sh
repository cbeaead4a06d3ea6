#!/usr/bin/env bash
# Write the seed corpus of each fuzz target into fuzz/corpus/<target>/ (or
# the directory given), from the golden frames of the stock package
# (core/tests/golden, see tests/golden/README.md) and a few sessions written
# here against the fuzz registry (fuzz/src/lib.rs), with the extension
# fields (id, release, promises) the golden frames lack. Idempotent: seeds
# overwrite their own earlier copies, what libFuzzer added stays.
#
# Input formats (fuzz/src/lib.rs): the decoder takes one frame as it is;
# the session targets take an extensions byte, then frames each with a
# little-endian u16 length in front (the client target also has opcodes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/fuzz/corpus}
golden=$root/core/tests/golden
# Larger frames (64 KiB strings and lists) only slow every mutation down.
max_seed=4096

decoder=$out/frame_decoder server=$out/server_session client=$out/client_session
tls=$out/tls_records
mkdir -p "$decoder" "$server" "$client" "$tls"

# ---- msgpack by hand: each function writes its bytes to stdout.
hex() { local b x; for b in "$@"; do printf -v x '\\x%02x' "$b"; printf "$x"; done; }
map() { hex $((0x80 + $1)); }          # fixmap of $1 pairs
arr() { hex $((0x90 + $1)); }          # fixarray of $1 items
str() { hex $((0xa0 + ${#1})); printf '%s' "$1"; } # ASCII fixstr, under 32 bytes
bin() { hex 0xc4 ${#1}; printf '%s' "$1"; }        # short bin of ASCII
int() { hex "$1"; }                    # 0..127
nil() { hex 0xc0; }
true_() { hex 0xc3; }
half() { hex 0xcb 0x3f 0xe0 0 0 0 0 0 0; } # float64 0.5
promise() { map 1; str __rpc_promise__; int "$1"; }
proxy() { map 2; str __rpc_proxy__; true_; str obj_id; int "$1"; }
f64_array() { # {nd: true, type: "<f8", kind: "", shape: [2], data: 1.0, 2.0}
  map 5; bin nd; true_; bin type; str '<f8'; bin kind; bin ''; bin shape; arr 1; int 2
  bin data; hex 0xc4 16 0 0 0 0 0 0 0xf0 0x3f 0 0 0 0 0 0 0 0x40
}
# A frame with its u16 length in front.
framed() {
  local f n
  f=$(mktemp)
  "$@" >"$f"
  n=$(wc -c <"$f")
  hex $((n & 255)) $((n >> 8))
  cat "$f"
  rm -f "$f"
}

# ---- Request frames against the fuzz registry. $id is the request id
# field (empty: none), $release a list of ids to free.
id='' release=''
ext_fields() {
  if [ -n "$id" ]; then str id; int "$id"; fi
  if [ -n "$release" ]; then
    str release; arr "$(wc -w <<<"$release")"
    local r; for r in $release; do int "$r"; done
  fi
}
n_ext() { echo $(( ${id:+1} + 0 + ${release:+1} + 0 )); }
req_import() { map $((2 + $(n_ext))); str type; str import_module; str module; str "$1"; ext_fields; }
req_builtin() { map $((2 + $(n_ext))); str type; str get_builtin; str name; str "$1"; ext_fields; }
# getattr PATH OBJ ATTR: OBJ is a number, nil, or p<N> for a promise.
obj() { case $1 in nil) nil ;; p*) promise "${1#p}" ;; *) int "$1" ;; esac; }
req_getattr() {
  map $((4 + $(n_ext))); str type; str getattr; str path; str "$1"; str obj_id; obj "$2"
  str attr; str "$3"; ext_fields
}
# call PATH OBJ N_ARGS ARG_FN... ; kwargs come from $kwargs (a function name, or empty).
kwargs=''
req_call() {
  local path=$1 o=$2 n=$3
  shift 3
  map $((5 + $(n_ext))); str type; str call; str path; str "$path"; str obj_id; obj "$o"
  str args; arr "$n"
  local a; for a in "$@"; do eval "$a"; done
  str kwargs
  if [ -n "$kwargs" ]; then eval "$kwargs"; else map 0; fi
  ext_fields
}
req_getitem() { map $((3 + $(n_ext))); str type; str getitem; str obj_id; obj "$1"; str key; eval "$2"; ext_fields; }
req_materialize() { map $((2 + $(n_ext))); str type; str materialize; str obj_id; obj "$1"; ext_fields; }
req_text() { map $((2 + $(n_ext))); str type; str "$1"; str "$2"; str "$3"; ext_fields; }
req_teleport() { map $((3 + $(n_ext))); str type; str teleport; str func_bytes; bin pickle; str name; str f; ext_fields; }
req_namespace() { map $((1 + $(n_ext))); str type; str get_namespace; ext_fields; }
slice_key() { map 4; str __slice__; true_; str start; int 1; str stop; nil; str step; hex 0xff; }

# Session 1, every extension (byte 7): an environment stepped through
# promises, an item of its result, a release riding on a request.
session_env() {
  hex 7
  id=0 framed req_import sim
  id=1 framed req_getattr sim 0 make
  id=2 framed req_call sim.make 1 1 'int 3'
  id=3 framed req_getattr env p2 step
  id=4 framed req_call env.step p3 1 half
  id=5 framed req_getitem 4 'str obs'
  id=6 framed req_materialize 5
  id=7 release='4 5' framed req_materialize 2
  id=8 framed req_getattr env p2 reset
  id=9 framed req_call env.reset p8 1 'int 9'
  id=10 framed req_call sim.echo nil 1 'proxy 2'
  id=11 framed req_getattr env p99 step
}
# Session 2, the reference protocol (byte 0): builtins, paths without an
# object, a slice key, keyword arguments, an array argument, and the
# requests a Rust registry does not offer.
session_plain() {
  hex 0
  framed req_builtin len
  framed req_call len 0 1 'arr 3; int 1; int 2; int 3'
  framed req_materialize 1
  framed req_getattr sim nil table
  framed req_getitem 2 slice_key
  framed req_materialize 3
  kwargs='map 1; str y; str s' framed req_call sim.kw nil 1 'int 5'
  framed req_call sim.sum nil 1 f64_array
  framed req_call sim.shape nil 1 f64_array
  framed req_call sim.ints nil 2 'arr 2; int 1; int 2' 'int 3'
  framed req_call sim.add nil 2 'int 1' 'proxy 1'
  framed req_call sim.echo nil 1 'arr 2; arr 1; proxy 3; proxy 1'
  framed req_call sim.echo nil 1 'arr 1; proxy 9'
  framed req_text eval expr 1+1
  framed req_text execute code x=1
  framed req_teleport
  framed req_namespace
  framed req_import nope
}
session_env >"$server/session-env"
session_plain >"$server/session-plain"

# The same frames alone, for the decoder.
i=0
while read -r line; do
  i=$((i + 1))
  eval "$line" >"$decoder/handmade-$i"
done <<'EOF'
id=3 release='1 2' req_import sim
id=4 req_getattr env p2 step
id=5 req_call env.step p3 1 half
kwargs='map 1; str y; str s' id=6 req_call sim.kw nil 1 'proxy 1'
req_call sim.sum nil 1 f64_array
req_getitem 2 slice_key
EOF

# The golden frames: requests for the decoder and the server (with no
# extensions, and with all), responses for the decoder and the client.
for f in "$golden"/*.msgpack; do
  n=$(stat -c %s "$f")
  [ "$n" -le "$max_seed" ] || continue
  base=${f##*/}
  name=golden-${base%.msgpack}
  cp "$f" "$decoder/$name"
  frame() { hex $((n & 255)) $((n >> 8)); cat "$f"; }
  case $base in
    req_*)
      { hex 0; frame; } >"$server/$name"
      { hex 7; frame; } >"$server/$name-ext"
      ;;
    resp_*)
      # Send a materialize (opcode 0, object 0), read the frame (opcode 2),
      # take answer 0 (opcode 4); then the same through handle_frame_raw
      # (opcode 3) after a pipelined import (opcode 1 with kind 4).
      { hex 0 0 0 2; frame; hex 4 0; } >"$client/$name"
      { hex 7 $((1 | 4 << 3)) 0 3; frame; hex 6 5 0x80; } >"$client/$name-ext"
      ;;
  esac
done

# Client sessions with the id field: answers in order, one out of order,
# a failure nobody waits for, and an unsolicited frame.
ok_obj() { map 3; str type; str success; str obj_id; int "$1"; str id; int "$2"; }
ok_val() { map 3; str type; str success; str value; int "$1"; str id; int "$2"; }
failed() { map 3; str type; str error; str error; str boom; str id; int "$1"; }
{
  hex 7
  hex $((1 | 4 << 3)) 0 1 0x80 0 0 # pipelined import, pipelined materialize of it, a waited one
  hex 2; framed ok_obj 0 0
  hex 2; framed failed 1
  hex 2; framed ok_val 7 2
  hex 4 2 6 5 0x80 7 0x80
  hex 3; framed ok_val 1 5
  hex 3; framed ok_val 1 0
} >"$client/session-ids"

# TLS records (fuzz/fuzz_targets/tls_records.rs): a setup byte (suite,
# client, records with the handshake), a read size byte, then operations.
# Data, a key update asked for, more data and close_notify, in each suite
# and through small reads and a direct one; a full record padded; a
# session ticket in two pieces; a corrupted record; a cut.
for suite in 0 1 2 3; do
  for size in 7 0x80; do
    {
      hex $((suite | 4)) $size
      hex 0 23 5; printf hello
      hex 3 1
      hex 1 23 3; printf abc; hex 9
      hex 0 23 0
      hex 7 0
    } >"$tls/data-$suite-$size"
  done
  { hex $((suite | 8 | 3 << 4)) 0x80; hex 2 23 0x61 0 0x40 0 0 23 4; printf more; hex 7 9; } \
    >"$tls/full-$suite"
done
{ hex 4 0x80; hex 0 22 2 4 0; hex 0 22 2 0 1; hex 0 22 1 0; hex 0 23 2; printf ok; hex 7 0; } \
  >"$tls/ticket"
{ hex 0 16; hex 0 23 2; printf ok; hex 5 4; printf abcd; hex 9 0x10; hex 0 23 2; printf no; } \
  >"$tls/corrupt"
{ hex 1 0x80; hex 6 3 0x41 23 0; hex 6 2 0 0; hex 0 21 2 2 40; } >"$tls/inner"

echo "seeds in $out: $(ls "$decoder" | wc -l) decoder, $(ls "$server" | wc -l) server, $(ls "$client" | wc -l) client, $(ls "$tls" | wc -l) tls"
