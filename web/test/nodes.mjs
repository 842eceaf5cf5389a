// Runs real `peerdoc serve` daemons on loopback (binary from PEERDOC_BIN, default
// ../target/debug/peerdoc) in temporary data dirs, and talks to their HTTP API. The web tests
// and the benchmark harness (bench/editors) both start their daemons here.
import { spawn } from 'node:child_process'
import { mkdtempSync, existsSync, readFileSync, rmSync, appendFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'

const BIN = process.env.PEERDOC_BIN || resolve(import.meta.dirname, '../../target/debug/peerdoc')

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

export async function waitFor (what, check, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs
  let last
  while (Date.now() < deadline) {
    try {
      last = await check()
      if (last) return last
    } catch (e) { last = e }
    await sleep(50)
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`)
}

/**
 * Starts a daemon; with `token`, its HTTP API's access token is that one, else the daemon's own
 * (generated at start and read from its data dir's api.token, as the CLI does). `syncInterval`:
 * seconds between anti-entropy rounds (1 by default, for quick tests; `null`: the node's
 * default). `bin`: the peerdoc binary; `env`: more environment (RUST_LOG, say). `data` and
 * `httpPort`: start again where a node stopped with `stop({ keepData: true })` ran.
 */
export async function startNode ({ token, syncInterval = 1, bin = BIN, env = {}, data, httpPort = 0 } = {}) {
  data = data || mkdtempSync(join(tmpdir(), 'peerdoc-js-'))
  const interval = syncInterval === null ? [] : ['--sync-interval', String(syncInterval)]
  const proc = spawn(bin, ['--data', data, 'serve', '--http', `127.0.0.1:${httpPort}`, '--no-mdns',
    '--no-upnp', '--listen', '/ip4/127.0.0.1/tcp/0', ...interval], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, ...(token ? { PEERDOC_HTTP_TOKEN: token } : {}), ...env }
  })
  let stderr = ''
  // PEERDOC_TEST_LOGS=DIR keeps each daemon's log (with RUST_LOG=peerdoc=debug, say) in DIR.
  const logs = process.env.PEERDOC_TEST_LOGS
  proc.stderr.on('data', (d) => {
    stderr += d
    if (logs) appendFileSync(join(logs, `peerdoc-${proc.pid}.log`), d)
  })
  const addrFile = join(data, 'api.addr')
  await waitFor(`daemon in ${data}`, () => proc.exitCode !== null || existsSync(addrFile))
  if (proc.exitCode !== null) throw new Error(`peerdoc serve exited: ${stderr}`)
  const addr = readFileSync(addrFile, 'utf8').trim()
  // Written before api.addr.
  token = token || readFileSync(join(data, 'api.token'), 'utf8').trim()
  return {
    addr,
    token,
    data,
    pid: proc.pid,
    httpPort: Number(addr.split(':').pop()),
    http: `http://${addr}`,
    /** What the daemon has logged so far. */
    log: () => stderr,
    // The URL `serve` prints: a browser that opens it keeps a cookie for the token.
    editor: `http://${addr}/?token=${token}`,
    ws: `ws://${addr}/ws`,
    async api (method, path, body) {
      const raw = typeof body === 'string' // text bodies go as they are (PUT …/text)
      const headers = body === undefined ? {} : { 'Content-Type': raw ? 'text/plain' : 'application/json' }
      headers.Authorization = `Bearer ${token}`
      const res = await fetch(`http://${addr}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : raw ? body : JSON.stringify(body)
      })
      const text = await res.text()
      if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${text}`)
      try { return JSON.parse(text) } catch { return text }
    },
    /** The value of the OpenMetrics sample named exactly `series`, or 0. */
    async metric (series) {
      const text = await this.api('GET', '/metrics')
      const line = text.split('\n').find((l) => l.startsWith(series + ' '))
      return line ? Number(line.slice(series.length + 1)) : 0
    },
    /** Stops the daemon; its data dir goes too unless `keepData`. Stopping twice does nothing. */
    async stop ({ keepData = false } = {}) {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM')
        await new Promise((resolve) => proc.once('exit', resolve))
      }
      if (!keepData) rmSync(data, { recursive: true, force: true })
    }
  }
}

/** A shares a new document; B joins it. Returns the doc id. */
export async function shareDoc (a, b, name = 'shared') {
  const doc = await a.api('POST', '/api/docs', { name, kind: 'plain' })
  const { ticket } = await a.api('POST', `/api/docs/${doc.id}/ticket`)
  await b.api('POST', '/api/join', { ticket })
  return doc.id
}
