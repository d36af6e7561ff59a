import { describe, expect, it } from 'vitest'
import { feedbackApi } from '@/api'
import { REVIEW_PAGE_SIZE, decisionFor, relabelTarget, useFeedbackStore } from '@/stores/feedback'
import { useMonitoringStore } from '@/stores/monitoring'
import { json, mockFetch } from '../helpers/fetch'
import { feedbackSample, feedbackStats } from '../helpers/fixtures'

const list = (samples: ReturnType<typeof feedbackSample>[], total = samples.length) =>
  json({ samples, total, limit: REVIEW_PAGE_SIZE, offset: 0 })

describe('feedback API', () => {
  it('lists samples with status, limit and offset in the query', async () => {
    const fetch = mockFetch().on('GET', '/v1/feedback/samples', list([feedbackSample(1)], 3))
    const page = await feedbackApi.samples({ status: 'review', limit: 20, offset: 0 })
    expect(page.total).toBe(3)
    expect(page.samples[0]!.id).toBe(1)
    const call = fetch.calls[0]!
    expect(Object.fromEntries(call.query)).toEqual({ status: 'review', limit: '20', offset: '0' })
  })

  it('PUTs a review decision and returns the updated sample', async () => {
    const fetch = mockFetch().on('PUT', '/v1/feedback/samples/7', (call) =>
      json({ sample: feedbackSample(7, { status: 'accepted', source: 'human', label: 'negative', labeler: 'review:admin', ...(call.body as object) }) }),
    )
    const sample = await feedbackApi.review(7, { status: 'accepted', label: 'negative' })
    expect(fetch.calls[0]!.body).toEqual({ status: 'accepted', label: 'negative' })
    expect(fetch.calls[0]!.headers['Content-Type']).toBe('application/json')
    expect(sample).toMatchObject({ id: 7, status: 'accepted', source: 'human', label: 'negative' })
  })

  it('turns a 422 into an ApiError with the code and message', async () => {
    mockFetch().on('PUT', '/v1/feedback/samples/7', json({ error: { code: 'invalid_request', message: 'a rejected sample takes no label' } }, 422))
    await expect(feedbackApi.review(7, { status: 'rejected', label: 'positive' })).rejects.toMatchObject({
      status: 422,
      code: 'invalid_request',
      message: 'a rejected sample takes no label',
    })
  })

  it('reads the new stats shape', async () => {
    mockFetch().on('GET', '/v1/feedback/stats', json(feedbackStats({ next_run: { selected: 9, dropped: { author_cap: 2 } } })))
    const stats = await feedbackApi.stats()
    expect(stats.by_status.review).toBe(1)
    expect(stats.next_run.dropped.author_cap).toBe(2)
    expect(stats.labeler.source).toBe('llm')
  })
})

describe('review decisions', () => {
  it('relabels as the opposite label, or as the model label when the sample is neutral', () => {
    expect(relabelTarget({ label: 'positive', model_label: 'negative' })).toBe('negative')
    expect(relabelTarget({ label: 'negative', model_label: null })).toBe('positive')
    expect(relabelTarget({ label: 'neutral', model_label: 'positive' })).toBe('positive')
    expect(relabelTarget({ label: 'neutral', model_label: null })).toBeNull()
  })

  it('maps each action to the PUT body', () => {
    const s = { label: 'positive' as const, model_label: 'negative' }
    expect(decisionFor(s, 'accept')).toEqual({ status: 'accepted' })
    expect(decisionFor(s, 'relabel')).toEqual({ status: 'accepted', label: 'negative' })
    expect(decisionFor(s, 'reject')).toEqual({ status: 'rejected' })
    expect(decisionFor({ label: 'neutral', model_label: null }, 'accept')).toBeNull()
  })
})

describe('feedback store', () => {
  it('loads the first page of held samples', async () => {
    const fetch = mockFetch().on('GET', '/v1/feedback/samples', list([feedbackSample(1), feedbackSample(2)], 2))
    const store = useFeedbackStore()
    await store.load()
    expect(store.samples.map((s) => s.id)).toEqual([1, 2])
    expect(store.total).toBe(2)
    expect(store.loaded).toBe(true)
    expect(fetch.calls[0]!.query.get('status')).toBe('review')
    expect(fetch.calls[0]!.query.get('limit')).toBe(String(REVIEW_PAGE_SIZE))
  })

  it('removes a decided row and refreshes the counts', async () => {
    let held = 2
    const fetch = mockFetch()
      .on('GET', '/v1/feedback/samples', list([feedbackSample(1), feedbackSample(2)]))
      .on('PUT', '/v1/feedback/samples/1', () => {
        held = 1
        return json({ sample: feedbackSample(1, { status: 'rejected' }) })
      })
      .on('GET', '/v1/feedback/stats', () => json(feedbackStats({ by_status: { accepted: 5, review: held, rejected: 1 } })))
    const store = useFeedbackStore()
    await store.load()
    expect(await store.decide(store.samples[0]!, 'reject')).toBe(true)
    expect(fetch.callsTo('PUT', '/v1/feedback/samples/1')[0]!.body).toEqual({ status: 'rejected' })
    expect(store.samples.map((s) => s.id)).toEqual([2])
    expect(store.total).toBe(1)
    expect(store.deciding).toEqual([])
    expect(useMonitoringStore().feedback?.by_status.review).toBe(1)
    // Everything held is listed: no need to fetch the list again.
    expect(fetch.callsTo('GET', '/v1/feedback/samples')).toHaveLength(1)
  })

  it('fetches the list again after a decision when more are held than listed', async () => {
    const fetch = mockFetch()
      .once('GET', '/v1/feedback/samples', list([feedbackSample(1)], 2))
      .on('GET', '/v1/feedback/samples', list([feedbackSample(2)], 1))
      .on('PUT', '/v1/feedback/samples/1', json({ sample: feedbackSample(1, { status: 'accepted' }) }))
      .on('GET', '/v1/feedback/stats', json(feedbackStats()))
    const store = useFeedbackStore()
    await store.load()
    await store.decide(store.samples[0]!, 'accept')
    expect(fetch.callsTo('GET', '/v1/feedback/samples')).toHaveLength(2)
    expect(store.samples.map((s) => s.id)).toEqual([2])
    expect(store.total).toBe(1)
  })

  it('keeps the row and shows the error when a decision fails, drops it on 404', async () => {
    mockFetch()
      .on('GET', '/v1/feedback/samples', list([feedbackSample(1), feedbackSample(2)]))
      .on('PUT', '/v1/feedback/samples/1', json({ error: { code: 'internal', message: 'database is locked' } }, 500))
      .on('PUT', '/v1/feedback/samples/2', json({ error: { code: 'not_found', message: 'no sample 2' } }, 404))
      .on('GET', '/v1/feedback/stats', json(feedbackStats()))
    const store = useFeedbackStore()
    await store.load()
    expect(await store.decide(store.samples[0]!, 'accept')).toBe(false)
    expect(store.samples.map((s) => s.id)).toEqual([1, 2])
    expect(store.decideError).toMatchObject({ status: 500, message: 'database is locked' })
    expect(await store.decide(store.samples[1]!, 'reject')).toBe(false)
    expect(store.samples.map((s) => s.id)).toEqual([1])
    expect(store.decideError).toMatchObject({ status: 404 })
  })

  it('keeps the list when reloading fails', async () => {
    mockFetch()
      .once('GET', '/v1/feedback/samples', list([feedbackSample(1)]))
      .on('GET', '/v1/feedback/samples', json({ error: { code: 'feedback_disabled', message: 'off' } }, 404))
    const store = useFeedbackStore()
    await store.load()
    await store.load()
    expect(store.samples.map((s) => s.id)).toEqual([1])
    expect(store.error).toMatchObject({ code: 'feedback_disabled' })
  })
})
