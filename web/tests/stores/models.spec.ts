import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { useModelsStore } from '@/stores/models'
import { HISTORY_LENGTH, STATS_REFRESH_MS, useMonitoringStore } from '@/stores/monitoring'
import { json, mockFetch } from '../helpers/fetch'
import { feedbackStats } from '../helpers/fixtures'

const versions = (current: string) =>
  json({
    current,
    versions: ['v1', 'v2'].map((v, i) => ({
      version: v,
      created_at: `2026-11-0${i + 1}T00:00:00Z`,
      method: i ? 'federated' : 'central',
      accuracy: 0.8 + i / 100,
      macro_f1: 0.79 + i / 100,
      current: v === current,
    })),
  })

describe('models store', () => {
  it('promotes (or rolls back to) a version and reloads', async () => {
    let current = 'v2'
    const fetch = mockFetch()
      .on('GET', '/v1/models', () => versions(current))
      .on('GET', '/v1/sentiment/model', json({ error: { code: 'no_model', message: 'none' } }, 503))
      .on('POST', '/v1/models/v1/promote', () => {
        current = 'v1'
        return json({ current: 'v1' })
      })
    const store = useModelsStore()
    await store.refresh()
    expect(store.current).toBe('v2')
    expect(store.infoError).toMatchObject({ status: 503 })
    await store.promote('v1')
    expect(fetch.callsTo('POST', '/v1/models/v1/promote')).toHaveLength(1)
    expect(store.current).toBe('v1')
    expect(store.versions.find((v) => v.current)?.version).toBe('v1')
    expect(store.promoting).toBeNull()
  })
})

describe('monitoring store', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => vi.useRealTimers())

  it('refreshes inference stats every few seconds and keeps a bounded history', async () => {
    let n = 0
    const fetch = mockFetch()
      .on('GET', '/v1/sentiment/stats', () =>
        json({ requests_total: ++n, requests_per_second: n / 2, latency_ms: { p50: 2, p95: 5, p99: 9 }, model_version: 'v1' }),
      )
      .on('GET', '/v1/feedback/stats', json(feedbackStats()))
    const store = useMonitoringStore()
    store.startPolling()
    await vi.advanceTimersByTimeAsync(0)
    expect(store.stats?.requests_total).toBe(1)
    expect(store.feedback?.total).toBe(6)
    await vi.advanceTimersByTimeAsync(STATS_REFRESH_MS * (HISTORY_LENGTH + 5))
    expect(store.history).toHaveLength(HISTORY_LENGTH)
    expect(store.history.at(-1)?.rps).toBe(n / 2)
    store.stopPolling()
    const calls = fetch.calls.length
    await vi.advanceTimersByTimeAsync(STATS_REFRESH_MS * 3)
    expect(fetch.calls.length).toBe(calls)
  })
})
