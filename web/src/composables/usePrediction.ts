// Debounced calls to the inference API: the newest text wins, older requests are aborted.
import { onScopeDispose, ref } from 'vue'
import { isAbort, sentimentApi, type Prediction } from '@/api'
import { debounce } from '@/lib/debounce'

export const PREDICT_DEBOUNCE_MS = 300

export function usePrediction(waitMs = PREDICT_DEBOUNCE_MS) {
  const result = ref<Prediction | null>(null)
  const error = ref<unknown>(null)
  const loading = ref(false)
  let controller: AbortController | null = null

  async function run(text: string): Promise<void> {
    controller?.abort()
    controller = null
    if (!text.trim()) {
      result.value = null
      error.value = null
      loading.value = false
      return
    }
    const own = new AbortController()
    controller = own
    loading.value = true
    error.value = null
    try {
      const prediction = await sentimentApi.predict(text, own.signal)
      if (controller === own) result.value = prediction
    } catch (err) {
      if (controller === own && !isAbort(err)) {
        error.value = err
        result.value = null
      }
    } finally {
      if (controller === own) {
        loading.value = false
        controller = null
      }
    }
  }

  const debounced = debounce((text: string) => void run(text), waitMs)

  onScopeDispose(() => {
    debounced.cancel()
    controller?.abort()
  })

  return {
    result,
    error,
    loading,
    /** Call on every keystroke. */
    schedule: debounced,
    /** Analyse now (button, example), dropping any pending keystroke call. */
    analyze: (text: string) => {
      debounced.cancel()
      return run(text)
    },
  }
}
