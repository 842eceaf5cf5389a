// The rich-text editor: TipTap v3 on the document's XmlFragment('default') (the node reads and
// writes the same structure as Markdown: src/core/doc/rich), with collaboration carets that
// carry each person's name and colour, a toolbar, the usual shortcuts, and Markdown paste.
import { Editor } from '@tiptap/core'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import CollaborationCaret from '@tiptap/extension-collaboration-caret'
import { TaskList, TaskItem } from '@tiptap/extension-list'
import { TableKit } from '@tiptap/extension-table'
import { Markdown } from '@tiptap/markdown'
import Image from '@tiptap/extension-image'

// Plain text that reads as Markdown (a heading, a list, a quote, a fence, a table, emphasis):
// pasted as structure rather than as one paragraph of symbols.
const MARKDOWN_HINT = /^(#{1,6} |[-*+] |\d+[.)] |> |```|\|.*\|)|\*\*[^*]+\*\*|\[[^\]]+\]\([^)]+\)/m

/** The toolbar's buttons: label, title (with the shortcut), command, and when it is active. */
const BUTTONS = [
  ['H1', 'Heading 1 (Ctrl+Alt+1)', (c) => c.toggleHeading({ level: 1 }), ['heading', { level: 1 }]],
  ['H2', 'Heading 2 (Ctrl+Alt+2)', (c) => c.toggleHeading({ level: 2 }), ['heading', { level: 2 }]],
  ['H3', 'Heading 3 (Ctrl+Alt+3)', (c) => c.toggleHeading({ level: 3 }), ['heading', { level: 3 }]],
  ['B', 'Bold (Ctrl+B)', (c) => c.toggleBold(), ['bold']],
  ['I', 'Italic (Ctrl+I)', (c) => c.toggleItalic(), ['italic']],
  ['U', 'Underline (Ctrl+U)', (c) => c.toggleUnderline(), ['underline']],
  ['S', 'Strikethrough (Ctrl+Shift+S)', (c) => c.toggleStrike(), ['strike']],
  ['</>', 'Inline code (Ctrl+E)', (c) => c.toggleCode(), ['code']],
  ['Link', 'Link (Ctrl+K)', null, ['link']],
  ['•', 'Bullet list (Ctrl+Shift+8)', (c) => c.toggleBulletList(), ['bulletList']],
  ['1.', 'Numbered list (Ctrl+Shift+7)', (c) => c.toggleOrderedList(), ['orderedList']],
  ['☑', 'Task list (Ctrl+Shift+9)', (c) => c.toggleTaskList(), ['taskList']],
  ['❝', 'Quote (Ctrl+Shift+B)', (c) => c.toggleBlockquote(), ['blockquote']],
  ['{ }', 'Code block (Ctrl+Alt+C)', (c) => c.toggleCodeBlock(), ['codeBlock']],
  ['―', 'Horizontal rule', (c) => c.setHorizontalRule(), null],
  ['▦', 'Table', (c) => c.insertTable({ rows: 3, cols: 3, withHeaderRow: true }), ['table']]
]

function askLink (editor) {
  const previous = editor.getAttributes('link').href || ''
  const href = prompt('Link to (empty removes the link)', previous)
  if (href === null) return
  const chain = editor.chain().focus().extendMarkRange('link')
  if (href.trim() === '') chain.unsetLink().run()
  else chain.setLink({ href: href.trim() }).run()
}

/**
 * A rich editor in `element` on `ydoc`, with presence through `provider`; `toolbar` gets the
 * buttons (hidden when `readOnly`); files pasted or dropped go to `onFiles(files, position)`. Returns the TipTap editor (`destroy()` when done).
 */
export function richEditor ({ element, toolbar, ydoc, provider, user, readOnly, onFiles }) {
  const editor = new Editor({
    element,
    editable: !readOnly,
    extensions: [
      // Collaboration brings its own undo, which undoes only this person's changes.
      StarterKit.configure({ undoRedo: false, link: { openOnClick: false, autolink: true } }),
      TaskList,
      TaskItem.configure({ nested: true }),
      TableKit.configure({ table: { resizable: false } }),
      Markdown,
      // Attachments' images (`attachments.js` uploads and inserts them).
      Image.configure({ allowBase64: false }),
      Collaboration.configure({ document: ydoc, field: 'default' }),
      CollaborationCaret.configure({ provider, user })
    ],
    editorProps: {
      attributes: { class: 'prose', spellcheck: 'true' },
      handlePaste: (view, event) => {
        const data = event.clipboardData
        // Files become attachments (attachments.js); but a spreadsheet's or a word processor's
        // copy also carries a picture of itself beside its HTML: that pastes as content.
        if (data && data.files.length && onFiles && !data.types.includes('text/html')) {
          onFiles([...data.files])
          return true
        }
        if (!data || data.types.includes('text/html')) return false // a web page keeps its structure
        const text = data.getData('text/plain')
        if (!MARKDOWN_HINT.test(text)) return false
        editor.commands.insertContent(text, { contentType: 'markdown' })
        return true
      },
      handleDrop: (view, event) => {
        const files = event.dataTransfer ? [...event.dataTransfer.files] : []
        if (!files.length || !onFiles) return false
        const at = view.posAtCoords({ left: event.clientX, top: event.clientY })
        onFiles(files, at ? at.pos : undefined)
        return true
      },
      handleKeyDown: (view, event) => {
        if ((event.ctrlKey || event.metaKey) && event.key.toLowerCase() === 'k') {
          askLink(editor)
          return true
        }
        return false
      }
    }
  })
  toolbar.replaceChildren()
  toolbar.hidden = readOnly
  const buttons = BUTTONS.map(([label, title, command, active]) => {
    const button = document.createElement('button')
    button.type = 'button'
    button.textContent = label
    button.title = title
    button.setAttribute('aria-label', title)
    button.onmousedown = (e) => e.preventDefault() // keep the selection in the editor
    button.onclick = () => command ? command(editor.chain().focus()).run() : askLink(editor)
    toolbar.append(button)
    return [button, active]
  })
  const refresh = () => {
    for (const [button, active] of buttons) {
      button.classList.toggle('on', !!active && editor.isActive(...active))
    }
  }
  editor.on('selectionUpdate', refresh)
  editor.on('transaction', refresh)
  return editor
}
