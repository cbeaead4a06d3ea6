#!/usr/bin/env bash
# Build libsimplerpc and install it for C and C++ users under PREFIX:
#   PREFIX/lib/libsimplerpc.so.X.Y.Z, its SONAME link libsimplerpc.so.X and
#   the development link libsimplerpc.so; PREFIX/lib/libsimplerpc.a;
#   PREFIX/include/simplerpc.h and simplerpc.hpp (C++17 wrapper);
#   PREFIX/lib/pkgconfig/simplerpc.pc.
# Then: cc app.c $(pkg-config --cflags --libs simplerpc)
#   (with PKG_CONFIG_PATH=PREFIX/lib/pkgconfig for a prefix pkg-config does not
#   search; add --static for the .a).
# Usage: scripts/install-c.sh PREFIX [--profile NAME]   (default: release;
#   `--profile dev` installs the debug build, as scripts/test-c.sh does)
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 PREFIX [--profile release|dev|profiling]" >&2; exit 2; }
prefix=$1
shift
profile=release
if [ "${1:-}" = --profile ]; then profile=${2:?--profile needs a name}; fi
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build -q --profile "$profile" -p simplerpc-ffi
case $profile in dev) dir=debug ;; *) dir=$profile ;; esac
target=${CARGO_TARGET_DIR:-$root/target}
built="$target/$dir"
version=$(sed -n 's/^#define SRPC_VERSION "\(.*\)"$/\1/p' include/simplerpc.h)
major=${version%%.*}
mkdir -p "$prefix"
prefix=$(cd "$prefix" && pwd)
libdir="$prefix/lib"
incdir="$prefix/include"
mkdir -p "$libdir/pkgconfig" "$incdir"
install -m 755 "$built/libsimplerpc.so" "$libdir/libsimplerpc.so.$version"
ln -sf "libsimplerpc.so.$version" "$libdir/libsimplerpc.so.$major"
ln -sf "libsimplerpc.so.$major" "$libdir/libsimplerpc.so"
install -m 644 "$built/libsimplerpc.a" "$libdir/libsimplerpc.a"
# The archive carries the standard library's debug info too; a release
# install drops it (26 MB -> 17 MB). The profiling profile keeps it.
if [ "$profile" = release ] && command -v strip >/dev/null; then
  strip --strip-debug "$libdir/libsimplerpc.a"
fi
install -m 644 include/simplerpc.h include/simplerpc.hpp "$incdir/"
cat > "$libdir/pkgconfig/simplerpc.pc" <<PC
prefix=$prefix
libdir=\${prefix}/lib
includedir=\${prefix}/include

Name: simplerpc
Description: libsimplerpc, the C ABI of simplerpc (remote calls with lazy proxies)
URL: https://github.com/milkclouds/simplerpc
Version: $version
Libs: -L\${libdir} -lsimplerpc
Libs.private: -lpthread -ldl -lm
Cflags: -I\${includedir}
PC
echo "installed libsimplerpc $version under $prefix"
