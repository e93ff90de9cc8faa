#!/bin/sh
# Builds the .deb the way a release does and stages it for the other tests:
#   DIR/build     Release build, prefix /usr (configured once, then incremental)
#   DIR/*.deb     cpack -G DEB
#   DIR/destdir   DESTDIR=... cmake --install (the install layout)
#   DIR/root      dpkg -x of the .deb (what a host gets)
# usage: build_deb.sh SOURCE DIR GENERATOR CC CXX
set -eu
src=$1 dir=$2 gen=$3 cc=$4 cxx=$5
mkdir -p "$dir"
# The sanitizer settings of the surrounding test run must not leak in.
unset ASAN_OPTIONS UBSAN_OPTIONS DESTDIR CFLAGS CXXFLAGS LDFLAGS
# g++ 12 at -O3 reports false positives in std::string code (-Wrestrict,
# -Wstringop-overflow...): warnings in a package build, not errors. The same
# flags are in packaging/container/Dockerfile.
release_cxxflags="-Wno-error=restrict -Wno-error=stringop-overflow -Wno-error=array-bounds -Wno-error=maybe-uninitialized"
if [ ! -f "$dir/build/CMakeCache.txt" ]; then
  cmake -S "$src" -B "$dir/build" -G "$gen" -DCMAKE_BUILD_TYPE=Release -DINGESTD_TESTS=OFF \
    -DINGESTD_SANITIZE=OFF -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_C_COMPILER="$cc" \
    -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_EXPORT_COMPILE_COMMANDS=OFF \
    -DCMAKE_CXX_FLAGS="$release_cxxflags" >"$dir/configure.log"
fi
cmake --build "$dir/build"
rm -f "$dir"/*.deb
(cd "$dir" && cpack -G DEB --config "$dir/build/CPackConfig.cmake" -B "$dir/cpack") >"$dir/cpack.log" 2>&1 ||
  { cat "$dir/cpack.log"; exit 1; }
mv "$dir"/cpack/ingestd_*.deb "$dir/"
rm -rf "$dir/destdir" "$dir/root"
DESTDIR="$dir/destdir" cmake --install "$dir/build" >"$dir/install.log"
dpkg -x "$dir"/ingestd_*.deb "$dir/root"
ls "$dir"/ingestd_*.deb
