import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import TryView from '@/views/TryView.vue'
import { PREDICT_DEBOUNCE_MS } from '@/composables/usePrediction'
import { mountApp } from '../helpers/mount'
import { json, mockFetch } from '../helpers/fetch'

const prediction = (text: string) =>
  json({
    label: text.includes('差') ? 'negative' : 'positive',
    score: text.includes('差') ? 0.08 : 0.97,
    probabilities: text.includes('差') ? { negative: 0.92, positive: 0.08 } : { negative: 0.03, positive: 0.97 },
    model_version: '20261128T215703551Z-dd35798f',
  })

describe('Try it page', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('debounces typing into one inference call with the latest text', async () => {
    const fetch = mockFetch().on('POST', '/v1/sentiment', (call) => prediction((call.body as { text: string }).text))
    const { wrapper } = await mountApp(TryView, { path: '/try' })
    const input = wrapper.get('[data-testid="try-input"]')
    for (const text of ['质', '质量', '质量太差了']) {
      await input.setValue(text)
      await vi.advanceTimersByTimeAsync(100)
    }
    expect(fetch.calls).toHaveLength(0)
    await vi.advanceTimersByTimeAsync(PREDICT_DEBOUNCE_MS)
    expect(fetch.calls).toHaveLength(1)
    expect(fetch.calls[0]!.body).toEqual({ text: '质量太差了' })

    const result = wrapper.get('[data-testid="try-result"]')
    expect(result.attributes('data-label')).toBe('negative')
    expect(wrapper.get('[data-testid="try-label"]').text()).toContain('Negative')
    expect(wrapper.get('[data-testid="try-score"]').text()).toBe('8.0%')
    expect(wrapper.get('[data-testid="score-bar"]').attributes('aria-valuenow')).toBe('8')
    expect(wrapper.get('[data-testid="try-model-version"]').text()).toBe('20261128T215703551Z-dd35798f')
  })

  it('analyses at once when the button is pressed', async () => {
    const fetch = mockFetch().on('POST', '/v1/sentiment', (call) => prediction((call.body as { text: string }).text))
    const { wrapper } = await mountApp(TryView, { path: '/try' })
    await wrapper.get('[data-testid="try-input"]').setValue('服务很热情')
    await wrapper.get('[data-testid="try-submit"]').trigger('submit')
    await vi.advanceTimersByTimeAsync(0)
    expect(fetch.calls).toHaveLength(1)
    expect(wrapper.get('[data-testid="try-result"]').attributes('data-label')).toBe('positive')
    await vi.advanceTimersByTimeAsync(PREDICT_DEBOUNCE_MS * 2)
    expect(fetch.calls).toHaveLength(1)
  })

  it('shows a 422 from the inference API', async () => {
    mockFetch().on('POST', '/v1/sentiment', json({ error: { code: 'text_too_long', message: 'text is longer than 2000 characters' } }, 422))
    const { wrapper } = await mountApp(TryView, { path: '/try' })
    await wrapper.get('[data-testid="try-input"]').setValue('长'.repeat(3000))
    await vi.advanceTimersByTimeAsync(PREDICT_DEBOUNCE_MS)
    expect(wrapper.get('[data-testid="try-error"]').text()).toContain('text is longer than 2000 characters')
    expect(wrapper.find('[data-testid="try-result"]').exists()).toBe(false)
  })

  it('shows a 503 as "model not available"', async () => {
    mockFetch().on('POST', '/v1/sentiment', json({ error: { code: 'model_unavailable', message: 'no model loaded' } }, 503))
    const { wrapper } = await mountApp(TryView, { path: '/try' })
    await wrapper.get('[data-testid="try-input"]').setValue('你好')
    await vi.advanceTimersByTimeAsync(PREDICT_DEBOUNCE_MS)
    expect(wrapper.get('[data-testid="try-error"]').text()).toContain('not available right now')
  })

  it('does not call the API for blank text', async () => {
    const fetch = mockFetch()
    const { wrapper } = await mountApp(TryView, { path: '/try' })
    await wrapper.get('[data-testid="try-input"]').setValue('   ')
    await vi.advanceTimersByTimeAsync(PREDICT_DEBOUNCE_MS * 2)
    expect(fetch.calls).toHaveLength(0)
    expect(wrapper.get('[data-testid="try-submit"]').attributes('disabled')).toBeDefined()
  })
})
