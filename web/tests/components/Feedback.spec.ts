import { describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import { ApiError } from '@/api'
import FeedbackPanel from '@/components/dashboard/FeedbackPanel.vue'
import FeedbackReview from '@/components/dashboard/FeedbackReview.vue'
import { useMonitoringStore } from '@/stores/monitoring'
import { mountApp } from '../helpers/mount'
import { json, mockFetch, type Call } from '../helpers/fetch'
import { feedbackSample, feedbackStats } from '../helpers/fixtures'

describe('feedback panel', () => {
  it('shows the counts by source, label and status (review, not held)', async () => {
    const { wrapper } = await mountApp(FeedbackPanel, { props: { stats: feedbackStats(), error: null } })
    const keys = wrapper.findAll('.count-bars__row').map((r) => r.attributes('data-key'))
    expect(keys).toEqual(['llm', 'pseudo', 'human', 'positive', 'negative', 'neutral', 'accepted', 'review', 'rejected'])
    const review = wrapper.get('.count-bars__row[data-key="review"]')
    expect(review.text()).toContain('for review')
    expect(review.get('[data-testid="count"]').text()).toBe('1')
    expect(review.find('.count-bars__fill--review').exists()).toBe(true)
  })

  it('names the LLM labeler, the waiting and failed comments and the next run', async () => {
    const stats = feedbackStats({
      comments: { pending: 4, labeled: 6, duplicate: 1, failed: 2 },
      next_run: { selected: 1234, dropped: { author_cap: 12, class_balance: 3, something_new: 1, neutral: 0 } },
    })
    const { wrapper } = await mountApp(FeedbackPanel, { props: { stats, error: null } })
    expect(wrapper.find('[data-testid="feedback-stats"]').exists()).toBe(true)
    expect(wrapper.get('[data-testid="feedback-labeler"]').text()).toBe('Labeler: LLM: qwen2.5-7b-instruct')
    const comments = wrapper.get('[data-testid="feedback-comments"]').text()
    expect(comments).toContain('Comments waiting for a label: 4')
    expect(comments).toContain('2 failed')
    expect(wrapper.get('[data-testid="feedback-next-run"]').text()).toBe(
      'The next run would train on 1,234 samples. Left out: 12 over the per-author cap, 3 for class balance, 1 something new.',
    )
  })

  it('says when the labels are the model’s own predictions and nothing is left out, in Chinese too', async () => {
    const stats = feedbackStats({ labeler: { source: 'pseudo', model: null }, next_run: { selected: 1, dropped: {} } })
    const { wrapper } = await mountApp(FeedbackPanel, { props: { stats, error: null } })
    expect(wrapper.get('[data-testid="feedback-labeler"]').text()).toContain("the model's own predictions (pseudo)")
    expect(wrapper.get('[data-testid="feedback-next-run"]').text()).toBe('The next run would train on 1 sample.')

    const zh = await mountApp(FeedbackPanel, {
      props: { stats: feedbackStats({ next_run: { selected: 8, dropped: { low_confidence: 2 } } }), error: null },
      locale: 'zh-CN',
    })
    expect(zh.wrapper.get('.count-bars__row[data-key="review"]').text()).toContain('待审核')
    expect(zh.wrapper.get('[data-testid="feedback-labeler"]').text()).toContain('大模型：qwen2.5-7b-instruct')
    expect(zh.wrapper.get('[data-testid="feedback-next-run"]').text()).toBe('下一次训练将使用 8 个样本。未采用：低于置信度阈值 2 个。')
  })

  it('says when the server runs no feedback loop', async () => {
    const error = new ApiError(404, 'feedback_disabled', 'the feedback loop does not run in this orchestrator')
    const { wrapper } = await mountApp(FeedbackPanel, { props: { stats: null, error } })
    expect(wrapper.get('[data-testid="error-messages"]').text()).toBe('The feedback loop does not run on this server.')
    expect(wrapper.find('[data-testid="feedback-next-run"]').exists()).toBe(false)
  })

  it('treats a label the server left out as 0', async () => {
    const stats = feedbackStats({ by_label: { positive: 4, negative: 2 } as never })
    const { wrapper } = await mountApp(FeedbackPanel, { props: { stats, error: null } })
    expect(wrapper.get('.count-bars__row[data-key="neutral"] [data-testid="count"]').text()).toBe('0')
  })
})

describe('review list', () => {
  function stubReview(ids: number[]) {
    let held = [...ids]
    const puts: Call[] = []
    const fetch = mockFetch()
      .on('GET', '/v1/feedback/samples', () =>
        json({ samples: held.map((id) => feedbackSample(id)), total: held.length, limit: 20, offset: 0 }),
      )
      .on('PUT', /^\/v1\/feedback\/samples\/\d+$/, (call) => {
        puts.push(call)
        const id = Number(call.path.split('/').pop())
        held = held.filter((h) => h !== id)
        return json({ sample: feedbackSample(id, { status: (call.body as { status: 'accepted' | 'rejected' }).status }) })
      })
      .on('GET', '/v1/feedback/stats', () => json(feedbackStats({ by_status: { accepted: 5, review: held.length, rejected: 0 } })))
    return { fetch, puts }
  }

  it('lists the held samples with both opinions, the reason and the topics', async () => {
    const { fetch } = stubReview([1, 2])
    const { wrapper } = await mountApp(FeedbackReview)
    expect(fetch.calls[0]!.path).toBe('/v1/feedback/samples')
    expect(Object.fromEntries(fetch.calls[0]!.query)).toEqual({ status: 'review', limit: '20', offset: '0' })
    const rows = wrapper.findAll('[data-testid="review-row"]')
    expect(rows.map((r) => r.attributes('data-sample-id'))).toEqual(['1', '2'])
    const row = rows[0]!
    expect(row.text()).toContain('样本 1：房间不大，但是很干净')
    expect(row.get('[data-testid="review-labeler-label"]').text()).toBe('LLM positive 86%')
    // model_score is P(positive): a negative at 0.12 is 88% sure.
    const model = row.get('[data-testid="review-model-label"]')
    expect(model.text()).toBe('Model negative 88%')
    expect(model.attributes('title')).toContain('0.120')
    expect(row.get('[data-testid="review-reason"]').text()).toContain('small room but clean')
    expect(row.findAll('.review-item__topics li').map((li) => li.text())).toEqual(['room', 'cleanliness'])
    expect(row.get('[data-testid="review-accept-1"]').text()).toBe('Accept as positive')
    expect(row.get('[data-testid="review-relabel-1"]').text()).toBe('Relabel as negative')
    expect(row.get('[data-testid="review-reject-1"]').text()).toBe('Reject')
    expect(wrapper.get('[data-testid="review-total"]').text()).toBe('2 of 2')
  })

  it.each([
    ['accept', { status: 'accepted' }],
    ['relabel', { status: 'accepted', label: 'negative' }],
    ['reject', { status: 'rejected' }],
  ])('%s sends its PUT, removes the row and refreshes the counts', async (action, body) => {
    const { fetch, puts } = stubReview([1, 2])
    const { wrapper } = await mountApp(FeedbackReview)
    await wrapper.get(`[data-testid="review-${action}-1"]`).trigger('click')
    await flushPromises()
    expect(puts).toHaveLength(1)
    expect(puts[0]!.path).toBe('/v1/feedback/samples/1')
    expect(puts[0]!.body).toEqual(body)
    expect(wrapper.findAll('[data-testid="review-row"]').map((r) => r.attributes('data-sample-id'))).toEqual(['2'])
    expect(fetch.callsTo('GET', '/v1/feedback/stats')).toHaveLength(1)
    expect(useMonitoringStore().feedback?.by_status.review).toBe(1)
    expect(wrapper.get('[data-testid="review-total"]').text()).toBe('1 of 1')
  })

  it('relabels a negative LLM label as positive', async () => {
    const puts: Call[] = []
    mockFetch()
      .on('GET', '/v1/feedback/samples', json({ samples: [feedbackSample(3, { label: 'negative', model_label: 'positive', model_score: 0.95 })], total: 1, limit: 20, offset: 0 }))
      .on('PUT', '/v1/feedback/samples/3', (call) => {
        puts.push(call)
        return json({ sample: feedbackSample(3, { status: 'accepted', label: 'positive', source: 'human' }) })
      })
      .on('GET', '/v1/feedback/stats', json(feedbackStats({ by_status: { accepted: 6, review: 0, rejected: 0 } })))
    const { wrapper } = await mountApp(FeedbackReview)
    expect(wrapper.get('[data-testid="review-model-label"]').text()).toBe('Model positive 95%')
    const relabel = wrapper.get('[data-testid="review-relabel-3"]')
    expect(relabel.text()).toBe('Relabel as positive')
    await relabel.trigger('click')
    await flushPromises()
    expect(puts[0]!.body).toEqual({ status: 'accepted', label: 'positive' })
    expect(wrapper.find('[data-testid="review-row"]').exists()).toBe(false)
    expect(wrapper.get('[data-testid="review-empty"]').text()).toBe('Nothing is held for review.')
  })

  it('says so when nothing is held', async () => {
    mockFetch().on('GET', '/v1/feedback/samples', json({ samples: [], total: 0, limit: 20, offset: 0 }))
    const { wrapper } = await mountApp(FeedbackReview, { locale: 'zh-CN' })
    expect(wrapper.find('[data-testid="review-row"]').exists()).toBe(false)
    expect(wrapper.get('[data-testid="review-empty"]').text()).toBe('没有待审核的样本。')
  })

  it('shows a failed decision with the error messages and keeps the row', async () => {
    mockFetch()
      .on('GET', '/v1/feedback/samples', json({ samples: [feedbackSample(1)], total: 1, limit: 20, offset: 0 }))
      .on('PUT', '/v1/feedback/samples/1', json({ error: { code: 'invalid_request', message: 'status must be accepted or rejected' } }, 422))
    const { wrapper } = await mountApp(FeedbackReview)
    await wrapper.get('[data-testid="review-accept-1"]').trigger('click')
    await flushPromises()
    expect(wrapper.get('[data-testid="error-messages"]').text()).toContain('status must be accepted or rejected')
    expect(wrapper.findAll('[data-testid="review-row"]')).toHaveLength(1)
    expect(wrapper.get('[data-testid="review-accept-1"]').attributes('disabled')).toBeUndefined()
  })

  it('shows a failed load with the error messages', async () => {
    mockFetch().on('GET', '/v1/feedback/samples', json({ error: { code: 'forbidden', message: 'admins only' } }, 403))
    const { wrapper } = await mountApp(FeedbackReview)
    expect(wrapper.get('[data-testid="error-messages"]').text()).toBe('You are not allowed to do that.')
    expect(wrapper.find('[data-testid="review-empty"]').exists()).toBe(false)
  })

  it('fetches the list again when the polled count of held samples changes', async () => {
    const { fetch } = stubReview([1])
    const { wrapper } = await mountApp(FeedbackReview)
    expect(fetch.callsTo('GET', '/v1/feedback/samples')).toHaveLength(1)
    const monitoring = useMonitoringStore()
    monitoring.feedback = feedbackStats({ by_status: { accepted: 5, review: 1, rejected: 0 } })
    await flushPromises()
    expect(fetch.callsTo('GET', '/v1/feedback/samples')).toHaveLength(1)
    monitoring.feedback = feedbackStats({ by_status: { accepted: 5, review: 3, rejected: 0 } })
    await flushPromises()
    expect(fetch.callsTo('GET', '/v1/feedback/samples')).toHaveLength(2)
    wrapper.unmount()
  })
})
