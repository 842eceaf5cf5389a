// The web editor in headless Chromium: two browsers on two nodes create, share, join, co-edit and
// see each other's cursor. Screenshots go to ../../test-artifacts/.
import { test, after } from 'node:test'
import assert from 'node:assert/strict'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { chromium } from 'playwright-core'
import { startNode, waitFor } from './nodes.mjs'

const ARTIFACTS = resolve(import.meta.dirname, '../../test-artifacts')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const nodes = []
let browser
after(async () => {
  if (browser) await browser.close()
  for (const n of nodes) await n.stop()
})

/** Starts the browser, once (the first test that runs does). */
async function launch () {
  if (browser) return
  mkdirSync(ARTIFACTS, { recursive: true })
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run']
  })
}

async function openPage (node, name) {
  await launch()
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } })
  const page = await context.newPage()
  page.on('pageerror', (e) => console.error(`[${name}] page error: ${e.message}`))
  await page.goto(node.editor)
  // The field shows the node's name once loaded (until then an anonymous placeholder).
  await page.waitForFunction(() => document.getElementById('my-name').placeholder !== '')
  await page.fill('#my-name', name)
  await page.dispatchEvent('#my-name', 'change')
  // The node keeps it: it is the node's name, which it signs for the members.
  await waitFor(`${name} kept by the node`, async () => (await node.api('GET', '/api/name')).name === name)
  return page
}

// The editor: TipTap's for a rich document (what the page creates), CodeMirror's for plain text.
const EDITOR = '.ProseMirror'
const CARET_LABEL = '.collaboration-carets__label'

// The editor's text without the remote-cursor widgets (name labels, word joiners): blocks one
// per line.
const editorText = (page) => page.evaluate(() => {
  const rich = document.querySelector('.ProseMirror')
  const blocks = rich && !document.getElementById('rich').hidden
    ? [...rich.children]
    : [...document.querySelectorAll('.cm-line')]
  return blocks.map((block) => {
    const copy = block.cloneNode(true)
    copy.querySelectorAll('.cm-ySelectionInfo, .collaboration-carets__label').forEach((e) => e.remove())
    return copy.textContent.replace(/\u2060/g, '')
  }).join('\n')
})

// What the node stores, as the editor shows it (Markdown's last newline aside).
const nodeText = async (node, id) => (await node.api('GET', `/api/docs/${id}/text`)).replace(/\n$/, '')

test('two browsers on two nodes co-edit with visible cursors', async () => {
  await launch()
  const a = await startNode()
  const b = await startNode()
  nodes.push(a, b)
  const pageA = await openPage(a, 'Alice')
  const pageB = await openPage(b, 'Bob')

  // A creates and shares.
  await pageA.fill('#new-name', 'Meeting notes')
  await pageA.click('#new-btn')
  await pageA.waitForSelector(EDITOR)
  await waitFor('A connected', async () => (await pageA.textContent('#status-conn')) === 'connected')
  await pageA.click('#share-btn')
  const ticket = await waitFor('the ticket in the share dialog', () => pageA.inputValue('#ticket-text'))
  assert.match(ticket, /^peerdoc1/)
  await pageA.screenshot({ path: `${ARTIFACTS}/browser-a-share.png` })
  await pageA.click('#share-close')

  // B joins with the ticket.
  await pageB.click('#join-btn')
  await pageB.fill('#join-ticket', ticket)
  await pageB.click('#join-submit')
  await pageB.waitForSelector(EDITOR)
  await waitFor('B lists the doc', async () => (await pageB.textContent('#doc-list')).includes('Meeting notes'))
  await waitFor('B connected', async () => (await pageB.textContent('#status-conn')) === 'connected')

  // Both type.
  await pageA.click(EDITOR)
  await pageA.keyboard.type('Hello from Alice. ')
  await pageB.click(EDITOR)
  await pageB.keyboard.press('Control+End')
  await pageB.keyboard.type('Hi from Bob!')
  const both = (t) => t.includes('Hello from Alice.') && t.includes('Hi from Bob!')
  await waitFor('A sees both texts', async () => both(await editorText(pageA)))
  await waitFor('B sees both texts', async () => both(await editorText(pageB)))
  assert.equal(await editorText(pageA), await editorText(pageB))

  // Each sees the other's cursor with their name.
  await waitFor('Bob\'s cursor on A', async () =>
    (await pageA.locator(CARET_LABEL).allInnerTexts()).includes('Bob'))
  await waitFor('Alice\'s cursor on B', async () =>
    (await pageB.locator(CARET_LABEL).allInnerTexts()).includes('Alice'))
  // Names show at all times, not only when the pointer is over a cursor.
  assert.ok(await pageA.locator(CARET_LABEL).first().isVisible())
  // The bar names the people here (presence), not a count of nodes.
  await waitFor('A sees who is here', async () =>
    (await pageA.textContent('#status-peers')) === 'With Bob')
  await waitFor('saved', async () => (await pageA.textContent('#status-sync')) === 'saved')

  // The members list shows names, signed by each node, not peer ids.
  await pageB.click('#share-btn')
  await waitFor('B lists Alice as the owner', async () =>
    (await pageB.textContent('#member-list')).includes('Alice · owner'))
  assert.match(await pageB.textContent('#member-list'), /Bob · writer \(you\)/)
  await pageB.click('#share-close')

  // What the browsers typed is what the node stores.
  const docs = await a.api('GET', '/api/docs')
  await waitFor('node text equals editor text', async () =>
    (await nodeText(a, docs[0].id)) === await editorText(pageA))

  await pageA.screenshot({ path: `${ARTIFACTS}/browser-a.png` })
  await pageB.screenshot({ path: `${ARTIFACTS}/browser-b.png` })
  // A narrow window still works: the document list folds into a menu.
  await pageB.setViewportSize({ width: 380, height: 700 })
  await pageB.screenshot({ path: `${ARTIFACTS}/browser-b-narrow.png` })
  await pageB.click('#menu-btn')
  await pageB.waitForTimeout(400) // the menu slides in
  await pageB.screenshot({ path: `${ARTIFACTS}/browser-b-narrow-menu.png` })
})

test('the editor loads and edits behind an access token', async () => {
  const token = 'sesame-' + Math.random().toString(36).slice(2)
  const node = await startNode({ token })
  nodes.push(node)
  // Without the token, nothing is served.
  const refused = await browser.newContext()
  const denied = await (await refused.newPage()).goto(node.http + '/')
  assert.equal(denied.status(), 403)
  await refused.close()

  // Opened once with ?token=, the page, its assets, the API and the WebSocket all work.
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } })
  const page = await context.newPage()
  const failed = []
  page.on('response', (r) => { if (r.status() >= 400) failed.push(`${r.status()} ${r.url()}`) })
  const opened = await page.goto(`${node.http}/?token=${token}`)
  assert.equal(opened.headers()['x-frame-options'], 'DENY')
  await page.fill('#new-name', 'Private notes')
  await page.click('#new-btn')
  await page.waitForSelector(EDITOR)
  await waitFor('connected', async () => (await page.textContent('#status-conn')) === 'connected')
  await page.click(EDITOR)
  await page.keyboard.type('typed behind a token')
  const docs = await node.api('GET', '/api/docs')
  await waitFor('the node has the typed text', async () =>
    (await nodeText(node, docs[0].id)) === 'typed behind a token')
  assert.deepEqual(failed, [], 'no request was refused')
  await page.screenshot({ path: `${ARTIFACTS}/browser-token.png` })
  await context.close()
})

test('a page on another site cannot mint a ticket or read anything, cookie or token', async () => {
  const a = await startNode()
  const other = await startNode()
  nodes.push(a, other)
  const doc = await a.api('POST', '/api/docs', { name: 'secret plans' })
  const metric = async (series) => {
    const text = await a.api('GET', '/metrics')
    const line = text.split('\n').find((l) => l.startsWith(series + ' '))
    return line ? Number(line.split(' ')[1]) : 0
  }
  const crossSite = 'peerdoc_api_refused_total{reason="cross_site"}'
  const before = await metric(crossSite)

  // The owner has A's editor open (so the browser holds its session cookie) and visits a page
  // on another site: `localhost` is another site than `127.0.0.1`.
  const context = await browser.newContext()
  const owner = await context.newPage()
  await owner.goto(a.editor)
  const hostile = await context.newPage()
  await hostile.goto(`http://localhost:${other.addr.split(':').pop()}/?token=${other.token}`)
  const target = `${a.http}/api/docs/${doc.id}`
  const sent = await hostile.evaluate(async ({ target, token }) => {
    const attempts = [
      fetch(`${target}/ticket`, { method: 'POST', mode: 'no-cors', credentials: 'include' }),
      // Even knowing the token does not help a page on another site.
      fetch(`${target}/ticket?token=${token}`, { method: 'POST', mode: 'no-cors' }),
      fetch(`${target}/text`, { mode: 'no-cors', credentials: 'include' })
    ]
    const results = await Promise.allSettled(attempts)
    return results.length
  }, { target, token: a.token })
  assert.equal(sent, 3)
  // Each arrived and was refused as another site's.
  await waitFor('three cross-site refusals counted', async () => (await metric(crossSite)) === before + 3)
  assert.equal(await metric('peerdoc_tickets_issued_total'), 0, 'no ticket was minted')
  await context.close()
})

test('a read-only member follows the document and cannot edit it', async () => {
  const a = await startNode()
  const c = await startNode()
  nodes.push(a, c)
  const pageA = await openPage(a, 'Alice')
  const pageC = await openPage(c, 'Carol')
  await pageA.fill('#new-name', 'Handbook')
  await pageA.click('#new-btn')
  await pageA.waitForSelector(EDITOR)
  await waitFor('A connected', async () => (await pageA.textContent('#status-conn')) === 'connected')
  await pageA.click(EDITOR)
  await pageA.keyboard.type('Rule one: be kind.')

  // A shares read-only.
  await pageA.click('#share-btn')
  const readWrite = await waitFor('a read-write ticket', () => pageA.inputValue('#ticket-text'))
  await pageA.check('#share-read-only')
  const ticket = await waitFor('a read-only ticket', async () => {
    const t = await pageA.inputValue('#ticket-text')
    return t !== readWrite && t
  })
  assert.match(await pageA.textContent('#share-explain'), /not edit/)
  await pageA.click('#share-close')

  // C joins and sees the text, marked read-only, without a Share button.
  await pageC.click('#join-btn')
  await pageC.fill('#join-ticket', ticket)
  await pageC.click('#join-submit')
  await pageC.waitForSelector(EDITOR)
  await waitFor('C sees the text', async () => (await editorText(pageC)) === 'Rule one: be kind.')
  assert.equal(await pageC.isVisible('#read-only'), true)
  assert.equal(await pageC.isVisible('#share-btn'), false)
  // The list marks it too.
  assert.match(await pageC.textContent('#doc-list li.active'), /Handbook read-only/)

  // Typing changes nothing, here or anywhere.
  await pageC.click(EDITOR)
  await pageC.keyboard.type('VANDALISM')
  await pageA.click(EDITOR)
  await pageA.keyboard.press('Control+End')
  await pageA.keyboard.type(' Rule two: write it down.')
  const full = 'Rule one: be kind. Rule two: write it down.'
  await waitFor('C follows A', async () => (await editorText(pageC)) === full)
  const docs = await c.api('GET', '/api/docs')
  assert.equal(await nodeText(c, docs[0].id), full)
  assert.equal(await nodeText(a, docs[0].id), full)

  // A's share dialog lists the reader, with a Remove button; removing takes it off the list.
  await pageA.click('#share-btn')
  await waitFor('the member list shows the reader', async () =>
    (await pageA.textContent('#member-list')).includes('reader'))
  await pageA.screenshot({ path: `${ARTIFACTS}/browser-share-members.png` })
  await pageC.screenshot({ path: `${ARTIFACTS}/browser-read-only.png` })
  pageA.once('dialog', (d) => d.accept())
  await pageA.click('#member-list li[data-role="reader"] button')
  await waitFor('the reader is gone from the list', async () =>
    !(await pageA.textContent('#member-list')).includes('reader'))
  const info = await a.api('GET', `/api/docs/${docs[0].id}`)
  assert.equal(info.epoch, 1, 'the document has a new key')
  // The dialog says that the tickets shared so far admit nobody now.
  await waitFor('the note on closed tickets', async () =>
    /no longer admit anyone/.test(await pageA.textContent('#members-note')))
  // C's node learns it was removed; its page, opened again, says so and stays read-only.
  await waitFor('C knows it was removed', async () =>
    (await c.api('GET', `/api/docs/${docs[0].id}`)).role === 'removed')
  await pageC.reload()
  await pageC.waitForSelector(EDITOR)
  await waitFor('C shows "removed"', async () =>
    (await pageC.isVisible('#read-only')) && (await pageC.textContent('#read-only')) === 'removed')
  assert.equal(await pageC.isVisible('#share-btn'), false)
  await pageC.screenshot({ path: `${ARTIFACTS}/browser-removed.png` })
})

// How much of an input's text (its value, or its placeholder when empty) does not fit, in pixels.
const overflow = (page, selector) => page.evaluate((sel) => {
  const el = document.querySelector(sel)
  const style = getComputedStyle(el)
  const ctx = document.createElement('canvas').getContext('2d')
  ctx.font = `${style.fontWeight} ${style.fontSize} ${style.fontFamily}`
  const room = el.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight)
  return Math.ceil(ctx.measureText(el.value || el.placeholder).width - room)
}, selector)

test('the first view: node status without a document, documents by name or prefix in the URL, an icon, fields that fit', async () => {
  const node = await startNode()
  nodes.push(node)
  const doc = await node.api('POST', '/api/docs', { name: 'notes' })
  await node.api('PUT', `/api/docs/${doc.id}/text`, 'by name')

  // No document open: the bar says the node answers, not "not connected".
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } })
  const page = await context.newPage()
  await page.goto(node.editor)
  await waitFor('the node is shown as running', async () =>
    (await page.textContent('#status-conn')) === 'node running')
  assert.equal(await page.getAttribute('#status-conn', 'data-state'), 'connected')
  await waitFor('the peer count', async () => (await page.textContent('#status-peers')) === '0 peers connected')
  await page.screenshot({ path: `${ARTIFACTS}/browser-no-document.png` })

  // The icon is served, as the page declares it and where browsers look by default.
  const svg = await page.request.get(node.http + '/favicon.svg')
  assert.equal(svg.status(), 200)
  assert.match(svg.headers()['content-type'], /image\/svg\+xml/)
  const ico = await page.request.get(node.http + '/favicon.ico')
  assert.equal(ico.status(), 200)
  assert.equal(ico.headers()['content-type'], 'image/x-icon')

  // A name, or a unique prefix of the id, in the URL opens the document, as the CLI's DOC does.
  for (const hash of ['notes', doc.id.slice(0, 6)]) {
    const p = await context.newPage()
    await p.goto(`${node.http}/#${hash}`)
    await waitFor(`/#${hash} opens the document`, async () => (await editorText(p)) === 'by name')
    assert.equal(await p.textContent('#doc-title'), 'notes')
    await p.close()
  }
  // Something that matches nothing says so.
  const missing = await context.newPage()
  await missing.goto(`${node.http}/#no-such-doc`)
  await waitFor('an error naming the document', async () =>
    (await missing.textContent('#status-error')).includes('no-such-doc'))
  await missing.close()

  // At common widths the name fields show their whole placeholder or default name.
  await page.fill('#my-name', 'Anonymous Badger')
  for (const [width, height] of [[1280, 720], [1024, 700], [768, 1000], [390, 800]]) {
    await page.setViewportSize({ width, height })
    if (width < 700) {
      await page.click('#menu-btn')
      await page.waitForTimeout(400) // the menu slides in
    }
    for (const field of ['#my-name', '#new-name']) {
      assert.ok(await overflow(page, field) <= 0, `${field} is cut off at ${width}px by ${await overflow(page, field)}px`)
    }
    await page.screenshot({ path: `${ARTIFACTS}/browser-width-${width}.png` })
  }
  await context.close()
})

test('the page\'s own state: saving, offline with changes kept in the browser, a node that is back', async () => {
  const token = 'state-' + Math.random().toString(36).slice(2)
  const node = await startNode({ token })
  const doc = await node.api('POST', '/api/docs', { name: 'draft' })
  const context = await browser.newContext({ viewport: { width: 1100, height: 700 } })
  const page = await context.newPage()
  page.on('pageerror', (e) => console.error(`[state] page error: ${e.message}`))
  await page.goto(`${node.editor}#${doc.id}`)
  await page.waitForSelector(EDITOR)
  await waitFor('connected', async () => (await page.textContent('#status-conn')) === 'connected')
  await waitFor('only you', async () => (await page.textContent('#status-peers')) === 'only you here')
  // Every state the sync field shows while typing: "saving…" until the node has stored it.
  await page.evaluate(() => {
    window.syncStates = []
    new MutationObserver(() => window.syncStates.push(document.getElementById('status-sync').textContent))
      .observe(document.getElementById('status-sync'), { childList: true, characterData: true, subtree: true })
  })
  await page.click(EDITOR)
  await page.keyboard.type('Online words. ')
  await waitFor('saved', async () => (await page.textContent('#status-sync')) === 'saved')
  const states = await page.evaluate(() => window.syncStates)
  assert.ok(states.indexOf('saving…') >= 0 && states.lastIndexOf('saved') > states.indexOf('saving…'), states.join(' | '))
  assert.equal(await nodeText(node, doc.id), 'Online words.')

  // The node stops: the bar says so in words, keeps no peer count, and what is typed now is
  // kept in this browser.
  await node.stop({ keepData: true })
  await waitFor('offline', async () => (await page.textContent('#status-conn')) === 'offline')
  await waitFor('the node is said not to answer', async () =>
    (await page.textContent('#status-error')).includes('does not answer'))
  assert.ok(!(await page.textContent('#status-error')).includes('Failed to fetch'))
  assert.equal(await page.textContent('#status-peers'), '')
  await page.keyboard.type('Typed offline.')
  await waitFor('changes kept here', async () =>
    (await page.textContent('#status-sync')) === 'offline: changes kept in this browser')
  await page.screenshot({ path: `${ARTIFACTS}/browser-offline.png` })
  // The tab is closed; the node comes back (same address, same token); the page is opened again.
  await page.close()
  const again = await startNode({ token, data: node.data, httpPort: node.httpPort })
  nodes.push(again)
  const reopened = await context.newPage()
  await reopened.goto(`${again.http}/#${doc.id}`)
  await waitFor('the node has what was typed offline', async () =>
    (await nodeText(again, doc.id)) === 'Online words. Typed offline.')
  await waitFor('saved again', async () => (await reopened.textContent('#status-sync')) === 'saved')
  await context.close()
})

test('a join with no member online says so briefly and can keep trying in the background', async () => {
  const a = await startNode()
  const b = await startNode()
  nodes.push(b)
  const doc = await a.api('POST', '/api/docs', { name: 'later' })
  const { ticket } = await a.api('POST', `/api/docs/${doc.id}/ticket`)
  await a.stop()
  const page = await openPage(b, 'Bob')
  await page.click('#join-btn')
  await page.fill('#join-ticket', ticket)
  await page.click('#join-submit')
  await waitFor('the join fails', async () => page.isVisible('#join-wait'), 60000)
  const said = await page.textContent('#join-error')
  assert.ok(said.length < 400 && /no member answered/.test(said), said)
  // The message stays inside the dialog: its buttons are on screen.
  for (const button of ['#join-wait', '#join-submit', '#join-cancel']) {
    const box = await page.locator(button).boundingBox()
    assert.ok(box && box.y + box.height <= 700, `${button} is off screen: ${JSON.stringify(box)}`)
  }
  await page.screenshot({ path: `${ARTIFACTS}/browser-join-offline.png` })
  await page.click('#join-wait')
  await waitFor('listed as joining', async () =>
    (await page.textContent('#doc-list')).includes('later (joining…)'), 60000)
  assert.equal((await b.api('GET', '/api/docs'))[0].joining, true)
  await page.context().close()
})

test('a rich document: toolbar and shortcuts, Markdown on the node, Markdown paste, undo of your own changes, downloads', async () => {
  const node = await startNode()
  nodes.push(node)
  const page = await openPage(node, 'Alice')
  await page.fill('#new-name', 'Report')
  await page.click('#new-btn')
  await page.waitForSelector(EDITOR)
  await waitFor('connected', async () => (await page.textContent('#status-conn')) === 'connected')
  assert.ok(await page.isVisible('#toolbar'), 'the toolbar shows for a rich document')
  const [doc] = await node.api('GET', '/api/docs')
  assert.equal(doc.kind, 'rich')

  // A heading from the toolbar, bold from the keyboard, a list from the toolbar.
  await page.click(EDITOR)
  await page.click('#toolbar button[title^="Heading 1"]')
  await page.keyboard.type('Quarterly report')
  await page.keyboard.press('Enter')
  await page.keyboard.type('Revenue is ')
  await page.keyboard.press('Control+b')
  await page.keyboard.type('up')
  await page.keyboard.press('Control+b')
  await page.keyboard.type('.')
  await page.keyboard.press('Enter')
  await page.click('#toolbar button[title^="Bullet list"]')
  await page.keyboard.type('first')
  await page.keyboard.press('Enter')
  await page.keyboard.type('second')
  const written = '# Quarterly report\n\nRevenue is **up**.\n\n- first\n- second'
  await waitFor('the node holds it as Markdown', async () => (await nodeText(node, doc.id)) === written)
  assert.equal(await page.textContent(`${EDITOR} h1`), 'Quarterly report')

  // Markdown written through the API (as `peerdoc write --append` does) shows as structure.
  await node.api('PUT', `/api/docs/${doc.id}/text?append=true`, '| who | what |\n| --- | --- |\n| A | code |\n')
  await waitFor('the table appears', async () => (await page.locator(`${EDITOR} table th`).count()) === 2)

  // Pasted Markdown keeps its structure.
  await page.click(`${EDITOR} h1`)
  await page.keyboard.press('End')
  await page.evaluate((markdown) => {
    const data = new DataTransfer()
    data.setData('text/plain', markdown)
    document.querySelector('.ProseMirror').dispatchEvent(
      new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }))
  }, '## Pasted\n\n- [ ] a task\n')
  await waitFor('the pasted heading and task', async () => {
    const text = await nodeText(node, doc.id)
    return text.includes('## Pasted') && text.includes('- [ ] a task')
  })

  // Undo takes back only this person's changes: another editor's stay.
  const other = await openPage(node, 'Bob')
  await other.goto(`${node.http}/#${doc.id}`)
  await other.waitForSelector(EDITOR)
  await waitFor('Bob sees the report', async () => (await editorText(other)).includes('Quarterly report'))
  await page.waitForTimeout(700) // past the undo manager's capture window: a step of its own
  await page.click(`${EDITOR} li:last-child`)
  await page.keyboard.press('End')
  await page.keyboard.type(' MINE')
  await waitFor('Bob sees MINE', async () => (await editorText(other)).includes('MINE'))
  await other.click(`${EDITOR} h1`)
  await other.keyboard.press('End')
  await other.keyboard.type(' THEIRS')
  await waitFor('Alice sees THEIRS', async () => (await editorText(page)).includes('THEIRS'))
  await page.click(`${EDITOR} li:last-child`)
  await page.keyboard.press('Control+z')
  await waitFor('only Alice\'s change is undone', async () => {
    const text = await nodeText(node, doc.id)
    return !text.includes('MINE') && text.includes('THEIRS') && text.includes('Revenue is **up**.')
  })

  // "plain text" makes a plain document, in the plain editor.
  await page.fill('#new-name', 'Snippets')
  await page.check('#new-plain')
  await page.click('#new-btn')
  await page.waitForSelector('.cm-content')
  assert.equal((await node.api('GET', '/api/docs/Snippets')).kind, 'plain')
  assert.equal(await page.isVisible('#toolbar'), false)
  await page.goto(`${node.http}/#${doc.id}`)
  await page.waitForSelector(EDITOR)

  // Downloads: Markdown and HTML, as files.
  for (const [id, type] of [['#download-md', 'text/markdown'], ['#download-html', 'text/html']]) {
    const res = await page.request.get(node.http + await page.getAttribute(id, 'href'))
    assert.equal(res.status(), 200)
    assert.match(res.headers()['content-type'], new RegExp(type))
    assert.match(res.headers()['content-disposition'], /^attachment; filename="Report\.(md|html)"$/)
    assert.match(res.headers()['content-security-policy'], /sandbox/)
    assert.match(await res.text(), type === 'text/html' ? /<h1>Quarterly report THEIRS<\/h1>/ : /^# Quarterly report THEIRS/)
  }
  await page.screenshot({ path: `${ARTIFACTS}/browser-rich.png` })
  await page.context().close()
  await other.context().close()
})

test('history: versions listed with their authors, a preview in the author\'s colour, restore', async () => {
  const node = await startNode()
  nodes.push(node)
  const page = await openPage(node, 'Alice')
  page.on('dialog', (dialog) => dialog.accept())
  await page.fill('#new-name', 'Story')
  await page.click('#new-btn')
  await page.waitForSelector(EDITOR)
  await waitFor('connected', async () => (await page.textContent('#status-conn')) === 'connected')
  const [doc] = await node.api('GET', '/api/docs')
  await page.click(EDITOR)
  await page.keyboard.type('Once upon a time.')
  await waitFor('stored', async () => (await nodeText(node, doc.id)) === 'Once upon a time.')
  await node.api('POST', `/api/docs/${doc.id}/versions`, { name: 'start' })
  await page.keyboard.type(' The end.')
  await waitFor('stored again', async () => (await nodeText(node, doc.id)) === 'Once upon a time. The end.')
  await node.api('POST', `/api/docs/${doc.id}/versions`, {})

  await page.click('#history-btn')
  await waitFor('two versions listed', async () => (await page.locator('#version-list li').count()) === 2)
  const newest = page.locator('#version-list li').first()
  assert.match(await newest.textContent(), /\+9 −0 · Alice/)
  await newest.click()
  await waitFor('the preview marks what Alice added', async () =>
    (await page.locator('#version-preview ins').allTextContents()).join('') === ' The end.')
  assert.equal(await page.getAttribute('#version-preview ins', 'title'), 'Written by Alice')
  assert.equal(await page.textContent('#version-preview'), 'Once upon a time. The end.')
  await page.screenshot({ path: `${ARTIFACTS}/browser-history.png` })

  // Back to "start": a forward change, seen in the editor, and a version of its own.
  await page.locator('#version-list li', { hasText: 'start' }).click()
  await page.click('#version-restore')
  await waitFor('the editor is back at "start"', async () => (await editorText(page)) === 'Once upon a time.')
  await waitFor('the node too', async () => (await nodeText(node, doc.id)) === 'Once upon a time.')
  await waitFor('the restore is listed', async () =>
    (await page.locator('#version-list li').first().textContent()).startsWith('Restore of'))
  await page.click('#history-close')
  await page.context().close()
})

test('an image pasted on one node is rendered on the other, fetched from the first', async () => {
  const a = await startNode()
  const b = await startNode()
  nodes.push(a, b)
  const doc = await a.api('POST', '/api/docs', { name: 'Photos' })
  assert.equal(doc.kind, 'rich')
  const { ticket } = await a.api('POST', `/api/docs/${doc.id}/ticket`)
  await b.api('POST', '/api/join', { ticket })
  const pageA = await openPage(a, 'Alice')
  const pageB = await openPage(b, 'Bob')
  for (const [page, node] of [[pageA, a], [pageB, b]]) {
    await page.goto(`${node.http}/#${doc.id}`)
    await page.waitForSelector(EDITOR)
  }
  await pageA.click(EDITOR)
  // A 64×48 red PNG, pasted as a file.
  await pageA.evaluate(async () => {
    const canvas = document.createElement('canvas')
    canvas.width = 64
    canvas.height = 48
    const ctx = canvas.getContext('2d')
    ctx.fillStyle = '#e33'
    ctx.fillRect(0, 0, 64, 48)
    const png = await new Promise((resolve) => canvas.toBlob(resolve, 'image/png'))
    const data = new DataTransfer()
    data.items.add(new File([png], 'red.png', { type: 'image/png' }))
    document.querySelector('.ProseMirror').dispatchEvent(
      new ClipboardEvent('paste', { clipboardData: data, bubbles: true, cancelable: true }))
  })
  const rendered = (page) => page.evaluate(() => {
    const img = document.querySelector('.ProseMirror img')
    return !!img && img.complete && img.naturalWidth === 64 && img.naturalHeight === 48
  })
  await waitFor('A shows the pasted image', () => rendered(pageA))
  await waitFor('B renders it, fetched from A', () => rendered(pageB), 60000)
  await pageB.screenshot({ path: `${ARTIFACTS}/browser-attachment.png` })
  // B's node keeps it whole now, and both nodes' text links it.
  const [listed] = await b.api('GET', `/api/docs/${doc.id}/blobs`)
  assert.equal(listed.here, listed.size)
  assert.equal(listed.name, 'red.png')
  assert.match(await nodeText(b, doc.id), /\/blobs\/b1\.[0-9a-f]{64}\./)
  const metric = await b.metric('peerdoc_blob_bytes_received_total')
  assert.equal(metric, listed.size, 'B fetched it from A over the network')
  await pageA.context().close()
  await pageB.context().close()
})
