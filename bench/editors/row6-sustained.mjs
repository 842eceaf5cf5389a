// Row 6: 10 clients spread over 5 nodes, each typing 10 edits/s; every client records when it
// sees every other client's edit. Latency percentiles, and CPU per edit against the server's.
import * as Y from 'yjs'
import { central, client, closeClients, cpuSeconds, peerdoc, percentile, row, sleep, waitFor, withSystem } from './harness.mjs'

async function sustained (system, secs) {
  const n = 10
  const cs = []
  for (let i = 0; i < n; i++) cs.push(await client(system, i))
  // An edit is known by the Yjs clock of its first character, not by its text: a later edit
  // typed inside it splits its text, and when both reach a client in one update (merged under
  // load, or by an anti-entropy pull) the text never shows whole. A client has an edit once its
  // state for the author has passed that clock.
  const sent = new Map() // author's Yjs client id -> [[clock, send time], ...], clocks rising
  // Latencies seen by clients on the author's own node, and on another node.
  const nodes = system.nodes?.length ?? 1
  const indexOf = new Map(cs.map((c, i) => [c.doc.clientID, i]))
  const sameNode = []; const otherNode = []
  cs.forEach((c, me) => {
    c.text.observe((event) => {
      if (event.transaction.local) return
      const now = performance.now()
      for (const [author, after] of event.transaction.afterState) {
        const theirs = sent.get(author)
        if (!theirs) continue
        const before = event.transaction.beforeState.get(author) ?? 0
        const samples = indexOf.get(author) % nodes === me % nodes ? sameNode : otherNode
        let lo = 0; let hi = theirs.length // first edit at or after `before`
        while (lo < hi) { const mid = (lo + hi) >> 1; if (theirs[mid][0] < before) lo = mid + 1; else hi = mid }
        for (let i = lo; i < theirs.length && theirs[i][0] < after; i++) samples.push(now - theirs[i][1])
      }
    })
  })
  const cpu0 = system.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0)
  let edits = 0
  // Client `me` types at 100 ms intervals starting `me` × 10 ms in: ten typists a second apart
  // in phase, not ten keystrokes landing together every 100 ms.
  const timers = []
  const phases = cs.map((c, me) => setTimeout(() => {
    let seq = 0
    timers.push(setInterval(() => {
      const token = `[${me}s${seq++}]`
      if (!sent.has(c.doc.clientID)) sent.set(c.doc.clientID, [])
      sent.get(c.doc.clientID).push([Y.getState(c.doc.store, c.doc.clientID), performance.now()])
      c.text.insert(Math.floor(Math.random() * (c.text.length + 1)), token)
      edits++
    }, 100))
  }, me * 10))
  await sleep(secs * 1000)
  phases.forEach(clearTimeout)
  timers.forEach(clearInterval)
  const expected = edits * (n - 1)
  const seen = () => sameNode.length + otherNode.length
  try {
    await waitFor('every client has every edit', () => seen() >= expected, 60000)
  } catch (e) {
    // Say whether the documents are missing edits (a sync failure) or only the samples are.
    const lacking = cs.map((c, i) => {
      let missing = 0
      for (const [author, theirs] of sent) missing += theirs.filter(([clock]) => Y.getState(c.doc.store, author) <= clock).length
      return `client ${i} lacks ${missing}`
    })
    throw new Error(`${e.message} on ${system.name}: ${seen()} of ${expected} seen; of ${edits} edits, ${lacking.join(', ')}`)
  }
  const cpu = system.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - cpu0
  closeClients()
  return { samples: [...sameNode, ...otherNode], sameNode, otherNode, cpuPerEdit: cpu / edits, edits }
}

export async function run ({ bin, size }) {
  const secs = size.sustainSecs
  const ref = await withSystem(central, (s) => sustained(s, secs))
  const ours = await withSystem(() => peerdoc(bin, 5), (s) => sustained(s, secs))
  const rows = []
  for (const [p, target] of [[50, 2.0], [99, 1.5]]) {
    rows.push(row(`6 p${p}`, `10 clients × 10 edits/s for ${secs} s over 5 nodes, p${p} latency`,
      'ms', percentile(ours.samples, p), percentile(ref.samples, p), 'central server, same load', target))
  }
  rows.push(row('6 cpu', 'CPU per edit, all 5 nodes together', 'ms', ours.cpuPerEdit * 1e3, ref.cpuPerEdit * 1e3,
    'central server process', 1.0))
  rows.push(row('6 cpu/node', 'CPU per edit, per node', 'ms', ours.cpuPerEdit * 1e3 / 5, ref.cpuPerEdit * 1e3,
    'central server process', 1.5))
  const notes = [`Row 6, split by where the watching client is: on the author's own node p50 ${percentile(ours.sameNode, 50).toFixed(3)} ms, ` +
    `p99 ${percentile(ours.sameNode, 99).toFixed(3)} ms (${ours.sameNode.length} samples); on another node p50 ` +
    `${percentile(ours.otherNode, 50).toFixed(3)} ms, p99 ${percentile(ours.otherNode, 99).toFixed(3)} ms ` +
    `(${ours.otherNode.length}); the central server p50 ${percentile(ref.samples, 50).toFixed(3)} ms, p99 ${percentile(ref.samples, 99).toFixed(3)} ms.`]
  return { rows, notes }
}
