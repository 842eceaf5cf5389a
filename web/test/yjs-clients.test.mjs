// Unmodified npm yjs + y-websocket clients against two peerdoc nodes.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import WebSocket from 'ws'
import { sleep, startNode, shareDoc, waitFor } from './nodes.mjs'

const nodes = []
const clients = []
after(async () => {
  // Destroying the Y.Doc also stops its awareness timer, which would keep the process alive.
  for (const c of clients) { c.provider.destroy(); c.doc.destroy() }
  for (const n of nodes) await n.stop()
})

function client (node, docId) {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(node.ws, docId, doc,
    { WebSocketPolyfill: WebSocket, disableBc: true, params: { token: node.token } })
  const c = { doc, provider, text: doc.getText('content') }
  clients.push(c)
  return c
}

const synced = (c) => waitFor('client sync', () => c.provider.synced)

test('clients on two nodes co-edit, late joiners catch up, presence crosses nodes', async () => {
  const a = await startNode()
  const b = await startNode()
  nodes.push(a, b)
  const id = await shareDoc(a, b)
  await a.api('PUT', `/api/docs/${id}/text`, 'written by the CLI\n')

  const c1 = client(a, id)
  const c2 = client(b, id)
  await synced(c1)
  await synced(c2)
  await waitFor('initial text on both clients', () =>
    c1.text.toString() === 'written by the CLI\n' && c2.text.toString() === 'written by the CLI\n')

  // Concurrent edits from both clients.
  for (let i = 0; i < 20; i++) {
    c1.text.insert(0, `a${i} `)
    c2.text.insert(c2.text.length, `b${i} `)
    if (i % 5 === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  }
  const all = (t) => [...Array(20).keys()].every((i) => t.includes(`a${i} `) && t.includes(`b${i} `))
  await waitFor('clients converge', () => c1.text.toString() === c2.text.toString() && all(c1.text.toString()))
  const text = c1.text.toString()
  await waitFor('peerdoc cat on both nodes equals the clients', async () =>
    (await a.api('GET', `/api/docs/${id}/text`)) === text && (await b.api('GET', `/api/docs/${id}/text`)) === text)

  // Other Yjs types sync too.
  c1.doc.getMap('meta').set('title', 'Shared')
  await waitFor('map entry on the other node', () => c2.doc.getMap('meta').get('title') === 'Shared')

  // A client that connects later gets the full state.
  const late = client(b, id)
  await synced(late)
  await waitFor('late client has everything', () =>
    late.text.toString() === text && late.doc.getMap('meta').get('title') === 'Shared')

  // Presence: c1's user shows on c2 across the two nodes, and goes away when c1 leaves.
  c1.provider.awareness.setLocalStateField('user', { name: 'ada', color: '#f00' })
  const adaOn = (c) => [...c.provider.awareness.getStates().values()].some((s) => s.user && s.user.name === 'ada')
  await waitFor('ada visible on node B', () => adaOn(c2))
  c1.provider.destroy()
  await waitFor('ada gone from node B', () => !adaOn(c2), 20000)
})

test('export and import over HTTP', async () => {
  const a = await startNode()
  nodes.push(a)
  const doc = await a.api('POST', '/api/docs', { name: 'md', kind: 'plain' })
  await a.api('PUT', `/api/docs/${doc.id}/text`, '# Title\n\n*text*\n')
  const auth = { headers: { Authorization: `Bearer ${a.token}` } }
  const res = await fetch(`${a.http}/api/docs/${doc.id}/text?format=markdown`, auth)
  assert.equal(res.headers.get('content-type'), 'text/markdown; charset=utf-8')
  assert.equal(await res.text(), '# Title\n\n*text*\n')
  await a.api('PUT', `/api/docs/md/text?append=true`, 'more\n')
  assert.equal(await a.api('GET', '/api/docs/md/text'), '# Title\n\n*text*\nmore\n')
  const bad = await fetch(`${a.http}/api/docs/nope/text`, auth)
  assert.equal(bad.status, 404)
  assert.match((await bad.json()).error, /no document matches/)
})

/** Types into `c` one character every millisecond or so until `typing.done`; returns the count. */
async function typeUntilDone (c, tag, typing) {
  let n = 0
  while (!typing.done) {
    c.text.insert(c.text.length, tag)
    n++
    await sleep(1)
  }
  return n
}

// A stalled node used to break gossip for good: its peer sent it IHAVE lists over gossipsub's
// 16 KiB limit, the stream was closed five times, and gossip on the connection stayed dead.
// Anti-entropy runs only every 10 minutes here, so only gossip (and the pulls a reconnect
// starts) can carry what is checked after each pause.
test('a node paused under a burst: edits, presence and new documents cross again', async () => {
  const a = await startNode({ syncInterval: 600 })
  const b = await startNode({ syncInterval: 600 })
  nodes.push(a, b)
  const id = await shareDoc(a, b, 'burst')
  const c1 = client(a, id)
  const c2 = client(b, id)
  await synced(c1)
  await synced(c2)
  const present = (c, name) => [...c.provider.awareness.getStates().values()]
    .some((s) => s.user && s.user.name === name)

  // Pauses B for `pauseMs` while a client on A types, then checks that everything crosses.
  const burst = async (round, pauseMs) => {
    const typing = { done: false }
    const typed = typeUntilDone(c1, 'x', typing)
    await sleep(300)
    process.kill(b.pid, 'SIGSTOP')
    try { await sleep(pauseMs) } finally { process.kill(b.pid, 'SIGCONT') }
    await sleep(300)
    typing.done = true
    const n = await typed
    // Live edits both ways (what gossip lost while B was paused comes with them: an edit
    // whose predecessors are missing makes the receiver pull), and presence both ways.
    c1.text.insert(0, `a${round} `)
    await waitFor(`round ${round}: a live edit crosses A → B`, () => c2.text.toString().includes(`a${round} `))
    c2.text.insert(0, `b${round} `)
    await waitFor(`round ${round}: a live edit crosses B → A, and B has the whole burst (${n} edits)`,
      () => c1.text.toString().includes(`b${round} `) && c2.text.toString() === c1.text.toString())
    c1.provider.awareness.setLocalStateField('user', { name: `ada${round}` })
    c2.provider.awareness.setLocalStateField('user', { name: `bob${round}` })
    await waitFor(`round ${round}: presence crosses both ways`,
      () => present(c2, `ada${round}`) && present(c1, `bob${round}`))
    // A document shared now syncs both ways too.
    const later = await shareDoc(a, b, `later${round}`)
    const l1 = client(a, later)
    const l2 = client(b, later)
    await synced(l1)
    await synced(l2)
    l1.text.insert(0, 'from A ')
    l2.text.insert(0, 'from B ')
    await waitFor(`round ${round}: a document shared afterwards syncs`, () =>
      ['from A', 'from B'].every((t) => l1.text.toString().includes(t) && l2.text.toString().includes(t)))
  }

  // As reported: a 3 s pause.
  await burst(1, 3000)
  // A pause long enough that A's send queue to B stays full: A closes the stalled connection
  // (counted), the nodes redial, and gossip starts over.
  const stalled = 'peerdoc_gossip_stalled_total'
  const before = await a.metric(stalled)
  await burst(2, 7000)
  assert.ok(await a.metric(stalled) > before, 'A saw the stall and reconnected')
})
