import { describe, expect, it } from 'vitest'
import { mount } from '@vue/test-utils'
import MarkdownView from '@/components/common/MarkdownView.vue'
import { renderMarkdown } from '@/lib/markdown'

describe('Markdown rendering', () => {
  it('renders Markdown to HTML', () => {
    const w = mount(MarkdownView, { props: { source: '# 标题\n\nsome **bold** and `code`\n\n- a\n- b' } })
    expect(w.get('h1').text()).toBe('标题')
    expect(w.get('strong').text()).toBe('bold')
    expect(w.findAll('li')).toHaveLength(2)
  })

  it('strips <script> elements', () => {
    const w = mount(MarkdownView, { props: { source: 'hi <script>window.pwned = 1</script> there' } })
    expect(w.find('script').exists()).toBe(false)
    expect(w.html()).not.toContain('pwned')
    expect(w.text()).toContain('hi')
  })

  it('strips event handler attributes such as onerror=', () => {
    const w = mount(MarkdownView, { props: { source: '<img src="x.png" onerror="alert(1)"> <a href="/a" onclick="alert(2)">a</a>' } })
    const img = w.get('img')
    expect(img.attributes('src')).toBe('x.png')
    expect(img.attributes('onerror')).toBeUndefined()
    expect(w.get('a').attributes('onclick')).toBeUndefined()
    expect(w.html()).not.toMatch(/onerror|onclick|alert/)
  })

  it('drops javascript: links, from Markdown and from raw HTML', () => {
    const html = renderMarkdown('[click](javascript:alert(1)) <a href="javascript:alert(2)">x</a>')
    expect(html).not.toContain('javascript:')
    expect(html).toContain('click')
  })

  it('removes iframes and inline SVG scripts', () => {
    const html = renderMarkdown('<iframe src="https://evil.example"></iframe><svg><script>alert(1)</script></svg>')
    expect(html).not.toMatch(/iframe|script|alert/)
  })

  it('gives links that open a new tab rel="noopener noreferrer"', () => {
    const html = renderMarkdown('<a href="https://example.com" target="_blank">ext</a> <a href="/b" target="x">b</a>')
    expect(html).toContain('target="_blank" rel="noopener noreferrer"')
    expect(html).not.toContain('target="x"')
  })
})
