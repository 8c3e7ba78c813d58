#!/usr/bin/env bash
# Install the pinned Claude Code CLI into .tools/claude/ (git-ignored) for the integration tests,
# reusing an install that already has the pinned version. Prints the binary's path on stdout.
#
# Without npm this is not an error: it says so and exits 0, and the real-`claude` tests skip with
# that reason. With npm present a failed install is an error, so CI never goes green silently
# without the real CLI.
set -euo pipefail

# Newest release on the npm registry when pinned (2.1.329, native binary per platform; the npm
# package only needs node for its postinstall). Bump deliberately: the tests pin its behaviour.
CLAUDE_CODE_VERSION="${CLAUDE_CODE_VERSION:-2.1.329}"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
prefix="$root/.tools/claude"
bin="$prefix/node_modules/.bin/claude"

installed_version() {
  # "2.1.329 (Claude Code)" -> "2.1.329"; empty when missing or not runnable (placeholder stub).
  [ -x "$bin" ] || return 0
  HOME="$prefix/home" DISABLE_AUTOUPDATER=1 "$bin" --version 2>/dev/null | awk 'NR == 1 { print $1 }' || true
}

if [ "$(installed_version)" = "$CLAUDE_CODE_VERSION" ]; then
  echo "$bin"
  exit 0
fi

if ! command -v npm >/dev/null 2>&1 || ! command -v node >/dev/null 2>&1; then
  echo "install_claude: npm/node not found; skipping the Claude Code CLI (its integration tests will skip)" >&2
  exit 0
fi

mkdir -p "$prefix/home"
# Two test workers (or CI and a developer) may install at once: one installs, the other reuses.
exec 9>"$prefix/.install.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
if [ "$(installed_version)" != "$CLAUDE_CODE_VERSION" ]; then
  echo "install_claude: installing @anthropic-ai/claude-code@$CLAUDE_CODE_VERSION into $prefix" >&2
  # --no-save keeps our own package.json out of it; engine warnings (node < 22) are harmless for
  # the native binary. stdout goes to stderr so this script's stdout is only the binary's path.
  npm install --prefix "$prefix" --no-save --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$CLAUDE_CODE_VERSION" >&2
  if [ "$(installed_version)" != "$CLAUDE_CODE_VERSION" ]; then
    # npm versions that skip install scripts leave bin/claude.exe a placeholder; the package's own
    # postinstall puts the native binary in its place.
    node "$prefix/node_modules/@anthropic-ai/claude-code/install.cjs" >&2 || true
  fi
fi
got="$(installed_version)"
if [ "$got" != "$CLAUDE_CODE_VERSION" ]; then
  echo "install_claude: $bin reports version '${got:-none}', expected $CLAUDE_CODE_VERSION" >&2
  exit 1
fi
echo "$bin"
