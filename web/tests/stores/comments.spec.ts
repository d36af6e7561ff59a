import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { useCommentsStore, PAGE_SIZE, POLL_BASE_MS } from '@/stores/comments'
import { json, mockFetch, type Call, type Reply } from '../helpers/fetch'
import { comment, sentiment } from '../helpers/fixtures'

const LIST = '/api/articles/hello/comments'

describe('comments store', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('does not poll when every comment has a sentiment', async () => {
    const fetch = mockFetch().on('GET', LIST, json({ comments: [comment(1)] }))
    const store = useCommentsStore()
    await store.load('hello')
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetch.calls).toHaveLength(1)
    expect(store.polling).toBe(false)
  })

  it('re-fetches while a sentiment is pending and stops once it is filled', async () => {
    const fetch = mockFetch()
      .once('GET', LIST, json({ comments: [comment(1, { sentiment: null })] }))
      .on('GET', LIST, json({ comments: [comment(1, { sentiment: sentiment({ label: 'negative', score: 0.1 }) })] }))
    const store = useCommentsStore()
    await store.load('hello')
    expect(store.pendingCount).toBe(1)
    expect(store.polling).toBe(true)

    await vi.advanceTimersByTimeAsync(POLL_BASE_MS - 1)
    expect(fetch.calls).toHaveLength(1)
    await vi.advanceTimersByTimeAsync(1)
    expect(fetch.calls).toHaveLength(2)
    expect(store.pendingCount).toBe(0)
    expect(store.comments[0]!.sentiment?.label).toBe('negative')

    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetch.calls).toHaveLength(2)
    expect(store.polling).toBe(false)
  })

  it('backs off while the sentiment stays pending', async () => {
    const fetch = mockFetch().on('GET', LIST, json({ comments: [comment(1, { sentiment: null })] }))
    const store = useCommentsStore()
    await store.load('hello')
    await vi.advanceTimersByTimeAsync(POLL_BASE_MS)
    expect(fetch.calls).toHaveLength(2)
    await vi.advanceTimersByTimeAsync(POLL_BASE_MS)
    expect(fetch.calls).toHaveLength(2) // the second wait is 1.5x longer
    await vi.advanceTimersByTimeAsync(POLL_BASE_MS / 2)
    expect(fetch.calls).toHaveLength(3)
  })

  it('stops polling when the page is left', async () => {
    const fetch = mockFetch().on('GET', LIST, json({ comments: [comment(1, { sentiment: null })] }))
    const store = useCommentsStore()
    await store.load('hello')
    store.stop()
    await vi.advanceTimersByTimeAsync(60_000)
    expect(fetch.calls).toHaveLength(1)
    expect(store.comments).toEqual([])
  })

  it('starts polling after posting a comment that is still pending', async () => {
    const fetch = mockFetch()
      .on('GET', LIST, json({ comments: [comment(1)] }))
      .on('POST', LIST, json({ comment: comment(2, { body: '太棒了', sentiment: null }) }))
    const store = useCommentsStore()
    await store.load('hello')
    await store.post('太棒了')
    expect(fetch.callsTo('POST', LIST)[0]!.body).toEqual({ comment: { body: '太棒了' } })
    expect(store.comments.map((c) => c.id)).toEqual([2, 1])
    expect(store.polling).toBe(true)
    await vi.advanceTimersByTimeAsync(POLL_BASE_MS)
    expect(fetch.callsTo('GET', LIST)).toHaveLength(2)
  })

  it('does not let an in-flight poll undo a newer local change', async () => {
    let release: (r: Reply) => void = () => undefined
    mockFetch()
      .once('GET', LIST, json({ comments: [comment(1, { sentiment: null })] }))
      .once('GET', LIST, () => new Promise<Reply>((resolve) => (release = resolve)))
      .on('GET', LIST, json({ comments: [comment(2), comment(1)] }))
      .on('DELETE', `${LIST}/1`, { status: 204 })
    const store = useCommentsStore()
    await store.load('hello')
    await vi.advanceTimersByTimeAsync(POLL_BASE_MS) // poll starts, reply held back
    await store.remove(1)
    release(json({ comments: [comment(1, { sentiment: null })] }))
    await vi.advanceTimersByTimeAsync(0)
    expect(store.comments).toEqual([])
  })

  it('corrects a label through the sentiment endpoint', async () => {
    const corrected = comment(1, { sentiment: sentiment({ label: 'negative', score: 0.9, source: 'human' }) })
    const fetch = mockFetch()
      .on('GET', LIST, json({ comments: [comment(1)] }))
      .on('PUT', `${LIST}/1/sentiment`, json({ comment: corrected }))
    const store = useCommentsStore()
    await store.load('hello')
    await store.correct(1, 'negative')
    expect(fetch.callsTo('PUT', `${LIST}/1/sentiment`)[0]!.body).toEqual({ label: 'negative' })
    expect(store.comments[0]!.sentiment).toMatchObject({ label: 'negative', source: 'human' })
  })

  it('deletes a comment', async () => {
    const fetch = mockFetch()
      .on('GET', LIST, json({ comments: [comment(1), comment(2)] }))
      .on('DELETE', `${LIST}/2`, { status: 204 })
    const store = useCommentsStore()
    await store.load('hello')
    await store.remove(2)
    expect(fetch.callsTo('DELETE', `${LIST}/2`)).toHaveLength(1)
    expect(store.comments.map((c) => c.id)).toEqual([1])
  })

  describe('paging', () => {
    // The server's comments, oldest first, answered a page at a time as the API does.
    function server(count: number, pending: (id: number) => boolean = () => false) {
      return (call: Call): Reply => {
        const limit = Number(call.query.get('limit') ?? 20)
        const offset = Number(call.query.get('offset') ?? 0)
        const all = Array.from({ length: count }, (_, i) => comment(i + 1, pending(i + 1) ? { sentiment: null } : {}))
        return json({ comments: all.slice(offset, offset + limit), commentsCount: count })
      }
    }

    it('loads the first page, then more on request, until all are shown', async () => {
      const fetch = mockFetch().on('GET', LIST, server(45))
      const store = useCommentsStore()
      await store.load('hello')
      expect(PAGE_SIZE).toBe(20)
      expect(store.comments.map((c) => c.id)).toEqual(Array.from({ length: 20 }, (_, i) => i + 1))
      expect(store.total).toBe(45)
      expect(store.hasMore).toBe(true)
      await store.loadMore()
      expect(fetch.calls[1]!.query.get('offset')).toBe('20')
      expect(fetch.calls[1]!.query.get('limit')).toBe('20')
      expect(store.comments).toHaveLength(40)
      await store.loadMore()
      expect(store.comments.map((c) => c.id).slice(-5)).toEqual([41, 42, 43, 44, 45])
      expect(store.hasMore).toBe(false)
      await store.loadMore()
      expect(fetch.calls).toHaveLength(3)
    })

    it('polls the pages already shown, not the whole list', async () => {
      const fetch = mockFetch().on('GET', LIST, server(300, (id) => id === 30))
      const store = useCommentsStore()
      await store.load('hello')
      expect(store.polling).toBe(false)
      await store.loadMore()
      expect(store.pendingCount).toBe(1)
      await vi.advanceTimersByTimeAsync(POLL_BASE_MS)
      const poll = fetch.calls[2]!
      expect([poll.query.get('offset'), poll.query.get('limit')]).toEqual(['0', '40'])
      expect(store.comments).toHaveLength(40)
      store.stop()
    })

    it('keeps a comment posted here on top, and counts it once', async () => {
      let count = 40
      const fetch = mockFetch()
        .on('GET', LIST, (call) => server(count)(call))
        .on('POST', LIST, () => {
          count = 41
          return json({ comment: comment(41, { body: 'mine' }) })
        })
      const store = useCommentsStore()
      await store.load('hello')
      await store.post('mine')
      expect(store.comments[0]!.body).toBe('mine')
      expect(store.total).toBe(41)
      expect(store.hasMore).toBe(true)
      await store.loadMore()
      expect(store.comments).toHaveLength(41)
      expect(store.comments.map((c) => c.id).slice(-2)).toEqual([39, 40])
      expect(store.hasMore).toBe(false)
      await store.loadMore()
      expect(fetch.callsTo('GET', LIST)).toHaveLength(2)
    })

    it('works with a server that does not page', async () => {
      mockFetch().on('GET', LIST, json({ comments: [comment(1), comment(2)] }))
      const store = useCommentsStore()
      await store.load('hello')
      expect(store.total).toBe(2)
      expect(store.hasMore).toBe(false)
    })
  })
})
