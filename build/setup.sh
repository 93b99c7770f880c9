#!/usr/bin/env bash
# Everything a fresh Debian machine needs before Stint runs or tests: system packages, then npm dependencies.
# Works offline from the npm registry's point of view for Electron: its binary is optional (without it, `npm start`
# uses the web host), so the install never depends on reaching Electron's download server.
set -euo pipefail
cd "$(dirname "$0")/.."

bash build/prereqs.sh

export ELECTRON_SKIP_BINARY_DOWNLOAD=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
# Native addons (better-sqlite3, keytar) build with node-gyp, which downloads Node's headers unless told where they
# are; offline that fails. Use the headers installed with Node when npm was not already pointed somewhere (a fresh
# HOME has no ~/.npmrc).
configured_nodedir="$(npm config get nodedir 2>/dev/null || true)"
if [ -z "$configured_nodedir" ] || [ "$configured_nodedir" = "undefined" ] || [ "$configured_nodedir" = "null" ]; then
  node_prefix="$(dirname "$(dirname "$(command -v node)")")"
  if [ -f "$node_prefix/include/node/node.h" ]; then export npm_config_nodedir="$node_prefix"; fi
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
else
  echo "setup: npm dependencies up to date"
fi

# The Electron binary comes from outside the npm registry; fetch it only if that works quickly, never fail on it.
if [ -z "${CI:-}" ] && [ ! -f node_modules/electron/path.txt ]; then
  if timeout 120 env -u ELECTRON_SKIP_BINARY_DOWNLOAD node node_modules/electron/install.js >/dev/null 2>&1; then
    echo "setup: Electron binary installed"
  else
    echo "setup: Electron binary not available here (no access to its download server); npm start will use the web host"
  fi
fi
echo "setup: ok"
