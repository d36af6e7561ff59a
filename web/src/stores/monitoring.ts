// Live inference stats (kept as a short history for the chart) and feedback counts.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { feedbackApi, sentimentApi, type FeedbackStats, type InferenceStats } from '@/api'

export const STATS_REFRESH_MS = 5_000
export const HISTORY_LENGTH = 60

export interface StatsSample {
  at: number
  rps: number
  p50: number
  p95: number
  p99: number
}

export const useMonitoringStore = defineStore('monitoring', () => {
  const stats = ref<InferenceStats | null>(null)
  const statsError = ref<unknown>(null)
  const history = ref<StatsSample[]>([])
  const feedback = ref<FeedbackStats | null>(null)
  const feedbackError = ref<unknown>(null)
  let timer: ReturnType<typeof setInterval> | null = null

  async function loadStats(): Promise<void> {
    try {
      const next = await sentimentApi.stats()
      stats.value = next
      statsError.value = null
      const { p50, p95, p99 } = next.latency_ms
      history.value = [...history.value, { at: Date.now(), rps: next.requests_per_second, p50, p95, p99 }].slice(
        -HISTORY_LENGTH,
      )
    } catch (err) {
      statsError.value = err
    }
  }

  async function loadFeedback(): Promise<void> {
    try {
      feedback.value = await feedbackApi.stats()
      feedbackError.value = null
    } catch (err) {
      feedbackError.value = err
    }
  }

  async function refresh(): Promise<void> {
    await Promise.all([loadStats(), loadFeedback()])
  }

  function startPolling(intervalMs = STATS_REFRESH_MS): void {
    stopPolling()
    void refresh()
    timer = setInterval(() => void refresh(), intervalMs)
  }

  function stopPolling(): void {
    if (timer !== null) clearInterval(timer)
    timer = null
  }

  return { stats, statsError, history, feedback, feedbackError, loadStats, loadFeedback, refresh, startPolling, stopPolling }
})
