#!/usr/bin/env bash
# Installs libsop from a Release build into a scratch prefix and builds the
# consumer program twice, outside the tree: with pkg-config and with CMake's
# find_package(sop). Runs both.
set -euo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
b=$top/build/install-test
rm -rf "$b"
cmake -S "$top" -B "$b/build" -DCMAKE_BUILD_TYPE=Release -DSOP_BUILD_TESTS=OFF \
      -DCMAKE_INSTALL_PREFIX="$b/prefix" >/dev/null
cmake --build "$b/build" -j"$(nproc)" >/dev/null
cmake --install "$b/build" >/dev/null
prefix=$b/prefix
libdir=$(ls -d "$prefix"/lib*/ | head -n1)

# 1. pkg-config, shared library
export PKG_CONFIG_PATH="$libdir/pkgconfig"
cc -std=c11 -Wall -Werror "$top/tests/install/consumer.c" $(pkg-config --cflags --libs sop) \
   -Wl,-rpath,"$libdir" -o "$b/consumer-pc"
"$b/consumer-pc" "$b/db-pc"

# 2. pkg-config, static library
cc -std=c11 -Wall -Werror "$top/tests/install/consumer.c" $(pkg-config --cflags sop) \
   "$libdir/libsop.a" $(pkg-config --libs-only-l --static sop | sed 's/-lsop//') -o "$b/consumer-static"
"$b/consumer-static" "$b/db-static"

# 3. CMake package
cmake -S "$top/tests/install" -B "$b/cmake" -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
cmake --build "$b/cmake" >/dev/null
"$b/cmake/consumer" "$b/db-cmake"

# only sop_* symbols are exported
bad=$(nm -D --defined-only "$libdir/libsop.so" | awk '$2 ~ /[TDB]/ {print $3}' | grep -v '^sop_' | grep -v '^_' || true)
if [ -n "$bad" ]; then echo "install: non-sop symbols exported: $bad" >&2; exit 1; fi
echo "install: 3 consumers built and ran; exports are sop_* only"
