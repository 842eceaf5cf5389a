#!/usr/bin/env bash
# peerdoc's benchmark harness: every row a ratio against a reference measured in the same run.
# In-process rows (document layer, store, join, memory) come from the peerdoc-bench binary; the
# editor rows from bench/editors/ (stock yjs + y-websocket clients against peerdoc daemons and
# the stock central server @y/websocket-server, versions pinned in bench/editors/package-lock.json).
#
# Usage: bash scripts/bench.sh [--smoke] [TRACE]
#   TRACE    a sequential editing trace, default ../shared/data/editing-traces/automerge-paper.json.gz
#   --smoke  tiny sizes and a debug build: checks that the harness runs (CI), measures nothing;
#            without TRACE it replays a synthetic trace the harness writes (peerdoc-bench synth),
#            so it needs nothing beside the clone
# Writes target/bench/{inproc,editors}.json and prints the Markdown table, then the notes that
# explain the editor rows (target/bench/editors-notes.md; both also in
# target/bench/results.md).
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
if [ "${1:-}" = "--smoke" ]; then smoke=true; shift; fi
out=target/bench
mkdir -p "$out"
if $smoke && [ -z "${1:-}" ]; then
  cargo run --locked --quiet -p peerdoc-bench -- synth --out "$out/synthetic.json"
  trace=$out/synthetic.json
else
  trace=${1:-../shared/data/editing-traces/automerge-paper.json.gz}
fi
if [ ! -f "$trace" ]; then
  echo "no trace at $trace: pass the path of a sequential editing trace (see ../shared/data/editing-traces/README.md)" >&2
  exit 2
fi
rm -f "$out/editors-notes.md"

(cd bench/editors && npm ci --no-audit --no-fund --loglevel=error)
if $smoke; then
  cargo build --locked -p peerdoc -p peerdoc-bench --bins --quiet
  bin=target/debug
  ./$bin/peerdoc-bench run --trace "$trace" --edits 2000 --runs 1 --keystrokes 200 --copies 2 \
    --fanout-nodes 10 --fanout-messages 5 --holder-edits 20 \
    --blob-mb 2 --blob-rate-mb 4 --blob-big-mb 8 \
    --json "$out/inproc.json" >/dev/null
  node bench/editors/main.mjs --bin $bin/peerdoc --trace "$trace" --smoke --json "$out/editors.json" \
    --notes "$out/editors-notes.md"
else
  cargo build --locked --release -p peerdoc -p peerdoc-bench --bins --quiet
  bin=target/release
  ./$bin/peerdoc-bench run --trace "$trace" --json "$out/inproc.json" >/dev/null
  node bench/editors/main.mjs --bin $bin/peerdoc --trace "$trace" --json "$out/editors.json" \
    --notes "$out/editors-notes.md"
fi
./$bin/peerdoc-bench report "$out/inproc.json" "$out/editors.json" | tee "$out/results.md"
# What explains the editor rows (row 5 in stages; 10 nodes with the bystanders niced).
{ echo; cat "$out/editors-notes.md"; } | tee -a "$out/results.md"
