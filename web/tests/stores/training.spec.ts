import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ACTIVE_POLL_MS, DEFAULT_RETRY_SECONDS, useTrainingStore } from '@/stores/training'
import { json, mockFetch } from '../helpers/fetch'
import { training, trainingSummary } from '../helpers/fixtures'

const idle = (cooldown = 0) => json({ trainings: [trainingSummary({ status: 'succeeded' })], active_id: null, cooldown_seconds: cooldown })

describe('training store', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => {
    useTrainingStore().stopPolling()
    vi.useRealTimers()
  })

  it('counts the cooldown down every second and then allows training', async () => {
    mockFetch().on('GET', '/v1/trainings', idle(3)).on('GET', '/v1/trainings/run-1', json(training({ status: 'succeeded' })))
    const store = useTrainingStore()
    await store.loadList()
    expect(store.cooldownRemaining).toBe(3)
    expect(store.canTrain).toBe(false)
    await vi.advanceTimersByTimeAsync(1000)
    expect(store.cooldownRemaining).toBe(2)
    await vi.advanceTimersByTimeAsync(1000)
    expect(store.cooldownRemaining).toBe(1)
    await vi.advanceTimersByTimeAsync(1000)
    expect(store.cooldownRemaining).toBe(0)
    expect(store.canTrain).toBe(true)
  })

  it('reads Retry-After from a 429 and counts it down', async () => {
    const fetch = mockFetch()
      .on('GET', '/v1/trainings', idle(0))
      .on('GET', '/v1/trainings/run-1', json(training({ status: 'succeeded' })))
      .on('POST', '/v1/trainings', json({ error: { code: 'cooldown', message: 'too soon' } }, 429, { 'Retry-After': '42' }))
    const store = useTrainingStore()
    await store.loadList()
    expect(store.canTrain).toBe(true)
    expect(await store.start()).toBeNull()
    expect(fetch.callsTo('POST', '/v1/trainings')).toHaveLength(1)
    expect(store.error).toMatchObject({ status: 429, retryAfter: 42 })
    expect(store.cooldownRemaining).toBe(42)
    expect(store.canTrain).toBe(false)
    await vi.advanceTimersByTimeAsync(2000)
    expect(store.cooldownRemaining).toBe(40)
  })

  it('falls back to a default wait when a 429 has no Retry-After', async () => {
    mockFetch().on('POST', '/v1/trainings', json({ error: { code: 'cooldown', message: 'too soon' } }, 429))
    const store = useTrainingStore()
    await store.start()
    expect(store.cooldownRemaining).toBe(DEFAULT_RETRY_SECONDS)
  })

  it('cannot start while a run is active', async () => {
    const fetch = mockFetch()
      .on('GET', '/v1/trainings', json({ trainings: [trainingSummary()], active_id: 'run-1', cooldown_seconds: 0 }))
      .on('GET', '/v1/trainings/run-1', json(training()))
    const store = useTrainingStore()
    await store.loadList()
    expect(store.activeId).toBe('run-1')
    expect(store.canTrain).toBe(false)
    expect(await store.start()).toBeNull()
    expect(fetch.callsTo('POST', '/v1/trainings')).toHaveLength(0)
  })

  it('starts a run and polls it every 2 s until it finishes', async () => {
    let status: 'running' | 'succeeded' = 'running'
    const fetch = mockFetch()
      .once('GET', '/v1/trainings', idle(0))
      .on('POST', '/v1/trainings', json({ id: 'run-2' }, 202))
      .on('GET', '/v1/trainings', () =>
        status === 'running'
          ? json({ trainings: [trainingSummary({ id: 'run-2' })], active_id: 'run-2', cooldown_seconds: 0 })
          : json({ trainings: [trainingSummary({ id: 'run-2', status: 'succeeded' })], active_id: null, cooldown_seconds: 600 }),
      )
      .on('GET', '/v1/trainings/run-2', () => json(training({ id: 'run-2', status, rounds_done: status === 'running' ? 2 : 5 })))
      .on('GET', '/v1/trainings/run-1', json(training({ status: 'succeeded' })))
    const store = useTrainingStore()
    await store.loadList()
    const id = await store.start({ rounds: 5 })
    expect(id).toBe('run-2')
    expect(fetch.callsTo('POST', '/v1/trainings')[0]!.body).toEqual({ rounds: 5 })
    expect(store.activeId).toBe('run-2')
    expect(store.selectedId).toBe('run-2')
    expect(store.canTrain).toBe(false)

    const polls = () => fetch.callsTo('GET', '/v1/trainings/run-2').length
    const before = polls()
    await vi.advanceTimersByTimeAsync(ACTIVE_POLL_MS)
    expect(polls()).toBe(before + 1)
    expect(store.selected?.rounds_done).toBe(2)

    status = 'succeeded'
    await vi.advanceTimersByTimeAsync(ACTIVE_POLL_MS)
    expect(polls()).toBe(before + 2)
    expect(store.activeId).toBeNull()
    expect(store.lastFinishedId).toBe('run-2')
    expect(store.selected?.status).toBe('succeeded')
    expect(store.cooldownRemaining).toBe(600)

    await vi.advanceTimersByTimeAsync(ACTIVE_POLL_MS * 5)
    expect(polls()).toBe(before + 2)
  })

  it('reloads the list when the server says a run is already active (409)', async () => {
    const fetch = mockFetch()
      .on('POST', '/v1/trainings', json({ error: { code: 'training_active', message: 'busy' } }, 409))
      .on('GET', '/v1/trainings', json({ trainings: [trainingSummary()], active_id: 'run-1', cooldown_seconds: 0 }))
      .on('GET', '/v1/trainings/run-1', json(training()))
    const store = useTrainingStore()
    await store.start()
    expect(store.error).toMatchObject({ status: 409 })
    expect(fetch.callsTo('GET', '/v1/trainings')).toHaveLength(1)
    expect(store.activeId).toBe('run-1')
  })

  it('selects a run and loads its round metrics', async () => {
    mockFetch().on('GET', '/v1/trainings/run-1', json(training()))
    const store = useTrainingStore()
    await store.select('run-1')
    expect(store.selected?.round_metrics).toHaveLength(1)
    expect(store.selected?.worker_samples.map((w) => w.samples)).toEqual([4700, 4800])
  })

  it('cancels a run and shows its new state', async () => {
    const fetch = mockFetch()
      .on('POST', '/v1/trainings/run-1/cancel', { status: 202 })
      .on('GET', '/v1/trainings/run-1', json(training({ status: 'cancelled' })))
    const store = useTrainingStore()
    await store.select('run-1')
    await store.cancel('run-1')
    expect(fetch.callsTo('POST', '/v1/trainings/run-1/cancel')).toHaveLength(1)
    expect(store.selected?.status).toBe('cancelled')
    expect(store.runs[0]?.status).toBe('cancelled')
  })
})
