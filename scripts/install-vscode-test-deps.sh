#!/usr/bin/env bash
# Installs what the tests need outside the project's own dependencies: bubblewrap (the sandbox every
# eval and unit check runs in), systemd's `systemd-analyze` (it verifies the units `optimus service`
# writes), and for the extension's tests in a real VS Code
# Debian's Chromium (the UI driver's browser), ripgrep and libkrb5-dev (code-server's native modules),
# and code-server 4.100.3 (VS Code 1.100.3, the last release on Node 20) from npm into a cache folder.
# Idempotent: each step is skipped when its result is already there. The tests find them through
# test/src/helpers/vscode/code-server.ts (whose CODE_SERVER_VERSION must match the one here).
set -euo pipefail
CODE_SERVER_VERSION=4.100.3
CACHE="${OPTIMUS_VSCODE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/optimus-vscode-test}"
dir="$CACHE/code-server-$CODE_SERVER_VERSION"

need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v rg >/dev/null 2>&1 || need+=(ripgrep)
dpkg -s libkrb5-dev >/dev/null 2>&1 || need+=(libkrb5-dev)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi

if [ ! -x "$dir/node_modules/.bin/code-server" ]; then
  echo "installing code-server $CODE_SERVER_VERSION into $dir"
  # @vscode/ripgrep's postinstall downloads rg from GitHub, which is unreachable here: seed its cache
  # with Debian's binary so it finds the archive it would have downloaded.
  rgcache="${TMPDIR:-/tmp}/vscode-ripgrep-cache-1.15.11"
  mkdir -p "$rgcache"
  [ -f "$rgcache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" ] ||
    tar czf "$rgcache/ripgrep-v13.0.0-10-x86_64-unknown-linux-musl.tar.gz" -C "$(dirname "$(command -v rg)")" rg
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"name":"optimus-vscode-test","private":true}' > "$dir/package.json"
  # --unsafe-perm: CI runs as root; npm_config_yes: node-pty's postinstall calls npx.
  (cd "$dir" && npm_config_yes=true npm install --no-audit --no-fund --no-save --unsafe-perm \
    --ignore-workspace-root-check "code-server@$CODE_SERVER_VERSION")
fi
echo "code-server: $dir/node_modules/.bin/code-server"
