// Row 8: a client types at 10 edits/s on node A; what node A sends node B for it, per byte of
// CRDT update: the gossip messages (topic name, author key, signature, envelope) plus their
// framing. The connection's whole TCP payload is measured too, but it also carries AutoNAT
// probes and anti-entropy that have nothing to do with typing.
import { execFileSync } from 'node:child_process'
import { client, closeClients, log, peerdoc, row, sleep, waitFor, withSystem } from './harness.mjs'

/** Bytes the daemon has sent on its TCP connections other than HTTP/WebSocket ones (its libp2p
 *  connections), from the kernel's per-socket counters (`ss -ti`). */
function libp2pBytesSent (node) {
  const out = execFileSync('ss', ['-tinpH', 'state', 'established'], { encoding: 'utf8' })
  let total = 0
  const lines = out.split('\n')
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]
    if (!line.includes(`pid=${node.pid},`)) continue
    const local = line.trim().split(/\s+/)[2] || ''
    if (local.endsWith(`:${node.httpPort}`)) continue
    const info = lines[i + 1] || ''
    const m = info.match(/bytes_sent:(\d+)/)
    if (m) total += Number(m[1])
  }
  return total
}

/** The sum of an OpenMetrics counter over all its label sets. */
function counterSum (text, name) {
  let total = 0
  for (const line of text.split('\n')) {
    if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) total += Number(line.trim().split(/\s+/).pop())
  }
  return total
}

/** Gossip messages the node sent and their bytes (gossipsub's own counters, per peer sent to). */
async function gossipSent (node) {
  const text = await node.api('GET', '/metrics')
  return {
    bytes: counterSum(text, 'gossipsub_topic_msg_sent_bytes_total'),
    messages: counterSum(text, 'gossipsub_topic_msg_sent_counts_total')
  }
}

/** Framing of one gossip message on the wire beyond its protobuf: the RPC wrapper and its
 *  length prefix (about 4 bytes), a yamux frame header (12), and a Noise frame's length and
 *  tag (2 + 16). At 10 keystrokes a second every message is its own frame. */
const FRAMING = 34

async function wireBytes (system, edits) {
  const a = await client(system, 0)
  const b = await client(system, 1)
  let payload = 0
  a.doc.on('update', (update, origin) => { if (origin !== a.provider) payload += update.length })
  // A new connection brings AutoNAT probes (30–100 KB of dial data each, for every newly
  // observed address) for a while: wait until the link is quiet (under 1 KB in 3 s), then
  // measure what it carries without edits over as long as the typing takes.
  for (let quiet = 0; quiet < 20; quiet++) {
    const start = libp2pBytesSent(system.nodes[0])
    await sleep(3000)
    if (libp2pBytesSent(system.nodes[0]) - start < 1000) break
  }
  const idleStart = libp2pBytesSent(system.nodes[0])
  await sleep(edits * 100)
  const idle = libp2pBytesSent(system.nodes[0]) - idleStart
  const before = libp2pBytesSent(system.nodes[0])
  const gossipBefore = await gossipSent(system.nodes[0])
  for (let i = 0; i < edits; i++) {
    a.text.insert(Math.floor(Math.random() * (a.text.length + 1)), 'x')
    await sleep(100)
  }
  await waitFor('B has every edit', () => b.text.length === a.text.length)
  const tcp = libp2pBytesSent(system.nodes[0]) - before
  const gossipAfter = await gossipSent(system.nodes[0])
  const messages = gossipAfter.messages - gossipBefore.messages
  const wire = gossipAfter.bytes - gossipBefore.bytes + messages * FRAMING
  closeClients()
  return { wire, payload, idle, tcp, messages }
}

export async function run ({ bin, size }) {
  const ours = await withSystem(() => peerdoc(bin, 2), (s) => wireBytes(s, size.typed))
  log(`row 8: ${ours.messages} gossip messages for ${size.typed} keystrokes; the connection's whole TCP payload meanwhile ${ours.tcp} bytes, and ${ours.idle} bytes in as long without edits (AutoNAT, anti-entropy)`)
  return {
    rows: [row('8', `wire bytes (gossip messages with their framing, A to B) per CRDT payload byte, ${size.typed} keystrokes at 10/s`,
      'bytes', ours.wire, ours.payload, 'CRDT update bytes', 3.0)],
    notes: []
  }
}
