// Federated training runs: the list, the active run (polled every ACTIVE_POLL_MS while it
// runs), the selected run's detail, and the cooldown between runs.
import { computed, ref } from 'vue'
import { defineStore } from 'pinia'
import {
  isApiError,
  isTerminal,
  trainingsApi,
  type RoundMetrics,
  type Training,
  type TrainingRequest,
  type TrainingSummary,
} from '@/api'

export const ACTIVE_POLL_MS = 2_000
export const LIST_REFRESH_MS = 15_000
/** Used when a 429 carries no usable Retry-After. */
export const DEFAULT_RETRY_SECONDS = 30

/** A run in the list. The list reply has no round metrics; a row keeps those of the run's
 * last fetched detail, so the runs table can show its privacy (ε, secure aggregation). */
export type RunRow = TrainingSummary & { round_metrics?: RoundMetrics[] }

function rowOf(run: Training): RunRow {
  const { worker_samples: _samples, ...row } = run
  return row
}

export const useTrainingStore = defineStore('training', () => {
  const runs = ref<RunRow[]>([])
  const activeId = ref<string | null>(null)
  const selected = ref<Training | null>(null)
  const selectedId = ref<string | null>(null)
  const loading = ref(false)
  const starting = ref(false)
  const error = ref<unknown>(null)
  /** Id of the last run seen to finish, so the page can refresh the model registry. */
  const lastFinishedId = ref<string | null>(null)
  const cooldownUntil = ref(0)
  const now = ref(Date.now())

  let ticker: ReturnType<typeof setInterval> | null = null
  let activeTimer: ReturnType<typeof setTimeout> | null = null
  let listTimer: ReturnType<typeof setInterval> | null = null
  let selectSeq = 0

  const cooldownRemaining = computed(() => Math.max(0, Math.ceil((cooldownUntil.value - now.value) / 1000)))
  const canTrain = computed(() => !starting.value && activeId.value === null && cooldownRemaining.value === 0)

  function stopTicker(): void {
    if (ticker !== null) clearInterval(ticker)
    ticker = null
  }

  function setCooldown(seconds: number): void {
    now.value = Date.now()
    cooldownUntil.value = now.value + Math.max(0, seconds) * 1000
    stopTicker()
    if (seconds <= 0) return
    ticker = setInterval(() => {
      now.value = Date.now()
      if (now.value >= cooldownUntil.value) stopTicker()
    }, 1000)
  }

  function stopActivePoll(): void {
    if (activeTimer !== null) clearTimeout(activeTimer)
    activeTimer = null
  }

  function setActive(id: string | null): void {
    const changed = id !== activeId.value
    activeId.value = id
    if (id === null) stopActivePoll()
    else if (changed || activeTimer === null) {
      stopActivePoll()
      activeTimer = setTimeout(() => void pollActive(), ACTIVE_POLL_MS)
    }
  }

  function upsert(run: Training): void {
    const row = rowOf(run)
    const index = runs.value.findIndex((r) => r.id === run.id)
    runs.value = index === -1 ? [row, ...runs.value] : runs.value.map((r, i) => (i === index ? row : r))
    if (selectedId.value === run.id) selected.value = run
  }

  /** Gives the listed row of a fetched run its round metrics. */
  function keepMetrics(run: Training): void {
    runs.value = runs.value.map((r) => (r.id === run.id ? { ...r, round_metrics: run.round_metrics } : r))
  }

  async function pollActive(): Promise<void> {
    activeTimer = null
    const id = activeId.value
    if (id === null) return
    try {
      const run = await trainingsApi.get(id)
      if (activeId.value !== id) return
      upsert(run)
      if (isTerminal(run.status)) {
        activeId.value = null
        lastFinishedId.value = run.id
        await loadList()
        return
      }
    } catch (err) {
      error.value = err
    }
    if (activeId.value === id && activeTimer === null) {
      activeTimer = setTimeout(() => void pollActive(), ACTIVE_POLL_MS)
    }
  }

  async function loadList(): Promise<void> {
    loading.value = true
    try {
      const list = await trainingsApi.list()
      const known = new Map(runs.value.map((r) => [r.id, r.round_metrics]))
      runs.value = list.trainings.map((r: RunRow) => {
        const metrics = r.round_metrics ?? known.get(r.id)
        return metrics ? { ...r, round_metrics: metrics } : r
      })
      setCooldown(list.cooldown_seconds)
      setActive(list.active_id)
      if (selectedId.value === null && list.trainings[0]) void select(list.trainings[0].id)
    } catch (err) {
      error.value = err
    } finally {
      loading.value = false
    }
  }

  async function select(id: string): Promise<void> {
    const seq = ++selectSeq
    selectedId.value = id
    if (selected.value?.id !== id) selected.value = null
    try {
      const run = await trainingsApi.get(id)
      keepMetrics(run)
      if (seq === selectSeq) selected.value = run
    } catch (err) {
      if (seq === selectSeq) error.value = err
    }
  }

  async function start(options: TrainingRequest = {}): Promise<string | null> {
    if (!canTrain.value) return null
    starting.value = true
    error.value = null
    try {
      const { id } = await trainingsApi.start(options)
      setActive(id)
      selectedId.value = id
      await loadList()
      await select(id)
      return id
    } catch (err) {
      error.value = err
      if (isApiError(err) && err.status === 429) setCooldown(err.retryAfter ?? DEFAULT_RETRY_SECONDS)
      else if (isApiError(err) && err.status === 409) await loadList()
      return null
    } finally {
      starting.value = false
    }
  }

  async function cancel(id: string): Promise<void> {
    error.value = null
    try {
      await trainingsApi.cancel(id)
      const run = await trainingsApi.get(id)
      upsert(run)
    } catch (err) {
      error.value = err
    }
  }

  /** Starts the list refresh loop (the dashboard page calls it on mount). */
  function startPolling(): void {
    stopPolling()
    void loadList()
    listTimer = setInterval(() => void loadList(), LIST_REFRESH_MS)
  }

  function stopPolling(): void {
    if (listTimer !== null) clearInterval(listTimer)
    listTimer = null
    stopActivePoll()
    stopTicker()
  }

  return {
    runs,
    activeId,
    selected,
    selectedId,
    loading,
    starting,
    error,
    lastFinishedId,
    cooldownRemaining,
    canTrain,
    setCooldown,
    loadList,
    select,
    start,
    cancel,
    startPolling,
    stopPolling,
  }
})
