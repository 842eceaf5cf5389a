// Attachments in the rich editor: a pasted or dropped file is uploaded to the node (sealed
// there for the document's members) and appears for everyone, an image as an image and any
// other file as a link with its name and size. The status bar shows each upload's progress,
// and each download's: an image whose attachment this node does not have yet is fetched from
// the document's peers, and one that no online peer has says so (and is tried again).

const BLOB_SRC = /\/api\/docs\/([^/]+)\/blobs\/(b1\.[0-9a-f]{64}\.[A-Za-z0-9_-]{43}\.\d+)/
const IMAGE = /^image\/(png|jpeg|gif|webp|avif)$/
// How often a download's state is asked while it runs, and a failed one is tried again.
const POLL_MS = 400
const RETRY_MS = 5000

function human (bytes) {
  if (bytes >= 1 << 30) return `${(bytes / (1 << 30)).toFixed(1)} GB`
  if (bytes >= 1 << 20) return `${(bytes / (1 << 20)).toFixed(1)} MB`
  if (bytes >= 1 << 10) return `${(bytes / 1024).toFixed(1)} KB`
  return `${bytes} bytes`
}

/** The attachments' line in the status bar: one entry per transfer. */
class Transfers {
  constructor (element) {
    this.element = element
    this.entries = new Map()
  }

  set (key, text, state) {
    this.entries.set(key, { text, state })
    this.render()
  }

  done (key) {
    this.entries.delete(key)
    this.render()
  }

  render () {
    const parts = [...this.entries.values()]
    this.element.textContent = parts.map((p) => p.text).join(' · ')
    this.element.dataset.state = parts.some((p) => p.state === 'failed') ? 'failed' : (parts.length ? 'busy' : '')
  }
}

/** Uploads `file` as an attachment of `docId`; resolves to the node's answer. */
function upload (docId, file, onProgress, withToken) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest()
    const name = encodeURIComponent(file.name || 'pasted')
    xhr.open('POST', withToken(`/api/docs/${encodeURIComponent(docId)}/blobs?name=${name}`))
    xhr.setRequestHeader('Content-Type', 'application/octet-stream')
    xhr.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total) }
    xhr.onload = () => {
      let data = null
      try { data = JSON.parse(xhr.responseText) } catch {}
      if (xhr.status === 201 && data) resolve(data)
      else reject(new Error((data && data.error) || `upload failed (${xhr.status})`))
    }
    xhr.onerror = () => reject(new Error('the node does not answer: is peerdoc serve running?'))
    xhr.send(file)
  })
}

/**
 * Attachments for the rich `editor` of document `docId`: `add(files, at)` uploads files (pasted
 * or dropped: `rich.js` hands them over) and inserts them at position `at` (or the selection);
 * images of attachments show their download's progress in `status`. `stop()` ends it.
 */
export function attachments ({ editor, docId, status, withToken, readOnly }) {
  const transfers = new Transfers(status)
  let stopped = false

  async function add (files, at) {
    for (const file of files) {
      const key = `up:${file.name}:${Math.random()}`
      transfers.set(key, `uploading ${file.name} 0%`, 'busy')
      try {
        const added = await upload(docId, file, (f) =>
          transfers.set(key, `uploading ${file.name} ${Math.round(f * 100)}%`, 'busy'), withToken)
        const chain = editor.chain().focus()
        if (at !== undefined) chain.setTextSelection(at)
        if (IMAGE.test(file.type)) {
          chain.setImage({ src: added.link, alt: added.name, title: added.name }).run()
        } else {
          chain.insertContent({
            type: 'text',
            text: `${added.name} (${human(added.size)})`,
            marks: [{ type: 'link', attrs: { href: added.link } }]
          }).insertContent(' ').run()
        }
        transfers.done(key)
      } catch (e) {
        transfers.set(key, `${file.name}: ${e.message}`, 'failed')
        setTimeout(() => transfers.done(key), 8000)
      }
    }
  }

  // Downloads: an image whose attachment is not here yet shows how its fetch goes.
  const watched = new WeakSet()
  async function watch (img) {
    const m = BLOB_SRC.exec(img.getAttribute('src') || '')
    if (!m || watched.has(img)) return
    watched.add(img)
    const key = `down:${m[2]}`
    const name = img.getAttribute('alt') || 'attachment'
    const url = withToken(`/api/docs/${m[1]}/transfers/${m[2]}`)
    const shown = () => img.complete && img.naturalWidth > 0
    img.addEventListener('load', () => {
      img.dataset.blob = 'here'
      transfers.done(key)
    })
    while (!stopped && img.isConnected && !shown()) {
      let t
      try {
        const res = await fetch(url)
        t = await res.json()
        if (!res.ok) t = { state: 'failed', error: t.error }
      } catch {
        t = { state: 'failed', error: 'the node does not answer' }
      }
      if (shown()) break
      if (t.state === 'done') {
        transfers.done(key)
        if (!img.complete || img.naturalWidth === 0) {
          const src = img.getAttribute('src')
          img.setAttribute('src', '')
          img.setAttribute('src', src)
        }
        img.dataset.blob = 'here'
        return
      }
      if (t.state === 'failed') {
        img.dataset.blob = 'missing'
        transfers.set(key, `${name}: ${t.error || 'no online peer has it yet'}`, 'failed')
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      } else {
        if (img.dataset.blob !== 'here') img.dataset.blob = 'fetching'
        const pct = t.size ? Math.floor((t.have / t.size) * 100) : 0
        transfers.set(key, `fetching ${name} ${pct}%`, 'busy')
        await new Promise((resolve) => setTimeout(resolve, POLL_MS))
      }
    }
    if (shown()) img.dataset.blob = 'here'
    transfers.done(key)
  }
  const scan = () => editor.view.dom.querySelectorAll('img').forEach((img) => { watch(img) })
  editor.on('update', scan)
  scan()
  return {
    add: (files, at) => { if (!readOnly) add(files, at) },
    stop: () => {
      stopped = true
      editor.off('update', scan)
      transfers.entries.clear()
      transfers.render()
    }
  }
}
