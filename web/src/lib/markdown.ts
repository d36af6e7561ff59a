// Markdown to sanitised HTML: marked renders, DOMPurify removes scripts, event handlers
// and javascript: URLs before anything reaches v-html.
import { Marked } from 'marked'
import DOMPurify from 'dompurify'

const marked = new Marked({ gfm: true, breaks: true, async: false })

let hooked = false
function installHooks(): void {
  if (hooked) return
  hooked = true
  // `target` is allowed only as _blank, and such a link must not hand the new tab our window.
  DOMPurify.addHook('afterSanitizeAttributes', (node) => {
    if (!node.hasAttribute('target')) return
    if (node.tagName === 'A' && node.getAttribute('target') === '_blank') {
      node.setAttribute('rel', 'noopener noreferrer')
    } else {
      node.removeAttribute('target')
    }
  })
}

export function renderMarkdown(source: string): string {
  installHooks()
  const html = marked.parse(source, { async: false })
  return DOMPurify.sanitize(html, { USE_PROFILES: { html: true }, ADD_ATTR: ['target'] })
}
