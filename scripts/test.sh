#!/usr/bin/env bash
# Every check peerdoc has, in the order CI runs them. Installs what the checks need when it is
# missing. Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== formatting"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --all-targets --locked -- -D warnings

echo "== unit, property and integration tests"
cargo test --locked

echo "== fuzz targets still build"
cargo check --locked --manifest-path fuzz/Cargo.toml --bins --quiet

echo "all checks passed"
