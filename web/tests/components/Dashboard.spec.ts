import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import DashboardView from '@/views/DashboardView.vue'
import TrainControl from '@/components/dashboard/TrainControl.vue'
import RunDetail from '@/components/dashboard/RunDetail.vue'
import ConfusionMatrix from '@/components/dashboard/ConfusionMatrix.vue'
import VersionsTable from '@/components/dashboard/VersionsTable.vue'
import RunsTable from '@/components/dashboard/RunsTable.vue'
import TrainingPanel from '@/components/dashboard/TrainingPanel.vue'
import ModelCard from '@/components/dashboard/ModelCard.vue'
import { useAuthStore } from '@/stores/auth'
import { useTrainingStore } from '@/stores/training'
import { mountApp } from '../helpers/mount'
import { json, mockFetch } from '../helpers/fetch'
import { feedbackSample, feedbackStats, training, trainingSummary, user } from '../helpers/fixtures'

// jsdom has no canvas: chart.js reports it cannot get a context and draws nothing.
beforeEach(() => {
  vi.spyOn(HTMLCanvasElement.prototype, 'getContext').mockReturnValue(null)
  vi.spyOn(console, 'error').mockImplementation(() => undefined)
})

describe('dashboard access', () => {
  it('politely turns away non-admins without calling admin endpoints', async () => {
    const fetch = mockFetch()
    useAuthStore().user = user({ admin: false })
    const { wrapper } = await mountApp(DashboardView, { path: '/dashboard' })
    expect(wrapper.get('[data-testid="admins-only"]').text()).toContain('Admins only')
    expect(wrapper.find('[data-testid="train-button"]').exists()).toBe(false)
    expect(fetch.calls).toHaveLength(0)
  })

  it('shows the panels to admins and lists the runs', async () => {
    mockFetch()
      .on('GET', '/v1/trainings', json({ trainings: [trainingSummary({ status: 'succeeded' }), trainingSummary({ id: 'run-0', status: 'failed' })], active_id: null, cooldown_seconds: 0 }))
      .on('GET', /^\/v1\/trainings\/run-/, json(training({ status: 'succeeded' })))
      .on('GET', '/v1/models', json({ current: null, versions: [] }))
      .on('GET', '/v1/sentiment/model', json({ error: { code: 'no_model', message: 'none' } }, 503))
      .on('GET', '/v1/sentiment/stats', json({ requests_total: 5, requests_per_second: 1.5, latency_ms: { p50: 2, p95: 4, p99: 8 }, model_version: null }))
      .on('GET', '/v1/feedback/stats', json(feedbackStats()))
      .on('GET', '/v1/feedback/samples', json({ samples: [feedbackSample(7)], total: 1, limit: 20, offset: 0 }))
    useAuthStore().user = user({ admin: true })
    const { wrapper } = await mountApp(DashboardView, { path: '/dashboard' })
    const rows = wrapper.findAll('[data-testid="training-run-row"]')
    expect(rows.map((r) => r.attributes('data-status'))).toEqual(['succeeded', 'failed'])
    expect(wrapper.get('[data-testid="train-button"]').attributes('disabled')).toBeUndefined()
    expect(wrapper.get('[data-testid="inference-p95"]').text()).toContain('4')
    expect(wrapper.get('[data-testid="feedback-stats"]').text()).toContain('6')
    expect(wrapper.get('[data-testid="feedback-next-run"]').text()).toContain('5 samples')
    expect(wrapper.get('[data-testid="feedback-review"]').findAll('[data-testid="review-row"]')).toHaveLength(1)
    expect(wrapper.get('[data-testid="model-card"]').text()).toContain('No model is loaded')
    wrapper.unmount()
  })
})

describe('train button', () => {
  beforeEach(() => vi.useFakeTimers())
  afterEach(() => {
    useTrainingStore().stopPolling()
    vi.useRealTimers()
  })

  it('is disabled with a countdown during the cooldown', async () => {
    const store = useTrainingStore()
    store.setCooldown(65)
    const { wrapper } = await mountApp(TrainControl)
    const button = wrapper.get('[data-testid="train-button"]')
    expect(button.attributes('disabled')).toBeDefined()
    expect(button.text()).toBe('Available in 1m 05s')
    await vi.advanceTimersByTimeAsync(6000)
    expect(button.text()).toBe('Available in 59s')
    await vi.advanceTimersByTimeAsync(59_000)
    expect(button.attributes('disabled')).toBeUndefined()
    expect(button.text()).toBe('Train now')
  })

  it('sends the chosen options and shows a 429 wait', async () => {
    const fetch = mockFetch().on('POST', '/v1/trainings', json({ error: { code: 'cooldown', message: 'later' } }, 429, { 'Retry-After': '30' }))
    const { wrapper } = await mountApp(TrainControl)
    await wrapper.get('input[type="number"]').setValue('4')
    await wrapper.get('[data-testid="train-button"]').trigger('click')
    await vi.advanceTimersByTimeAsync(0)
    expect(fetch.calls[0]!.body).toEqual({ workers: 4 })
    expect(wrapper.get('[data-testid="train-button"]').text()).toBe('Available in 30s')
  })
})

describe('run detail', () => {
  it('puts the loss chart on a canvas with data-testid="loss-chart" and lists worker samples', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ status: 'running' }) } })
    const canvas = wrapper.get('[data-testid="loss-chart"]')
    expect(canvas.element.tagName).toBe('CANVAS')
    expect(canvas.attributes('aria-label')).toBe('Loss per round')
    expect(wrapper.get('[data-testid="worker-samples-chart"]').element.tagName).toBe('CANVAS')
    expect(wrapper.get('[data-testid="round-table"]').text()).toContain('0.6100')
    expect(wrapper.find('[data-testid="cancel-run"]').exists()).toBe(true)
  })

  it('shows round 0 (the initial model, no training loss yet) as a row with dashes', async () => {
    const run = training({
      status: 'running',
      round_metrics: [
        { round: 0, clients: 0, train_loss: null, val_loss: 0.69, val_accuracy: 0.51, val_macro_f1: 0.43, seconds: 0 },
        { round: 1, clients: 2, train_loss: 0.61, val_loss: 0.52, val_accuracy: 0.76, val_macro_f1: 0.75, seconds: 12.5 },
      ],
    })
    const { wrapper } = await mountApp(RunDetail, { props: { run } })
    const rows = wrapper.findAll('[data-testid="round-table"] tbody tr')
    expect(rows).toHaveLength(2)
    expect(rows[0]!.text()).toContain('–')
    expect(rows[0]!.text()).toContain('51.0%')
    expect(rows[1]!.text()).toContain('0.6100')
  })

  it('offers no cancel for a finished run and shows its error', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ status: 'failed', error: 'worker w1 crashed' }) } })
    expect(wrapper.find('[data-testid="cancel-run"]').exists()).toBe(false)
    expect(wrapper.get('[data-testid="run-error"]').text()).toContain('worker w1 crashed')
  })
})

describe('model tables', () => {
  it('shades the confusion matrix by row share', async () => {
    const { wrapper } = await mountApp(ConfusionMatrix, { props: { matrix: [[80, 20], [10, 90]], labels: ['negative', 'positive'] } })
    const cells = wrapper.findAll('td')
    expect(cells.map((c) => c.text())).toEqual(['80', '20', '10', '90'])
    expect(cells[1]!.attributes('style')).toContain('--share: 0.2')
  })

  it('labels promote for newer and roll back for older versions', async () => {
    const v = (version: string, day: number, current = false) => ({
      version,
      created_at: `2026-11-0${day}T00:00:00Z`,
      method: 'federated' as const,
      accuracy: 0.8,
      macro_f1: 0.8,
      current,
    })
    const { wrapper } = await mountApp(VersionsTable, {
      props: { versions: [v('old', 1), v('cur', 2, true), v('new', 3)], promoting: null, error: null },
    })
    const rows = wrapper.findAll('[data-testid="version-row"]')
    expect(rows.map((r) => r.attributes('data-version'))).toEqual(['new', 'cur', 'old'])
    expect(rows[0]!.get('[data-testid="promote-button"]').text()).toBe('Promote')
    expect(rows[1]!.find('[data-testid="promote-button"]').exists()).toBe(false)
    expect(rows[2]!.get('[data-testid="promote-button"]').text()).toBe('Roll back')
    await rows[2]!.get('[data-testid="promote-button"]').trigger('click')
    expect(wrapper.emitted('promote')).toEqual([['old']])
  })

  it('keeps each version and its date in one cell, so the promote column fits beside them', async () => {
    const { wrapper } = await mountApp(VersionsTable, {
      props: {
        versions: [
          { version: '20261201T235429028Z-a2ed17f2', created_at: '2026-12-01T23:54:29Z', method: 'federated', accuracy: 0.83, macro_f1: 0.83, current: false },
        ],
        promoting: null,
        error: null,
      },
    })
    expect(wrapper.findAll('thead th')).toHaveLength(5)
    const cell = wrapper.get('[data-testid="version-row"] td')
    expect(cell.get('code').text()).toBe('20261201T235429028Z-a2ed17f2')
    expect(cell.get('.version-cell__date').text()).toContain('2026')
  })
})

describe('runs table', () => {
  it('shows whole run ids (ids that share a prefix stay apart) and long durations in hours', async () => {
    const runs = [
      trainingSummary({ id: 'fl-20261201t093000-3f1c2a', started_at: '2026-12-01T09:30:00Z', finished_at: '2026-12-01T23:59:16Z' }),
      trainingSummary({ id: 'fl-20261201t090000-a81d77', started_at: '2026-12-01T09:00:00Z', finished_at: '2026-12-01T09:01:21Z' }),
    ]
    const { wrapper } = await mountApp(RunsTable, { props: { runs, selectedId: null } })
    const rows = wrapper.findAll('[data-testid="training-run-row"]')
    expect(rows.map((r) => r.get('code').text())).toEqual(['fl-20261201t093000-3f1c2a', 'fl-20261201t090000-a81d77'])
    expect(rows.map((r) => r.findAll('td').at(-1)!.text())).toEqual(['14h 29m', '1m 21s'])
  })

  it('names the classes of the model card in the interface language', async () => {
    const info = {
      version: 'v1',
      config: { hidden_dim: 128 },
      metrics: {
        accuracy: 0.83,
        macro_f1: 0.83,
        per_class: [
          { label: 'negative', precision: 0.8, recall: 0.8, f1: 0.8, support: 794 },
          { label: 'positive', precision: 0.8, recall: 0.8, f1: 0.8, support: 722 },
        ],
        confusion: [
          [676, 118],
          [135, 587],
        ],
        total: 1516,
      },
      loaded_at: '2026-12-01T23:54:29Z',
    }
    const { wrapper } = await mountApp(ModelCard, { props: { info, error: null }, locale: 'zh-CN' })
    const headers = wrapper.findAll('th').map((th) => th.text())
    expect(headers).toContain('正面')
    expect(headers).toContain('负面')
    expect(headers).not.toContain('positive')
  })

  it('speaks Chinese in Chinese: durations', async () => {
    const runs = [trainingSummary({ started_at: '2026-12-01T09:00:00Z', finished_at: '2026-12-01T09:01:21Z' })]
    const { wrapper } = await mountApp(RunsTable, { props: { runs, selectedId: null }, locale: 'zh-CN' })
    expect(wrapper.get('[data-testid="training-run-row"]').findAll('td').at(-1)!.text()).toBe('1分21秒')
  })
})

describe('privacy of a run', () => {
  // A run with secure aggregation and client-level DP: ε grows with each round (round 0 has none).
  const privateRounds = [
    { round: 0, clients: 0, train_loss: null, val_loss: 0.69, val_accuracy: 0.51, val_macro_f1: 0.43, seconds: 0, secure: false },
    { round: 1, clients: 3, train_loss: 0.61, val_loss: 0.52, val_accuracy: 0.76, val_macro_f1: 0.75, seconds: 12.5, secure: true, epsilon: 1.5, delta: 1e-5 },
    { round: 2, clients: 3, train_loss: 0.5, val_loss: 0.47, val_accuracy: 0.8, val_macro_f1: 0.79, seconds: 11, secure: true, epsilon: 3.2149, delta: 1e-5 },
  ]
  const plainRounds = [
    { round: 0, clients: 0, train_loss: null, val_loss: 0.69, val_accuracy: 0.51, val_macro_f1: 0.43, seconds: 0, secure: false },
    { round: 1, clients: 3, train_loss: 0.61, val_loss: 0.52, val_accuracy: 0.76, val_macro_f1: 0.75, seconds: 12.5, secure: false },
  ]

  it('puts ε of the last round and a secure-aggregation badge next to the accuracy, and nothing on a plain run', async () => {
    const runs = [
      { ...trainingSummary({ id: 'private', candidate_accuracy: 0.8 }), round_metrics: privateRounds },
      { ...trainingSummary({ id: 'plain', candidate_accuracy: 0.83 }), round_metrics: plainRounds },
    ]
    const { wrapper } = await mountApp(RunsTable, { props: { runs, selectedId: null } })
    const [priv, plain] = wrapper.findAll('[data-testid="training-run-row"]')
    const epsilon = priv!.get('[data-testid="run-epsilon"]')
    expect(epsilon.text()).toBe('ε 3.21')
    expect(epsilon.attributes('title')).toBe('(ε, δ)-differential privacy: ε = 3.21, δ = 1e-5')
    expect(priv!.get('[data-testid="run-secure"]').text()).toBe('secure agg.')
    // ε and the badge sit in the accuracy cell.
    expect(epsilon.element.parentElement!.textContent).toContain('80.0%')
    expect(plain!.text()).toContain('83.0%')
    expect(plain!.find('[data-testid="run-epsilon"]').exists()).toBe(false)
    expect(plain!.find('[data-testid="run-secure"]').exists()).toBe(false)
    expect(plain!.text()).not.toContain('ε')
  })

  it('marks a listed run from the last round the list carries, before any detail is fetched', async () => {
    const runs = [
      { ...trainingSummary({ id: 'private', candidate_accuracy: 0.8 }), last_round: privateRounds[2] },
      { ...trainingSummary({ id: 'plain', candidate_accuracy: 0.83 }), last_round: plainRounds[1] },
    ]
    const { wrapper } = await mountApp(RunsTable, { props: { runs, selectedId: null } })
    const [priv, plain] = wrapper.findAll('[data-testid="training-run-row"]')
    expect(priv!.get('[data-testid="run-epsilon"]').text()).toBe('ε 3.21')
    expect(priv!.find('[data-testid="run-secure"]').exists()).toBe(true)
    expect(plain!.find('[data-testid="run-epsilon"]').exists()).toBe(false)
  })

  it('shows ε ∞ for an unbounded ε (null in JSON) and no badge unless the last round was secure', async () => {
    const runs = [
      {
        ...trainingSummary({ id: 'unbounded' }),
        round_metrics: [{ ...privateRounds[1]!, secure: true }, { ...privateRounds[2]!, epsilon: null, secure: false }],
      },
      // Only the initial weights so far: round 0 says nothing about aggregation.
      { ...trainingSummary({ id: 'fresh' }), round_metrics: [{ ...privateRounds[0]!, secure: true }] },
      // The list reply carries no round metrics.
      trainingSummary({ id: 'listed' }),
    ]
    const { wrapper } = await mountApp(RunsTable, { props: { runs, selectedId: null } })
    const [unbounded, fresh, listed] = wrapper.findAll('[data-testid="training-run-row"]')
    expect(unbounded!.get('[data-testid="run-epsilon"]').text()).toBe('ε ∞')
    expect(unbounded!.get('[data-testid="run-epsilon"]').attributes('title')).toContain('ε = ∞, δ = 1e-5')
    expect(unbounded!.find('[data-testid="run-secure"]').exists()).toBe(false)
    expect(fresh!.find('[data-testid="run-secure"]').exists()).toBe(false)
    expect(fresh!.find('[data-testid="run-epsilon"]').exists()).toBe(false)
    expect(listed!.find('[data-testid="run-epsilon"]').exists()).toBe(false)
    expect(listed!.find('[data-testid="run-secure"]').exists()).toBe(false)
  })

  it('states the privacy spent and the aggregation in the run detail', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ status: 'succeeded', round_metrics: privateRounds }) } })
    expect(wrapper.get('[data-testid="run-privacy"]').text()).toBe('(ε = 3.21, δ = 1e-5)-DP over 2 rounds')
    expect(wrapper.get('[data-testid="run-aggregation"]').text()).toBe('secure (the aggregator saw only sums)')
  })

  it('says a plain run has no differential privacy and was aggregated in the clear', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ status: 'succeeded', round_metrics: plainRounds }) } })
    expect(wrapper.get('[data-testid="run-privacy"]').text()).toBe('no differential privacy')
    expect(wrapper.get('[data-testid="run-aggregation"]').text()).toBe('in the clear')
    expect(wrapper.get('[data-testid="run-detail"]').text()).not.toContain('ε')
  })

  it('claims neither before the first round has finished', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ status: 'running', round_metrics: [privateRounds[0]!] }) } })
    expect(wrapper.get('[data-testid="run-privacy"]').text()).toBe('—')
    expect(wrapper.get('[data-testid="run-aggregation"]').text()).toBe('—')
  })

  it('says it in Chinese', async () => {
    const { wrapper } = await mountApp(RunDetail, { props: { run: training({ round_metrics: privateRounds }) }, locale: 'zh-CN' })
    expect(wrapper.get('[data-testid="run-privacy"]').text()).toBe('(ε = 3.21, δ = 1e-5)-差分隐私，共 2 轮')
    expect(wrapper.get('[data-testid="run-aggregation"]').text()).toBe('安全聚合（聚合方只看到总和）')
  })

  it('marks the listed run once the dashboard has fetched its rounds, across list refreshes', async () => {
    const fetch = mockFetch()
      .on('GET', '/v1/trainings', json({ trainings: [trainingSummary({ status: 'succeeded' }), trainingSummary({ id: 'run-0', status: 'succeeded' })], active_id: null, cooldown_seconds: 0 }))
      .on('GET', '/v1/trainings/run-1', json(training({ status: 'succeeded', round_metrics: privateRounds })))
      .on('GET', '/v1/trainings/run-0', json(training({ id: 'run-0', status: 'succeeded', round_metrics: plainRounds })))
    const store = useTrainingStore()
    const { wrapper } = await mountApp(TrainingPanel)
    await store.loadList()
    await flushPromises()
    const row = (id: string) => wrapper.get(`[data-testid="training-run-row"][data-run-id="${id}"]`)
    expect(fetch.callsTo('GET', '/v1/trainings/run-1').length).toBeGreaterThan(0)
    expect(row('run-1').get('[data-testid="run-epsilon"]').text()).toBe('ε 3.21')
    expect(row('run-1').find('[data-testid="run-secure"]').exists()).toBe(true)
    expect(row('run-0').find('[data-testid="run-epsilon"]').exists()).toBe(false)
    await store.loadList()
    await flushPromises()
    expect(row('run-1').get('[data-testid="run-epsilon"]').text()).toBe('ε 3.21')
    await row('run-0').trigger('click')
    await flushPromises()
    expect(row('run-0').find('[data-testid="run-epsilon"]').exists()).toBe(false)
    expect(row('run-0').find('[data-testid="run-secure"]').exists()).toBe(false)
    expect(row('run-1').get('[data-testid="run-epsilon"]').text()).toBe('ε 3.21')
  })
})
