// Row 12: one node does the central server's job, as @y/hub's published Y4.1/Y4.2 comparisons
// set it up: one writer and 100 observers on the same node (or the server), without and with
// presence (every client renews an awareness state once a second). Every edit must reach every
// observer; the p95 latency over all (edit, observer) pairs is the row.
import { central, client, closeClients, peerdoc, percentile, row, sleep, waitFor, withSystem } from './harness.mjs'

async function observed (system, observers, edits, presence) {
  const writer = await client(system, 0)
  const watchers = []
  for (let i = 0; i < observers; i++) watchers.push(await client(system, 0))
  const everyone = [writer, ...watchers]
  // Presence: every client renews its state at 1 Hz, the clients spread over the second.
  const timers = []
  if (presence) {
    everyone.forEach((c, i) => timers.push(setTimeout(() => {
      let n = 0
      c.provider.awareness.setLocalStateField('cursor', { n: n++ })
      timers.push(setInterval(() => c.provider.awareness.setLocalStateField('cursor', { n: n++ }), 1000))
    }, (i * 1000) / everyone.length)))
    await sleep(2000) // every client's presence is out before the first edit
  }
  const typedAt = [] // edit k made the text k + 1 long
  const samples = []
  for (const c of watchers) {
    let seen = c.text.length
    c.doc.on('update', () => {
      const now = performance.now()
      for (; seen < c.text.length; seen++) if (typedAt[seen] !== undefined) samples.push(now - typedAt[seen])
    })
  }
  for (let k = 0; k < edits; k++) {
    typedAt[k] = performance.now()
    writer.text.insert(writer.text.length, 'x')
    await sleep(100) // 10 keystrokes a second
  }
  try {
    await waitFor('every observer has every edit', () => samples.length >= edits * observers, 60000)
  } catch (e) {
    const short = watchers.filter((c) => c.text.toString() !== writer.text.toString()).length
    throw new Error(`${e.message} on ${system.name}: ${samples.length} of ${edits * observers} seen; ${short} observers lack edits`)
  }
  for (const t of timers) { clearTimeout(t); clearInterval(t) }
  closeClients()
  return samples
}

export async function run ({ bin, size }) {
  const { observers, edits } = size.observers
  const rows = []
  for (const presence of [false, true]) {
    const ref = await withSystem(central, (s) => observed(s, observers, edits, presence))
    const ours = await withSystem(() => peerdoc(bin, 1), (s) => observed(s, observers, edits, presence))
    const what = presence ? ', every client renewing presence at 1 Hz' : ''
    rows.push(row(`12 p95${presence ? ' presence' : ''}`,
      `one node as the server: 1 writer → ${observers} observers, ${edits} edits at 10/s${what}, p95 until an observer has an edit`,
      'ms', percentile(ours, 95), percentile(ref, 95), 'central server, same clients', 1.0))
  }
  return { rows, notes: [] }
}
