// Row 13: a large document reaches a fresh editor. A client on node A writes it (in 1 MiB
// transactions); once node B holds all of it, a new client connects to B, and the row is the
// time from its connecting until it has the whole text. Against the same fresh client on the
// central server that holds the same document.
import { central, client, closeClients, peerdoc, row, waitFor, withSystem } from './harness.mjs'

const MiB = 1 << 20

async function write (system, mib) {
  const a = await client(system, 0)
  const chunk = 'lorem ipsum dolor sit amet, '.repeat(Math.ceil(MiB / 28)).slice(0, MiB)
  for (let i = 0; i < mib; i++) a.text.insert(a.text.length, chunk)
  return a
}

/** Connects a fresh client to endpoint `i`: milliseconds until it has `length` characters. */
async function fresh (system, i, length) {
  const start = performance.now()
  const c = await client(system, i)
  await waitFor('the fresh editor has the whole text', () => c.text.length === length, 120000)
  return performance.now() - start
}

async function onCentral (mib) {
  return withSystem(central, async (s) => {
    const a = await write(s, mib)
    // The server has it once a second client sees all of it.
    await fresh(s, 0, a.text.length)
    return fresh(s, 0, a.text.length)
  })
}

async function onPeerdoc (bin, mib) {
  return withSystem(() => peerdoc(bin, 2), async (s) => {
    const a = await write(s, mib)
    // Node B's text, whole (node A may still be reading the writer's updates, so comparing
    // the two nodes' digests is not enough).
    const nodeB = s.nodes[1]
    // Each look fetches the whole text: not every 5 ms while B is still receiving it.
    await waitFor('node B holds the whole document', async () =>
      (await nodeB.api('GET', `/api/docs/${s.doc}/text`)).length === a.text.length, 120000, 250)
    return fresh(s, 1, a.text.length)
  })
}

export async function run ({ bin, size }) {
  const mib = size.freshMiB
  const ref = await onCentral(mib)
  const ours = await onPeerdoc(bin, mib)
  closeClients()
  return {
    rows: [row('13', `a ${mib} MiB document reaches a fresh editor on another node (connect to whole text)`,
      'ms', ours, ref, 'a fresh editor on the central server', 1.5)],
    notes: []
  }
}
