// What every editor row shares: the two systems under test (peerdoc daemons, started by the web
// tests' own helper, and the stock central y-websocket server), stock Yjs clients on them, and
// the statistics and row format of the report.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { resolve } from 'node:path'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { startNode } from '../../web/test/nodes.mjs'

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

/** Polls `check` every `everyMs` until it holds. */
export async function waitFor (what, check, timeoutMs = 60000, everyMs = 5) {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    if (await check()) return
    await sleep(everyMs)
  }
  throw new Error(`timed out waiting for ${what}`)
}

function freePort () {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.on('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address()
      srv.close(() => resolve(port))
    })
  })
}

/** CPU seconds a process has used (user + system), from /proc. */
export function cpuSeconds (pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return (Number(fields[11]) + Number(fields[12])) / 100 // utime, stime in clock ticks (100 Hz)
}

export const percentile = (samples, p) => {
  const s = [...samples].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.round((p / 100) * (s.length - 1)))]
}

// ---- the two systems under test ------------------------------------------------------------

/** `n` peerdoc daemons (binary `bin`) sharing one document; clients connect round-robin to the
 *  nodes. Anti-entropy at the node's default interval, as a user runs it. */
export async function peerdoc (bin, n, env = {}) {
  const nodes = []
  for (let i = 0; i < n; i++) nodes.push(await startNode({ bin, env, syncInterval: null }))
  const doc = await nodes[0].api('POST', '/api/docs', { name: 'bench', kind: 'plain' })
  const { ticket } = await nodes[0].api('POST', `/api/docs/${doc.id}/ticket`)
  for (const node of nodes.slice(1)) await node.api('POST', '/api/join', { ticket })
  return {
    name: `peerdoc, ${n} nodes`,
    nodes,
    doc: doc.id,
    pids: nodes.map((node) => node.pid),
    endpoint: (i) => ({ url: nodes[i % n].ws, room: doc.id, params: { token: nodes[i % n].token } }),
    async stop () { for (const node of nodes) await node.stop() }
  }
}

const SERVER = resolve(import.meta.dirname, 'node_modules/@y/websocket-server/src/server.js')

/** The stock central server, as a new user runs it (no persistence configured). */
export async function central () {
  const port = await freePort()
  const proc = spawn(process.execPath, [SERVER], {
    env: { ...process.env, HOST: '127.0.0.1', PORT: String(port) },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  await new Promise((resolve, reject) => {
    proc.stdout.once('data', resolve)
    proc.once('exit', () => reject(new Error('the central y-websocket server exited')))
  })
  return {
    name: 'central y-websocket server',
    pids: [proc.pid],
    endpoint: () => ({ url: `ws://127.0.0.1:${port}`, room: 'bench' }),
    async stop () {
      proc.kill('SIGTERM')
      await new Promise((resolve) => proc.exitCode !== null ? resolve() : proc.once('exit', resolve))
    }
  }
}

// ---- clients -------------------------------------------------------------------------------

const clients = []
/** A stock y-websocket client on the system's endpoint `i`, synced. */
export async function client (system, i) {
  const { url, room, params = {} } = system.endpoint(i)
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(url, room, doc, { WebSocketPolyfill: WebSocket, disableBc: true, params })
  const c = { doc, provider, text: doc.getText('content') }
  clients.push(c)
  await waitFor('client sync', () => provider.synced, 120000)
  return c
}
export function closeClients () {
  for (const c of clients.splice(0)) { c.provider.destroy(); c.doc.destroy() }
}

/** Resolves when `c`'s text reaches `length`. */
export function lengthReached (c, length) {
  if (c.text.length >= length) return Promise.resolve()
  return new Promise((resolve) => {
    const check = () => {
      if (c.text.length >= length) { c.doc.off('update', check); resolve() }
    }
    c.doc.on('update', check)
  })
}

/** Runs `body` on a started system, and stops both the clients and the system after. */
export async function withSystem (start, body) {
  const system = await start()
  try { return await body(system) } finally { closeClients(); await system.stop() }
}

/** A row of the report: ours against the reference, and whether the target ratio is met. */
export function row (id, measurement, unit, ours, reference, referenceName, maxRatio, maxValue) {
  const ratio = reference > 0 ? ours / reference : NaN
  let target = `≤ ${maxRatio}×`
  let met = ratio <= maxRatio
  if (maxValue !== undefined) { target += ` and < ${maxValue} ${unit}`; met = met && ours < maxValue }
  return { row: id, measurement, unit, peerdoc: ours, reference, reference_name: referenceName, ratio, target, met }
}

export const log = (...a) => console.error(...a)
