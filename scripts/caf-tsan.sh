#!/usr/bin/env bash
# Builds CAF 0.17.6's core with ThreadSanitizer into .deps/caf-tsan, from Debian's
# source package. Debian's libcaf_core is not instrumented, so TSan cannot see the
# synchronisation inside CAF's mailboxes and reports every message hand-off as a race.
# Uses a private apt source list: the system's apt configuration is not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=$PWD/.deps/caf-tsan
[ -f "$prefix/lib/libcaf_core.so" ] && exit 0
work=$PWD/.deps/caf-src
mkdir -p "$work/lists/partial" "$work/sources.list.d"
cat > "$work/sources.list.d/debian-src.sources" <<SOURCES
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SOURCES
apt_opts=(-o "Dir::Etc::SourceList=/dev/null" -o "Dir::Etc::SourceParts=$work/sources.list.d"
          -o "Dir::State::Lists=$work/lists")
cd "$work"
if [ ! -f actor-framework_0.17.6.orig.tar.gz ]; then
  apt-get "${apt_opts[@]}" update -qq
  # Only the upstream tarball is needed; Debian's patch tarball may be missing.
  apt-get "${apt_opts[@]}" source --download-only actor-framework || true
fi
tar xzf actor-framework_0.17.6.orig.tar.gz
cmake -S actor-framework-0.17.6 -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCMAKE_CXX_FLAGS="-fsanitize=thread -fno-omit-frame-pointer" \
  -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=thread" -DCMAKE_INSTALL_PREFIX="$prefix" \
  -DCAF_NO_IO=yes -DCAF_NO_EXAMPLES=yes -DCAF_NO_UNIT_TESTS=yes -DCAF_NO_OPENCL=yes \
  -DCAF_NO_OPENSSL=yes -DCAF_NO_TOOLS=yes -DCAF_NO_PYTHON=yes -DCAF_LOG_LEVEL=QUIET >/dev/null
cmake --build build -j2
cmake --install build >/dev/null
