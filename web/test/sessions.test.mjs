// What stock y-websocket clients expect of a session, with the packages themselves: 3.x
// (`y-websocket`, Yjs 13) and 4.x (`@y/websocket`, Yjs 14 as `@y/y`).
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import * as Y14 from '@y/y'
import { WebsocketProvider } from 'y-websocket'
import { WebsocketProvider as WebsocketProvider4 } from '@y/websocket'
import * as decoding from 'lib0/decoding'
import WebSocket from 'ws'
import { sleep, startNode, waitFor } from './nodes.mjs'

const nodes = []
const providers = []
after(async () => {
  for (const { provider, doc } of providers) { provider.destroy(); doc.destroy() }
  for (const n of nodes) await n.stop()
})

/** A stock client of `version` 3 or 4 on `node`'s document `id`, with its events counted. */
function client (version, node, id) {
  const [Doc, Provider] = version === 3 ? [Y.Doc, WebsocketProvider] : [Y14.Doc, WebsocketProvider4]
  const doc = new Doc()
  const provider = new Provider(node.ws, id, doc,
    { WebSocketPolyfill: WebSocket, disableBc: true, params: { token: node.token } })
  // (The first 'connecting' is emitted by the constructor, before anyone listens.)
  const c = { doc, provider, closes: [], reconnects: 0 }
  provider.on('connection-close', (event) => c.closes.push(event && event.code))
  provider.on('status', ({ status }) => { if (status === 'connecting') c.reconnects++ })
  providers.push(c)
  return c
}

// 3.x clients close a connection that brought no message for 30 s, 4.x for 45 s. The session
// sends a keepalive (an empty awareness update) after 10 s of silence.
test('an editor alone in a quiet document is never disconnected (3.x and 4.x)', async () => {
  const a = await startNode()
  nodes.push(a)
  // Each alone in its own document (the other's presence renewals would be messages too).
  const clients = []
  for (const version of [3, 4]) {
    const { id } = await a.api('POST', '/api/docs', { name: `quiet ${version}`, kind: 'plain' })
    clients.push(client(version, a, id))
  }
  for (const c of clients) await waitFor('client sync', () => c.provider.synced)
  await sleep(70000)
  for (const [i, c] of clients.entries()) {
    const version = i === 0 ? '3.x' : '4.x'
    assert.deepEqual(c.closes, [], `${version}: connection closes over 70 s`)
    assert.equal(c.reconnects, 0, `${version}: reconnects`)
    assert.ok(c.provider.wsconnected, `${version}: still connected`)
    // The witness that messages kept coming: the last one is recent.
    const quiet = Date.now() - c.provider.wsLastMessageReceived
    assert.ok(quiet < 15000, `${version}: last message ${quiet} ms ago`)
  }
})

// 4.x clients (as documented for their sync status: a local update counts as saved once a sync
// step 2 or update from the server contains all of its content ids) show "saved" only if the
// server echoes an editor's own update back. The registry's 4.x release predates the status;
// this applies the documented rule to its provider's messages.
test("a 4.x client's every local update is confirmed by the server's echo", async () => {
  const a = await startNode()
  nodes.push(a)
  const { id } = await a.api('POST', '/api/docs', { name: 'saved', kind: 'plain' })
  const c = client(4, a, id)
  await waitFor('client sync', () => c.provider.synced)
  let unconfirmed = []
  let mostUnconfirmed = 0
  c.doc.on('update', (update, origin) => {
    if (origin === c.provider) return
    unconfirmed.push(Y14.createContentIdsFromUpdate(update))
    mostUnconfirmed = Math.max(mostUnconfirmed, unconfirmed.length)
  })
  const sync = c.provider.messageHandlers[0]
  c.provider.messageHandlers[0] = (encoder, decoder, provider, emitSynced, type) => {
    const start = decoder.pos
    sync(encoder, decoder, provider, emitSynced, type)
    const message = decoding.createDecoder(decoder.arr)
    message.pos = start
    const kind = decoding.readVarUint(message)
    if (kind === 1 || kind === 2) { // sync step 2, update
      const received = Y14.createContentIdsFromUpdate(decoding.readVarUint8Array(message))
      unconfirmed = unconfirmed
        .map((ids) => Y14.excludeContentIds(ids, received))
        .filter((ids) => !ids.inserts.isEmpty() || !ids.deletes.isEmpty())
    }
  }
  const text = c.doc.get('content')
  for (let i = 0; i < 20; i++) {
    text.insert(text.length, `line ${i}\n`)
    if (i % 4 === 3) text.delete(0, 3) // deletes must be confirmed too
    await sleep(5)
  }
  await waitFor('every local update confirmed', () => unconfirmed.length === 0)
  assert.ok(mostUnconfirmed > 0, 'updates were waiting for confirmation')
  assert.equal(await a.api('GET', `/api/docs/${id}/text`), text.toString())
})

// A session that may not edit (a reader's node, a removed one) closes with 4403: 3.x clients
// take 4400-4499 as final and stop reconnecting (they looped on 1008 before).
test('an edit on a read-only node closes the session for good (4403)', async () => {
  const a = await startNode()
  const b = await startNode()
  nodes.push(a, b)
  const doc = await a.api('POST', '/api/docs', { name: 'notice', kind: 'plain' })
  await a.api('PUT', `/api/docs/${doc.id}/text`, 'office closed\n')
  const { ticket } = await a.api('POST', `/api/docs/${doc.id}/ticket`, { read_only: true })
  await b.api('POST', '/api/join', { ticket })
  const c = client(3, b, doc.id)
  await waitFor('client sync', () => c.provider.synced && c.doc.getText('content').toString() === 'office closed\n')
  let final = null
  c.provider.on('closed', (event) => { final = event })
  c.doc.getText('content').insert(0, 'not ')
  await waitFor('the session is closed for good', () => final)
  assert.equal(final.code, 4403)
  assert.match(final.reason, /read-only/)
  assert.equal(c.provider.shouldConnect, false, 'the client gave up reconnecting')
  assert.deepEqual(c.closes, [4403])
  assert.equal(c.reconnects, 0)
  assert.equal(await b.api('GET', `/api/docs/${doc.id}/text`), 'office closed\n')
})
