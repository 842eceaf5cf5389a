#!/usr/bin/env bash
# Every check peerdoc has, in the order CI runs them. Installs what the checks need when it is
# missing (npm packages; Debian's chromium, iproute2 and nftables). Runs as root (the network lab
# creates and removes Linux network namespaces). Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# A run builds from scratch in CI: incremental caches would only take disk (a clean run needs
# about 6.5 GB free; see README).
export CARGO_INCREMENTAL=0
# Each stage's header says how long the run has taken so far (where CI's time goes).
stage() { echo "== $* [$((SECONDS / 60))m$((SECONDS % 60))s]"; }
echo "== disk: $(df -h --output=avail . | tail -n 1 | tr -d ' ') free where the build goes"

stage "formatting"
cargo fmt --all -- --check

stage "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo clippy --all-targets --locked --features test-faults -- -D warnings

stage "tools: ip and nft for the network lab (root; namespaces), chromium for the browser tests"
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v nft >/dev/null 2>&1 || missing+=(nftables)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

stage "tier 1: unit, property and integration tests (plain 'cargo test': no root, no network lab)"
cargo test --locked
cargo test --locked -p peerdoc-bench
# The embedding example co-edits between two nodes and fails if an edit does not arrive.
cargo run --locked --quiet --example embed >/dev/null

stage "tier 2: the network lab (namespaces, NAT), chaos, a full disk, soak and memory (root)"
# With test-only message faults (serve --inject-faults), which a normal build does not have.
cargo test --locked --features test-faults --test tests -- --ignored
cargo build --locked --bin peerdoc

stage "web editor bundle is current"
(cd web && npm ci --no-audit --no-fund --loglevel=error && npm run build --silent)
if [ -n "$(git status --porcelain -- web/dist)" ]; then
  git status --short -- web/dist
  echo "web/dist differs from a fresh build: run 'npm run build' in web/ and commit web/dist" >&2
  exit 1
fi

stage "yjs/y-websocket clients and browser end-to-end tests"
# A hung test process fails the run rather than stalling CI.
(cd web && PEERDOC_BIN="$root/target/debug/peerdoc" CHROMIUM="$(command -v chromium)" \
  timeout 600 npm test --silent)

stage "benchmark harness: a smoke run (tiny sizes, debug build) so that it cannot rot"
# Measures nothing; the real run and its figures: BENCHMARKS.md.
# On a synthetic trace the harness writes: nothing beside the clone is needed.
bash scripts/bench.sh --smoke >/dev/null

stage "fuzz targets: a bounded, reproducible run of each, from the committed seeds"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet
# Stable toolchain: RUSTC_BOOTSTRAP lets cargo fuzz use the sanitizer flags it needs.
# Fixed seed and run count: the same inputs every time (a long exploratory run: see README).
# A passing target says one line; a failing one shows the end of libFuzzer's report (the input
# that failed and its stack) and stops the run.
fuzz() {
  local target=$1 runs=$2; shift 2
  local corpus log
  corpus=$(mktemp -d)
  log=$(mktemp)
  cp fuzz/seeds/"$target"/* "$corpus"/
  if (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -O "$target" "$corpus" -- \
    -seed=1 -runs="$runs" -max_len=4096 "$@") >"$log" 2>&1; then
    echo "fuzz $target: $(grep -E '^Done [0-9]+ runs' "$log" | tail -n 1)"
    rm -rf "$corpus" "$log"
  else
    tail -n 60 "$log"
    echo "fuzz $target: FAILED (libFuzzer's report above; the full log: $log)"
    rm -rf "$corpus"
    return 1
  fi
}
fuzz ticket 100000
fuzz envelope 200000
fuzz sync_messages 100000
# Each run signs up to a hundred certificates: fewer, shorter runs. (Run counts are sized to keep
# the whole script near 40 minutes on a cold 2-core CI machine; the long runs are in the README.)
fuzz certs 10000 -max_len=300
fuzz markdown 50000
fuzz hold 100000
fuzz blob 100000
# yrs asks for huge buffers for counts inside an update (fallible try_reserve; in production the
# allocation fails and the update is refused): let the sanitizer's allocator fail the same way
# instead of aborting. Infallible allocations still abort, and resident memory is still capped.
export ASAN_OPTIONS=allocator_may_return_null=1
fuzz doc_update 50000 -malloc_limit_mb=1000000 -rss_limit_mb=1024
unset ASAN_OPTIONS

echo "all checks passed [$((SECONDS / 60))m$((SECONDS % 60))s]"
