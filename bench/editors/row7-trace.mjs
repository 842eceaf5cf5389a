// Row 7: one client types the first edits of a sequential trace as fast as it can; the time
// until the client on the other node has all of it.
import { readFileSync } from 'node:fs'
import { gunzipSync } from 'node:zlib'
import * as Y from 'yjs'
import { central, client, closeClients, peerdoc, row, withSystem } from './harness.mjs'

export function loadTrace (path, limit) {
  let raw = readFileSync(path)
  if (raw[0] === 0x1f && raw[1] === 0x8b) raw = gunzipSync(raw)
  const trace = JSON.parse(raw)
  if (trace.kind === 'concurrent') throw new Error(`${path} is a concurrent trace; use a sequential one`)
  const edits = trace.txns.flatMap((t) => t.patches).slice(0, limit)
  // Trace positions count code points, Yjs counts UTF-16 units: equal without astral characters.
  if (edits.some(([, , ins]) => [...ins].some((ch) => ch.length === 2))) {
    throw new Error(`${path}: characters outside the BMP; the editor rows need a BMP-only trace`)
  }
  return edits
}

async function traceTyping (system, edits) {
  const a = await client(system, 0)
  const b = await client(system, (system.nodes?.length ?? 1) - 1)
  const final = new Y.Doc()
  const finalText = final.getText('content')
  for (const [pos, del, ins] of edits) {
    if (del > 0) finalText.delete(pos, del)
    if (ins) finalText.insert(pos, ins)
  }
  const expected = finalText.toString()
  const done = new Promise((resolve) => {
    const check = () => { if (b.text.length === expected.length && b.text.toString() === expected) { b.doc.off('update', check); resolve() } }
    b.doc.on('update', check)
  })
  const start = performance.now()
  for (let i = 0; i < edits.length; i++) {
    const [pos, del, ins] = edits[i]
    a.doc.transact(() => {
      if (del > 0) a.text.delete(pos, del)
      if (ins) a.text.insert(pos, ins)
    })
    if (i % 1000 === 999) await new Promise(setImmediate) // let the sockets move
  }
  await done
  const ms = performance.now() - start
  closeClients()
  return ms
}

export async function run ({ bin, size, trace }) {
  const edits = loadTrace(trace, size.traceEdits)
  const name = trace.split('/').pop().replace(/\.json(\.gz)?$/, '')
  const ref = await withSystem(central, (s) => traceTyping(s, edits))
  const ours = await withSystem(() => peerdoc(bin, 2), (s) => traceTyping(s, edits))
  return {
    rows: [row('7', `first ${edits.length} edits of ${name} typed on A until B's client has them`,
      'ms', ours, ref, 'central server', 1.0)],
    notes: []
  }
}
