import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { useCommentsStore, POLL_BASE_MS } from '@/stores/comments'
import { json, mockFetch, type Reply } from '../helpers/fetch'
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
})
