// The feedback samples held for review (status `review`) and the admin's decisions on them.
// The counts themselves live in the monitoring store, which polls them.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { feedbackApi, isApiError, type FeedbackSample, type ReviewDecision, type SentimentLabel } from '@/api'
import { useMonitoringStore } from './monitoring'

/** How many held samples the dashboard lists at once. */
export const REVIEW_PAGE_SIZE = 20

export type ReviewAction = 'accept' | 'relabel' | 'reject'

const isBinary = (label: string | null): label is SentimentLabel => label === 'positive' || label === 'negative'

/**
 * The label "relabel" gives a sample: the opposite of its own label (for a held sample that
 * is the model's label, which it contradicts), or the model's label when its own is neutral;
 * null when there is nothing to relabel it as.
 */
export function relabelTarget(sample: Pick<FeedbackSample, 'label' | 'model_label'>): SentimentLabel | null {
  if (sample.label === 'positive') return 'negative'
  if (sample.label === 'negative') return 'positive'
  return isBinary(sample.model_label) ? sample.model_label : null
}

/** The request body of an action on a sample, or null when the action does not apply to it. */
export function decisionFor(sample: Pick<FeedbackSample, 'label' | 'model_label'>, action: ReviewAction): ReviewDecision | null {
  switch (action) {
    case 'accept':
      // Neutral is never trained on, so accepting it as labelled would be a no-op.
      return isBinary(sample.label) ? { status: 'accepted' } : null
    case 'relabel': {
      const label = relabelTarget(sample)
      return label ? { status: 'accepted', label } : null
    }
    case 'reject':
      return { status: 'rejected' }
  }
}

export const useFeedbackStore = defineStore('feedback', () => {
  const samples = ref<FeedbackSample[]>([])
  /** All samples held for review, which may be more than are listed. */
  const total = ref(0)
  const loaded = ref(false)
  const loading = ref(false)
  const error = ref<unknown>(null)
  const decideError = ref<unknown>(null)
  /** Ids of the samples whose decision is on its way. */
  const deciding = ref<number[]>([])
  let loadSeq = 0

  async function load(): Promise<void> {
    const seq = ++loadSeq
    loading.value = true
    try {
      const list = await feedbackApi.samples({ status: 'review', limit: REVIEW_PAGE_SIZE, offset: 0 })
      if (seq !== loadSeq) return
      // A row decided while the list was on its way stays gone.
      samples.value = list.samples.filter((s) => !deciding.value.includes(s.id))
      total.value = list.total
      loaded.value = true
      error.value = null
    } catch (err) {
      if (seq === loadSeq) error.value = err
    } finally {
      if (seq === loadSeq) loading.value = false
    }
  }

  function drop(id: number): void {
    const before = samples.value.length
    samples.value = samples.value.filter((s) => s.id !== id)
    if (samples.value.length < before) total.value = Math.max(0, total.value - 1)
  }

  /** Sends the decision; on success the row goes and the counts are refreshed. */
  async function decide(sample: FeedbackSample, action: ReviewAction): Promise<boolean> {
    const decision = decisionFor(sample, action)
    if (!decision || deciding.value.includes(sample.id)) return false
    deciding.value = [...deciding.value, sample.id]
    decideError.value = null
    let gone = false
    try {
      await feedbackApi.review(sample.id, decision)
      gone = true
    } catch (err) {
      decideError.value = err
      // Someone else decided it, or its comment was deleted: it is no longer held.
      gone = isApiError(err) && err.status === 404
    } finally {
      deciding.value = deciding.value.filter((id) => id !== sample.id)
    }
    if (!gone) return false
    drop(sample.id)
    // More are held than are listed: fetch the next ones into the list.
    await Promise.all([useMonitoringStore().loadFeedback(), samples.value.length < total.value ? load() : undefined])
    return decideError.value === null
  }

  return { samples, total, loaded, loading, error, decideError, deciding, load, decide }
})
