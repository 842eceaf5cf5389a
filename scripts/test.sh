#!/usr/bin/env bash
# Every check peerdoc has, in the order CI runs them. Installs what the checks need when it is
# missing (npm packages; Debian's chromium, iproute2 and nftables). Runs as root (the network lab
# creates and removes Linux network namespaces). Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== tools: ip and nft for the network lab (root; namespaces), chromium for the browser tests"
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "== unit, property and integration tests (the network lab included)"
cargo test --locked
cargo build --locked --bin peerdoc

echo "== web editor bundle is current"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
if [ -n "$(git status --porcelain -- web/dist)" ]; then
  git status --short -- web/dist
  echo "web/dist differs from a fresh build: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi

echo "== yjs/y-websocket clients and browser end-to-end tests"
# A hung test process fails the run rather than stalling CI.
(cd web && PEERDOC_BIN="$root/target/debug/peerdoc" CHROMIUM="$(command -v chromium)" \
  timeout 600 npm test --silent)

echo "== fuzz targets still build"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --quiet

echo "all checks passed"
