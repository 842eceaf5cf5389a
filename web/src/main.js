// peerdoc's web editor: document list, create/rename/delete, share (read-only or read-write) and
// join with tickets, the member list, and an editor bound to the node's y-websocket endpoint with
// remote cursors (read-only where this node is a reader): TipTap for rich documents (`rich.js`),
// CodeMirror 6 for plain-text ones.
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { IndexeddbPersistence } from 'y-indexeddb'
import * as decoding from 'lib0/decoding'
import { EditorView, basicSetup } from 'codemirror'
import { EditorState } from '@codemirror/state'
import { yCollab } from 'y-codemirror.next'
import { richEditor } from './rich.js'
import { attachments } from './attachments.js'
import './style.css'

const $ = (id) => document.getElementById(id)
const token = new URLSearchParams(location.search).get('token')
const withToken = (url) =>
  token ? `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}` : url

// The node's refusals carry a stable `code` (see README, HTTP API); a node that does not
// answer at all is `offline`, said in words rather than the browser's "Failed to fetch".
async function api (method, path, body) {
  let res
  try {
    res = await fetch(withToken(path), {
      method,
      headers: body === undefined ? {} : { 'Content-Type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
  } catch {
    throw Object.assign(new Error('the node does not answer: is peerdoc serve running?'), { code: 'offline' })
  }
  const text = await res.text()
  let data = null
  try { data = text ? JSON.parse(text) : null } catch { data = text }
  if (!res.ok) {
    throw Object.assign(new Error((data && data.error) || `${res.status} ${res.statusText}`),
      { code: data && data.code })
  }
  return data
}

function showError (e) {
  $('status-error').textContent = e ? String(e.message || e) : ''
}

// --- who am I: name and colour for remote cursors --------------------------------------------

// The name is the node's (`peerdoc name`, kept and signed by the node, shown to members);
// until it has one, this browser goes by an animal of its own.
const COLORS = ['#d32f2f', '#7b1fa2', '#1976d2', '#00897b', '#f57c00', '#5d4037', '#c2185b', '#388e3c']
const ANIMALS = ['Fox', 'Owl', 'Otter', 'Lynx', 'Heron', 'Badger', 'Wren', 'Hare']
let nodeName = null
function myName () {
  if (nodeName) return nodeName
  let name = localStorage.getItem('peerdoc.anonymous')
  if (!name) {
    name = `Anonymous ${ANIMALS[Math.floor(Math.random() * ANIMALS.length)]}`
    localStorage.setItem('peerdoc.anonymous', name)
  }
  return name
}
async function loadMyName () {
  const { name, from_config: fromConfig } = await api('GET', '/api/name')
  nodeName = name
  $('my-name').value = name || ''
  $('my-name').placeholder = myName()
  $('my-name').readOnly = fromConfig
  $('my-name').title = fromConfig
    ? 'Set by `name` in this node\'s config file'
    : 'Your name, as the members of your documents see it (kept by this node)'
  if (current) current.provider.awareness.setLocalStateField('user', user())
}
function colorOf (name) {
  let h = 0
  for (const c of name) h = (h * 31 + c.codePointAt(0)) >>> 0
  return COLORS[h % COLORS.length]
}
function user () {
  const name = myName()
  const color = colorOf(name)
  return { name, color, colorLight: color + '33' }
}

// --- the open document -----------------------------------------------------------------------

let current = null // { id, name, ydoc, provider, view, local, saved }

function closeDoc () {
  if (!current) return
  if (current.attachments) current.attachments.stop()
  current.view.destroy()
  $('rich').replaceChildren()
  $('toolbar').replaceChildren()
  current.provider.destroy()
  if (current.local) current.local.destroy()
  current.ydoc.destroy()
  current = null
  $('doc-view').hidden = true
  $('empty').hidden = false
  $('status-sync').textContent = ''
  refreshStatus()
}

function setConn (state, label) {
  $('status-conn').dataset.state = state
  $('status-conn').textContent = label
}

// What the node has stored, per Yjs client: its state vector as it said it on connecting,
// raised by every update it sends, including the echo of this editor's own once stored.
function noteStored (saved, message) {
  const decoder = decoding.createDecoder(new Uint8Array(message))
  if (decoding.readVarUint(decoder) !== 0) return false // not a sync message
  const kind = decoding.readVarUint(decoder)
  const payload = decoding.readVarUint8Array(decoder)
  const clocks = kind === 0 ? Y.decodeStateVector(payload) : Y.parseUpdateMeta(payload).to
  for (const [client, clock] of clocks) {
    if (clock > (saved.get(client) || 0)) saved.set(client, clock)
  }
  return true
}

// Whether this browser holds changes the node has not stored yet.
function unsaved (ydoc, saved) {
  for (const [client, clock] of Y.decodeStateVector(Y.encodeStateVector(ydoc))) {
    if (clock > (saved.get(client) || 0)) return true
  }
  return false
}

// The sync field: saving…/saved while connected; offline, with where unsaved changes are.
function showSaveState () {
  if (!current || current.closedReason) return
  const { provider, ydoc, saved, local } = current
  const pending = unsaved(ydoc, saved)
  let text
  if (provider.wsconnected && provider.synced) text = pending ? 'saving…' : 'saved'
  else if (provider.wsconnected) text = 'syncing…'
  else if (pending) text = local ? 'offline: changes kept in this browser' : 'offline: changes not saved'
  else text = 'offline'
  $('status-sync').textContent = text
}

// Who else has the document open, on any node: names and colours from presence.
function showPeople () {
  if (!current) return
  const me = current.ydoc.clientID
  const people = []
  current.provider.awareness.getStates().forEach((state, client) => {
    if (client !== me && state.user && state.user.name) people.push(state.user)
  })
  const el = $('status-peers')
  if (!current.provider.wsconnected) {
    el.replaceChildren()
    return
  }
  if (people.length === 0) {
    el.textContent = 'only you here'
    return
  }
  el.replaceChildren('With ', ...people.flatMap((p, i) => {
    const dot = document.createElement('span')
    dot.className = 'person'
    dot.style.setProperty('--color', /^#[0-9a-f]{3,8}$/i.test(p.color) ? p.color : '#888')
    dot.textContent = p.name
    return i === 0 ? [dot] : [', ', dot]
  }))
}

function openDoc (doc) {
  closeDoc()
  const ydoc = new Y.Doc()
  // A removed node keeps what it had, read-only: the owner took its role away.
  const removed = doc.role === 'removed'
  const readOnly = doc.role === 'reader' || removed
  // What is typed is kept in this browser too (IndexedDB) until the node has it: typed while
  // the node is down, it survives closing the tab, and goes to the node on the next visit.
  const local = readOnly ? null : new IndexeddbPersistence(`peerdoc:${doc.id}`, ydoc)
  const wsBase = `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`
  const provider = new WebsocketProvider(wsBase, doc.id, ydoc, {
    params: token ? { token } : {},
    disableBc: true // every change goes through the node, which shares it with peers
  })
  const saved = new Map()
  provider.awareness.setLocalStateField('user', user())
  provider.on('status', ({ status }) => {
    setConn(status, status === 'disconnected' ? 'offline' : status)
    if (status === 'connected') {
      provider.ws.addEventListener('message', (event) => {
        if (noteStored(saved, event.data)) showSaveState()
      })
    }
    showSaveState()
    showPeople()
  })
  provider.on('sync', showSaveState)
  provider.awareness.on('change', showPeople)
  ydoc.on('update', () => showSaveState())
  // The node closed the session for good (4403: this node may no longer edit): say why.
  provider.on('closed', ({ reason }) => {
    if (current) current.closedReason = reason || 'closed'
    $('status-sync').textContent = reason || 'closed'
  })
  setConn('connecting', 'connecting')
  $('status-sync').textContent = 'syncing…'
  const rich = doc.kind === 'rich'

  // The editor: TipTap on the rich text, or CodeMirror on the plain text.
  $('editor').hidden = rich
  $('rich').hidden = !rich
  const view = rich
    ? richEditor({
      element: $('rich'),
      toolbar: $('toolbar'),
      ydoc,
      provider,
      user: user(),
      readOnly,
      onFiles: (files, at) => current && current.attachments && current.attachments.add(files, at)
    })
    : new EditorView({
      state: EditorState.create({
        doc: '',
        extensions: [
          basicSetup,
          EditorView.lineWrapping,
          yCollab(ydoc.getText('content'), provider.awareness),
          EditorState.readOnly.of(readOnly),
          EditorView.editable.of(!readOnly)
        ]
      }),
      parent: $('editor')
    })
  if (!rich) $('toolbar').hidden = true
  const download = (format) => `/api/docs/${encodeURIComponent(doc.id)}/text?format=${format}&download=1`
  $('download-md').href = download('markdown')
  $('download-html').href = download('html')
  const files = rich
    ? attachments({ editor: view, docId: doc.id, status: $('status-files'), withToken, readOnly })
    : null
  current = { id: doc.id, name: doc.name, role: doc.role, ydoc, provider, view, local, saved, attachments: files }
  $('doc-title').textContent = doc.name
  $('read-only').hidden = !readOnly
  $('read-only').textContent = removed ? 'removed' : 'read-only'
  $('read-only').title = removed
    ? 'The owner removed this node from the document: it keeps what it had, gets nothing new, and cannot edit'
    : 'This document was shared with you read-only'
  $('share-btn').hidden = readOnly
  $('empty').hidden = true
  $('doc-view').hidden = false
  document.body.classList.remove('menu-open')
  // The token is not kept in the address bar: the session cookie stands for it now (and a
  // token after the `#` would become part of the document name on reload).
  history.replaceState(null, '', `/#${doc.id}`)
  renderList()
  refreshStatus()
}

// --- document list -----------------------------------------------------------------------------

let docs = []

function renderList () {
  const list = $('doc-list')
  list.replaceChildren(...docs.map((doc) => {
    const li = document.createElement('li')
    li.textContent = doc.joining ? `${doc.name} (joining…)` : doc.name
    const mark = { reader: 'read-only', removed: 'removed' }[doc.role]
    if (mark) {
      const badge = document.createElement('span')
      badge.className = 'badge'
      badge.textContent = mark
      li.append(' ', badge)
    }
    li.title = doc.id
    li.dataset.id = doc.id
    if (current && current.id === doc.id) li.classList.add('active')
    li.onclick = () => openDoc(doc)
    return li
  }))
  $('no-docs').hidden = docs.length > 0
}

async function loadDocs () {
  docs = await api('GET', '/api/docs')
  renderList()
  if (current) {
    const mine = docs.find((d) => d.id === current.id)
    if (!mine) closeDoc()
    else if (mine.name !== current.name) {
      current.name = mine.name
      $('doc-title').textContent = mine.name
    }
  }
  return docs
}

const plural = (n, word) => `${n} ${word}${n === 1 ? '' : 's'}`

// The status bar. With a document open it shows the editor's connection (from the provider)
// and the peers sharing the document; without one, whether the node answers and its peers.
// It clears only the error it showed itself: an action's error stays until the next action.
let statusFailed = false
async function refreshStatus () {
  let status
  try {
    status = await api('GET', '/api/status')
  } catch (e) {
    // Nothing stale stays: no peer count from before, and words instead of "Failed to fetch".
    if (!current) setConn('disconnected', 'node not reachable')
    $('status-peers').replaceChildren()
    showError(e.code === 'offline' ? 'the node does not answer: is peerdoc serve running? (changes typed now are kept in this browser)' : e)
    statusFailed = true
    return
  }
  if (statusFailed) {
    showError(null)
    statusFailed = false
  }
  if (!current) {
    setConn('connected', 'node running')
    $('status-peers').textContent = `${plural(status.connected_peers.length, 'peer')} connected`
    return
  }
  const doc = status.docs.find((d) => d.id === current.id)
  const peers = doc ? doc.peers : []
  // People are in the bar (presence); the nodes behind them in its tooltip.
  $('status-peers').title = `${plural(peers.length, 'other node')} online with this document`
  showPeople()
  const fetching = peers.filter((p) => p.state === 'catching_up').length
  if (current.provider.synced && fetching && !unsaved(current.ydoc, current.saved)) {
    $('status-sync').textContent = `saved here; catching up with ${plural(fetching, 'peer')}`
  }
}

// --- actions -------------------------------------------------------------------------------------

$('new-form').onsubmit = async (e) => {
  e.preventDefault()
  try {
    const kind = $('new-plain').checked ? 'plain' : 'rich'
    const doc = await api('POST', '/api/docs', { name: $('new-name').value, kind })
    $('new-name').value = ''
    $('new-plain').checked = false
    await loadDocs()
    openDoc(doc)
  } catch (err) { showError(err) }
}

async function showTicket () {
  const readOnly = $('share-read-only').checked
  $('share-explain').textContent = readOnly
    ? 'Anyone with this ticket can read the document and follow its changes, but not edit it. Send it privately.'
    : 'Anyone with this ticket can read and edit the document, and share it further. Send it privately.'
  const { ticket } = await api('POST', `/api/docs/${current.id}/ticket`, { read_only: readOnly })
  $('ticket-text').value = ticket
  $('copy-btn').textContent = 'Copy'
}

async function showMembers () {
  const members = await api('GET', `/api/docs/${current.id}/members`)
  $('member-list').replaceChildren(...members.map((m) => {
    const li = document.createElement('li')
    const label = document.createElement('span')
    label.textContent = `${m.label} · ${m.role}${m.you ? ' (you)' : ''}`
    li.append(label)
    li.title = m.peer
    li.dataset.role = m.role
    // The owner removes members: they get no key for what is written from now on.
    if (current.role === 'owner' && !m.you) {
      const remove = document.createElement('button')
      remove.textContent = 'Remove'
      remove.className = 'danger small'
      remove.onclick = async () => {
        if (!confirm(`Remove ${m.label} (${m.peer}) from "${current.name}"? They keep what they have, but cannot read or change anything from now on.`)) return
        try {
          const removed = await api('DELETE', `/api/docs/${current.id}/members/${encodeURIComponent(m.peer)}`)
          await showMembers()
          const also = removed.with_it.map((w) => `${w.label} (${w.role})`)
          $('members-note').textContent = [
            also.length ? `Also removed, admitted through it: ${also.join(', ')}.` : '',
            removed.tickets_closed ? `${removed.tickets_closed} earlier ticket(s) no longer admit anyone: share new ones.` : ''
          ].join(' ').trim()
        } catch (err) { showError(err) }
      }
      li.append(remove)
    }
    return li
  }))
}

// --- history: versions, a preview of what changed in one, restore and name -------------------

let chosenVersion = null

function when (ms) {
  return new Date(ms).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' })
}

async function showVersions () {
  const versions = await api('GET', `/api/docs/${current.id}/versions`)
  const readOnly = current.role === 'reader' || current.role === 'removed'
  $('version-save').hidden = readOnly
  $('version-restore').hidden = readOnly
  $('version-name').hidden = readOnly
  if (versions.length === 0) {
    $('version-list').replaceChildren()
    $('version-title').textContent = 'No versions yet: one is saved after each burst of editing, or now with "Save a version now".'
    return
  }
  $('version-list').replaceChildren(...versions.slice().reverse().map((v) => {
    const li = document.createElement('li')
    li.dataset.id = v.id
    const title = v.name || (v.restored_from ? `Restore of ${v.restored_from.slice(0, 6)}` : 'Version')
    const by = v.authors.map((a) => a.label).join(', ')
    const changes = v.inserted === null ? 'not synced here yet' : `+${v.inserted} −${v.deleted}`
    const whenEl = document.createElement('span')
    whenEl.className = 'when'
    whenEl.textContent = `${when(v.at)} · ${changes}${by ? ' · ' + by : ''}`
    li.append(title, whenEl)
    if (v.id === chosenVersion) li.classList.add('selected')
    li.onclick = () => previewVersion(v).catch(showError)
    return li
  }))
}

async function previewVersion (v) {
  chosenVersion = v.id
  for (const li of $('version-list').children) li.classList.toggle('selected', li.dataset.id === v.id)
  const spans = await api('GET', `/api/docs/${current.id}/versions/${v.id}/preview`)
  $('version-title').textContent = `${v.name || 'Version ' + v.id.slice(0, 6)}, ${when(v.at)}: insertions underlined and deletions struck through, in each author's colour. `
  // Who wrote what changed, in their colours.
  const authors = [...new Set(spans.filter((s) => s.change !== 'same')
    .map((s) => s.author ? s.author.label : 'someone unknown'))]
  $('version-title').append(...authors.map((label) => {
    const dot = document.createElement('span')
    dot.className = 'person'
    dot.style.setProperty('--color', colorOf(label))
    dot.textContent = label
    return dot
  }))
  $('version-preview').replaceChildren(...spans.map((span) => {
    if (span.change === 'same') return document.createTextNode(span.text)
    const el = document.createElement(span.change === 'inserted' ? 'ins' : 'del')
    el.textContent = span.text
    const label = span.author ? span.author.label : 'someone unknown'
    el.style.setProperty('--c', colorOf(label))
    el.title = `${span.change === 'inserted' ? 'Written' : 'Deleted text written'} by ${label}`
    return el
  }))
  $('version-restore').disabled = false
  $('version-name').disabled = false
}

$('history-btn').onclick = async () => {
  try {
    chosenVersion = null
    $('history-note').textContent = ''
    $('version-preview').replaceChildren()
    $('version-title').textContent = 'Choose a version to see what changed in it.'
    $('version-restore').disabled = true
    $('version-name').disabled = true
    $('history-dialog').showModal()
    await showVersions()
  } catch (err) { showError(err) }
}
$('history-close').onclick = () => $('history-dialog').close()
$('version-save').onclick = async () => {
  try {
    const name = prompt('A name for this version (optional)') || undefined
    const { id } = await api('POST', `/api/docs/${current.id}/versions`, { name })
    $('history-note').textContent = `Saved version ${id.slice(0, 6)}.`
    await showVersions()
  } catch (err) { showError(err) }
}
$('version-name').onclick = async () => {
  if (!chosenVersion) return
  const name = prompt('Name this version')
  if (!name) return
  try {
    await api('PATCH', `/api/docs/${current.id}/versions/${chosenVersion}`, { name })
    await showVersions()
  } catch (err) { showError(err) }
}
$('version-restore').onclick = async () => {
  if (!chosenVersion) return
  if (!confirm('Make the document as it was at this version? Everyone sees the change; the versions since stay in the history.')) return
  try {
    const { id } = await api('POST', `/api/docs/${current.id}/versions/${chosenVersion}/restore`)
    $('history-note').textContent = id ? 'Restored: the document is as it was at that version (saved as a new version).' : 'The document already is as it was at that version.'
    await showVersions()
  } catch (err) { showError(err) }
}

$('share-btn').onclick = async () => {
  try {
    $('share-read-write').checked = true
    await Promise.all([showTicket(), showMembers()])
    $('share-dialog').showModal()
    $('ticket-text').select()
  } catch (err) { showError(err) }
}
for (const id of ['share-read-write', 'share-read-only']) {
  $(id).onchange = () => showTicket().catch(showError)
}
$('copy-btn').onclick = async () => {
  const text = $('ticket-text').value
  try {
    await navigator.clipboard.writeText(text)
  } catch {
    $('ticket-text').select()
    document.execCommand('copy')
  }
  $('copy-btn').textContent = 'Copied'
}
$('share-close').onclick = () => $('share-dialog').close()

$('join-btn').onclick = () => {
  $('join-error').textContent = ''
  $('join-wait').hidden = true
  $('join-ticket').value = ''
  $('join-name').value = ''
  $('join-dialog').showModal()
}
$('join-cancel').onclick = () => $('join-dialog').close()
// No member online yet: the node can keep the document and finish when one answers (as
// `peerdoc join --wait` does), listed as joining meanwhile.
const WAITABLE = ['unreachable', 'no_writer', 'join_failed']
async function join (wait) {
  $('join-submit').disabled = true
  $('join-wait').hidden = true
  $('join-error').textContent = 'Joining: reaching the sharer, or another member the DHT knows…'
  try {
    const name = $('join-name').value.trim()
    const doc = await api('POST', '/api/join', { ticket: $('join-ticket').value.trim(), name: name || null, wait })
    $('join-dialog').close()
    await loadDocs()
    if (!doc.joining) openDoc(doc)
  } catch (err) {
    $('join-error').textContent = err.message
    $('join-wait').hidden = !WAITABLE.includes(err.code)
  } finally {
    $('join-submit').disabled = false
  }
}
$('join-form').onsubmit = (e) => { e.preventDefault(); join(false) }
$('join-wait').onclick = () => join(true)

async function rename () {
  const name = prompt('Rename this document on this node (the others keep their own names for it)', current.name)
  if (!name || name === current.name) return
  try {
    await api('PATCH', `/api/docs/${current.id}`, { name })
    await loadDocs()
  } catch (err) { showError(err) }
}
$('rename-btn').onclick = rename
$('doc-title').onclick = rename

$('delete-btn').onclick = async () => {
  if (!confirm(`Delete your copy of "${current.name}"? Peers keep theirs.`)) return
  try {
    const id = current.id
    const local = current.local
    closeDoc()
    await api('DELETE', `/api/docs/${id}`)
    // What this browser kept of it goes too.
    if (local) await new IndexeddbPersistence(`peerdoc:${id}`, new Y.Doc()).clearData()
    await loadDocs()
  } catch (err) { showError(err) }
}

$('my-name').onchange = async () => {
  const name = $('my-name').value.trim()
  if (!name) return
  try {
    await api('PUT', '/api/name', { name })
    await loadMyName()
    showError(null)
  } catch (err) { showError(err) }
}
$('menu-btn').onclick = () => document.body.classList.toggle('menu-open')

// --- start -------------------------------------------------------------------------------------

// `/#<id>`, `/#<name>` or `/#<unique id prefix>` opens that document, as the CLI's DOC does
// (the node resolves it).
async function openFromHash () {
  try {
    // Throws on a malformed escape (`/#%E0`): shown like any other error.
    const wanted = decodeURIComponent(location.hash.slice(1))
    if (!wanted || (current && current.id === wanted)) return
    openDoc(await api('GET', `/api/docs/${encodeURIComponent(wanted)}`))
  } catch (e) { showError(e) }
}
window.addEventListener('hashchange', openFromHash)

loadMyName().catch(showError)
loadDocs().then(openFromHash).catch(showError)
refreshStatus()
setInterval(refreshStatus, 2000)
setInterval(() => loadDocs().catch(showError), 10000)
