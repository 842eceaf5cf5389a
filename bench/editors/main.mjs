// The editor rows of peerdoc's benchmark harness (rows 5–8, 12 and 13 of BENCHMARKS.md): stock
// npm `yjs` + `y-websocket` clients against real `peerdoc serve` daemons on loopback and, in
// the same run, against the stock central server (`@y/websocket-server`). Every row is a ratio
// against the central server (or, for row 8, the CRDT payload) measured in this run; each row
// is its own file here. Writes the same JSON rows as `peerdoc-bench run --json`.
//
// Usage: node bench/editors/main.mjs --bin target/release/peerdoc --trace TRACE.json.gz
//          [--json OUT] [--notes OUT.md] [--smoke] [--only 5,6]
// --notes writes what explains the rows (row 5's latency broken into stages, the 10-node run
// with the bystanders niced) as Markdown; it is also printed on stderr.
import { writeFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { log } from './harness.mjs'

const { values: args } = parseArgs({
  options: {
    bin: { type: 'string' },
    trace: { type: 'string' },
    json: { type: 'string' },
    notes: { type: 'string' },
    smoke: { type: 'boolean', default: false },
    only: { type: 'string' } // e.g. "5,6": run only these rows (profiling)
  }
})
if (!args.bin || !args.trace) {
  console.error('usage: node bench/editors/main.mjs --bin PATH/TO/peerdoc --trace TRACE.json[.gz] [--json OUT] [--notes OUT.md] [--smoke] [--only 5,6]')
  process.exit(2)
}
const only = args.only ? new Set(args.only.split(',')) : null
// Each y-websocket provider adds a process 'exit' listener; row 12 has 101 clients.
process.setMaxListeners(256)

// Full run and smoke run sizes.
const size = args.smoke
  ? { latencyEdits: 30, bigCluster: 3, sustainSecs: 2, traceEdits: 500, typed: 30, observers: { observers: 5, edits: 10 }, freshMiB: 1 }
  : { latencyEdits: 500, bigCluster: 10, sustainSecs: 60, traceEdits: 50000, typed: 300, observers: { observers: 100, edits: 100 }, freshMiB: 20 }

const ROWS = [
  ['5', 'editor-to-editor latency', './row5-latency.mjs'],
  ['6', 'sustained typing', './row6-sustained.mjs'],
  ['7', 'a trace typed as fast as a client can', './row7-trace.mjs'],
  ['8', 'wire bytes per payload byte', './row8-wire.mjs'],
  ['12', '1 writer, 100 observers on one node', './row12-observers.mjs'],
  ['13', 'a large document to a fresh editor', './row13-fresh-editor.mjs']
]

const rows = []
const notes = []
const context = { bin: resolve(args.bin), trace: args.trace, size }
for (const [id, what, file] of ROWS) {
  if (only && !only.has(id)) continue
  log(`row ${id}: ${what}`)
  const result = await (await import(file)).run(context)
  rows.push(...result.rows)
  notes.push(...result.notes)
}

if (args.json) writeFileSync(args.json, JSON.stringify(rows, null, 2))
if (args.notes) writeFileSync(args.notes, notes.map((n) => `${n}\n`).join('\n'))
if (args.smoke) {
  // Tiny sizes: the figures say nothing, so nothing is judged (the test command's output).
  log(`smoke run: ${rows.length} editor rows ran (sizes too small to compare: not judged)`)
} else {
  for (const note of notes) log(`\n${note}\n`)
  for (const r of rows) log(`${r.row}: ${r.peerdoc.toFixed(3)} vs ${r.reference.toFixed(3)} ${r.unit} (${r.ratio.toFixed(2)}×) ${r.met ? 'met' : 'MISSED'}`)
}
