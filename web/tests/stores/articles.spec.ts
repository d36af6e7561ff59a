import { describe, expect, it } from 'vitest'
import { useArticlesStore, PAGE_SIZE } from '@/stores/articles'
import { useArticleStore } from '@/stores/article'
import { json, mockFetch, type Reply } from '../helpers/fetch'
import { article, profile } from '../helpers/fixtures'

describe('articles store', () => {
  it('loads a page of the global feed with limit and offset', async () => {
    const fetch = mockFetch().on('GET', '/api/articles', json({ articles: [article()], articlesCount: 31 }))
    const store = useArticlesStore()
    await store.load({ kind: 'global' }, 3)
    const q = fetch.calls[0]!.query
    expect(q.get('limit')).toBe(String(PAGE_SIZE))
    expect(q.get('offset')).toBe(String(2 * PAGE_SIZE))
    expect(store.articles).toHaveLength(1)
    expect(store.articlesCount).toBe(31)
    expect(store.page).toBe(3)
  })

  it('uses /feed for the personal feed and the filters for the others', async () => {
    const empty = json({ articles: [], articlesCount: 0 })
    const fetch = mockFetch().on('GET', '/api/articles/feed', empty).on('GET', '/api/articles', empty)
    const store = useArticlesStore()
    await store.load({ kind: 'feed' })
    await store.load({ kind: 'tag', tag: '美食' })
    await store.load({ kind: 'favorited', username: 'li' })
    expect(fetch.calls.map((c) => c.path)).toEqual(['/api/articles/feed', '/api/articles', '/api/articles'])
    expect(fetch.calls[1]!.query.get('tag')).toBe('美食')
    expect(fetch.calls[2]!.query.get('favorited')).toBe('li')
  })

  it('ignores a slower earlier response', async () => {
    let releaseFirst: (r: Reply) => void = () => undefined
    const fetch = mockFetch()
      .once('GET', '/api/articles', () => new Promise<Reply>((resolve) => (releaseFirst = resolve)))
      .on('GET', '/api/articles', json({ articles: [article({ slug: 'newer' })], articlesCount: 1 }))
    const store = useArticlesStore()
    const first = store.load({ kind: 'tag', tag: 'old' })
    await Promise.resolve()
    await store.load({ kind: 'global' })
    releaseFirst(json({ articles: [article({ slug: 'older' })], articlesCount: 1 }))
    await first
    expect(fetch.calls).toHaveLength(2)
    expect(store.articles.map((a) => a.slug)).toEqual(['newer'])
    expect(store.loading).toBe(false)
  })

  it('records a failed load as the error and empties the list', async () => {
    mockFetch().on('GET', '/api/articles', json({ error: { code: 'internal', message: 'boom' } }, 500))
    const store = useArticlesStore()
    await store.load({ kind: 'global' })
    expect(store.error).toMatchObject({ status: 500, code: 'internal' })
    expect(store.articles).toEqual([])
  })

  it('toggles a favourite in the list', async () => {
    const fetch = mockFetch()
      .on('GET', '/api/articles', json({ articles: [article()], articlesCount: 1 }))
      .on('POST', '/api/articles/hello/favorite', json({ article: article({ favorited: true, favoritesCount: 1 }) }))
    const store = useArticlesStore()
    await store.load({ kind: 'global' })
    await store.toggleFavorite('hello')
    expect(fetch.callsTo('POST', '/api/articles/hello/favorite')).toHaveLength(1)
    expect(store.articles[0]).toMatchObject({ favorited: true, favoritesCount: 1 })
  })
})

describe('article store', () => {
  it('creates, then updates by slug', async () => {
    const fetch = mockFetch()
      .on('POST', '/api/articles', json({ article: article({ slug: 'new-one' }) }))
      .on('PUT', '/api/articles/new-one', json({ article: article({ slug: 'new-one', title: 'Edited' }) }))
    const store = useArticleStore()
    const draft = { title: 'New one', description: 'd', body: 'b', tagList: ['x'] }
    await store.save(draft)
    expect(fetch.calls[0]!.body).toEqual({ article: draft })
    const saved = await store.save({ ...draft, title: 'Edited' }, 'new-one')
    expect(saved.title).toBe('Edited')
    expect(store.article?.title).toBe('Edited')
  })

  it('follows the author and keeps the body when favouriting', async () => {
    mockFetch()
      .on('GET', '/api/articles/hello', json({ article: article({ body: 'full body' }) }))
      .on('POST', '/api/profiles/li/follow', json({ profile: profile({ following: true }) }))
      .on('POST', '/api/articles/hello/favorite', json({ article: { ...article({ favorited: true, author: profile({ following: true }) }), body: undefined } }))
    const store = useArticleStore()
    await store.load('hello')
    await store.toggleFollow()
    await store.toggleFavorite()
    expect(store.article?.author.following).toBe(true)
    expect(store.article?.favorited).toBe(true)
    expect(store.article?.body).toBe('full body')
  })
})
