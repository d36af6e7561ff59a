// Every page rendered through the real App shell, router and stores, against a stubbed API.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import App from '@/App.vue'
import { useAuthStore } from '@/stores/auth'
import { useCommentsStore } from '@/stores/comments'
import { mountApp } from '../helpers/mount'
import { json, mockFetch, type FetchMock } from '../helpers/fetch'
import { article, comment, profile, sentiment, user } from '../helpers/fixtures'

let fetch: FetchMock
let warn: ReturnType<typeof vi.spyOn>

beforeEach(() => {
  warn = vi.spyOn(console, 'warn')
  fetch = mockFetch()
    .on('GET', '/api/tags', json({ tags: ['旅行', 'rust'] }))
    .on('GET', '/api/articles', json({ articles: [article(), article({ slug: 'two', title: 'Two' })], articlesCount: 25 }))
    .on('GET', '/api/articles/feed', json({ articles: [], articlesCount: 0 }))
    .on('GET', '/api/articles/hello', json({ article: article({ body: '## Sub\n\n<img src=x onerror=alert(1)>' }) }))
    .on(
      'GET',
      '/api/articles/hello/comments',
      json({
        comments: [
          comment(1, { sentiment: sentiment({ source: 'pseudo' }) }),
          comment(2, { sentiment: sentiment({ label: 'negative', score: 0.2, source: 'human' }) }),
        ],
      }),
    )
    .on('GET', '/api/profiles/li', json({ profile: profile({ bio: '写代码的' }) }))
    .on('GET', '/api/articles/missing', json({ error: { code: 'not_found', message: 'article not found' } }, 404))
})

afterEach(() => {
  useCommentsStore().stop()
  expect(warn).not.toHaveBeenCalled()
})

describe('pages', () => {
  it('home: banner, global feed, popular tags and pagination from articlesCount', async () => {
    const { wrapper } = await mountApp(App, { path: '/' })
    expect(wrapper.find('.banner').exists()).toBe(true)
    expect(wrapper.findAll('[data-testid="article-preview"]')).toHaveLength(2)
    expect(wrapper.get('[data-testid="popular-tags"]').text()).toContain('旅行')
    expect(wrapper.findAll('[data-testid="pagination"] li')).toHaveLength(3)
    expect(wrapper.find('[data-testid="tab-your-feed"]').exists()).toBe(false)
  })

  it('home: page 2 of a tag asks for the right slice', async () => {
    await mountApp(App, { path: '/tag/旅行?page=2' })
    const call = fetch.callsTo('GET', '/api/articles')[0]!
    expect(call.query.get('tag')).toBe('旅行')
    expect(call.query.get('offset')).toBe('10')
  })

  it('article: sanitised body, tags and comments with their chips', async () => {
    const { wrapper } = await mountApp(App, { path: '/article/hello' })
    expect(wrapper.get('[data-testid="article-title"]').text()).toBe('Hello')
    expect(wrapper.get('[data-testid="markdown"] h2').text()).toBe('Sub')
    expect(wrapper.get('[data-testid="markdown"]').html()).not.toContain('onerror')
    const chips = wrapper.findAll('[data-testid="sentiment-chip"]')
    expect(chips.map((c) => [c.attributes('data-label'), c.attributes('data-source')])).toEqual([
      ['positive', 'pseudo'],
      ['negative', 'human'],
    ])
    expect(wrapper.find('[data-testid="comment-input"]').exists()).toBe(false)
  })

  it('article: the author sees edit, delete and the correction controls', async () => {
    useAuthStore().user = user({ username: 'li' })
    const { wrapper } = await mountApp(App, { path: '/article/hello' })
    expect(wrapper.findAll('[data-testid="article-edit"]')).toHaveLength(2)
    expect(wrapper.find('[data-testid="follow-button"]').exists()).toBe(false)
    expect(wrapper.findAll('[data-testid="sentiment-correct"]')).toHaveLength(2)
    expect(wrapper.find('[data-testid="comment-input"]').exists()).toBe(true)
  })

  it('article: an unknown slug says so', async () => {
    const { wrapper } = await mountApp(App, { path: '/article/missing' })
    expect(wrapper.get('[data-testid="article-not-found"]').text()).toContain('does not exist')
  })

  it('profile: user info, follow button and their articles', async () => {
    const { wrapper } = await mountApp(App, { path: '/profile/li' })
    expect(wrapper.get('[data-testid="profile-username"]').text()).toBe('li')
    expect(wrapper.text()).toContain('写代码的')
    expect(wrapper.find('[data-testid="follow-button"]').exists()).toBe(true)
    expect(fetch.callsTo('GET', '/api/articles')[0]!.query.get('author')).toBe('li')
    expect(wrapper.get('.feed-toggle').text()).toContain('Articles')
    expect(wrapper.get('.feed-toggle').text()).not.toContain('My Articles')
  })

  it('profile: your own profile says "My Articles" and offers the settings', async () => {
    useAuthStore().user = user({ username: 'li' })
    const { wrapper } = await mountApp(App, { path: '/profile/li' })
    expect(wrapper.get('.feed-toggle').text()).toContain('My Articles')
    expect(wrapper.find('[data-testid="follow-button"]').exists()).toBe(false)
  })

  it('editor: publishes title, description, body and tags, then opens the article', async () => {
    useAuthStore().user = user()
    fetch.on('POST', '/api/articles', json({ article: article({ slug: 'new-post', title: '新文章' }) }))
    fetch.on('GET', '/api/articles/new-post', json({ article: article({ slug: 'new-post', title: '新文章' }) }))
    fetch.on('GET', '/api/articles/new-post/comments', json({ comments: [] }))
    const { wrapper, router } = await mountApp(App, { path: '/editor' })
    await wrapper.get('[data-testid="editor-title"]').setValue('新文章')
    await wrapper.get('[data-testid="editor-description"]').setValue('关于')
    await wrapper.get('[data-testid="editor-body"]').setValue('正文')
    const tags = wrapper.get('[data-testid="editor-tags"]')
    await tags.setValue('美食')
    await tags.trigger('keydown', { key: 'Enter' })
    await tags.setValue('旅行，生活')
    await wrapper.get('[data-testid="editor-publish"]').trigger('click')
    await flushPromises()
    expect(fetch.callsTo('POST', '/api/articles')[0]!.body).toEqual({
      article: { title: '新文章', description: '关于', body: '正文', tagList: ['美食', '旅行', '生活'] },
    })
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/article/new-post'))
  })

  it('editor and settings send signed-out visitors to login', async () => {
    const { router } = await mountApp(App, { path: '/settings' })
    expect(router.currentRoute.value.name).toBe('login')
    expect(router.currentRoute.value.query.redirect).toBe('/settings')
  })

  it('settings: sends only what changed', async () => {
    useAuthStore().user = user({ bio: 'old' })
    fetch.on('PUT', '/api/user', json({ user: user({ bio: 'new' }) }))
    const { wrapper } = await mountApp(App, { path: '/settings' })
    await wrapper.get('[data-testid="settings-bio"]').setValue('new')
    await wrapper.get('[data-testid="settings-form"]').trigger('submit')
    await flushPromises()
    expect(fetch.callsTo('PUT', '/api/user')[0]!.body).toEqual({ user: { bio: 'new' } })
  })

  it('unknown addresses show the not-found page', async () => {
    const { wrapper } = await mountApp(App, { path: '/no/such/page' })
    expect(wrapper.text()).toContain('Page not found')
  })
})
