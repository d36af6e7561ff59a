// Comments of the open article, with sentiment back-fill polling: while any comment's
// sentiment is null the list is re-fetched, first after POLL_BASE_MS, then backing off.
import { computed, ref } from 'vue'
import { defineStore } from 'pinia'
import { commentsApi, type Comment, type SentimentLabel } from '@/api'

export const POLL_BASE_MS = 2_000
export const POLL_MAX_MS = 10_000
const POLL_BACKOFF = 1.5

export const useCommentsStore = defineStore('comments', () => {
  const slug = ref<string | null>(null)
  const comments = ref<Comment[]>([])
  const loading = ref(false)
  const error = ref<unknown>(null)

  let timer: ReturnType<typeof setTimeout> | null = null
  let delay = POLL_BASE_MS
  // Bumped on every local change so an older in-flight fetch cannot undo it.
  let revision = 0

  const pendingCount = computed(() => comments.value.filter((c) => c.sentiment === null).length)
  const polling = ref(false)

  function cancelPoll(): void {
    if (timer !== null) clearTimeout(timer)
    timer = null
    polling.value = false
  }

  function schedulePoll(): void {
    if (timer !== null || pendingCount.value === 0 || slug.value === null) return
    polling.value = true
    timer = setTimeout(() => {
      timer = null
      delay = Math.min(POLL_MAX_MS, delay * POLL_BACKOFF)
      void refresh()
    }, delay)
  }

  function resetBackoff(): void {
    delay = POLL_BASE_MS
    cancelPoll()
    schedulePoll()
  }

  async function refresh(): Promise<void> {
    const target = slug.value
    if (target === null) return
    const startedAt = revision
    try {
      const result = await commentsApi.list(target)
      if (target !== slug.value) return
      if (startedAt === revision) {
        comments.value = result
        error.value = null
      }
    } catch (err) {
      if (target !== slug.value) return
      error.value = err
    }
    if (pendingCount.value === 0) cancelPoll()
    else schedulePoll()
  }

  async function load(articleSlug: string): Promise<void> {
    stop()
    slug.value = articleSlug
    loading.value = true
    try {
      await refresh()
    } finally {
      if (slug.value === articleSlug) loading.value = false
    }
  }

  async function post(body: string): Promise<Comment> {
    const target = slug.value
    if (target === null) throw new Error('no article loaded')
    const created = await commentsApi.create(target, body)
    revision++
    if (target === slug.value) {
      comments.value = [created, ...comments.value.filter((c) => c.id !== created.id)]
      if (created.sentiment === null) resetBackoff()
    }
    return created
  }

  async function remove(id: number): Promise<void> {
    const target = slug.value
    if (target === null) return
    await commentsApi.remove(target, id)
    revision++
    comments.value = comments.value.filter((c) => c.id !== id)
    if (pendingCount.value === 0) cancelPoll()
  }

  async function correct(id: number, label: SentimentLabel): Promise<Comment> {
    const target = slug.value
    if (target === null) throw new Error('no article loaded')
    const updated = await commentsApi.correct(target, id, label)
    revision++
    comments.value = comments.value.map((c) => (c.id === id ? updated : c))
    if (pendingCount.value === 0) cancelPoll()
    return updated
  }

  /** Forgets the article and stops polling (the article page calls it on leave). */
  function stop(): void {
    cancelPoll()
    delay = POLL_BASE_MS
    revision++
    slug.value = null
    comments.value = []
    error.value = null
    loading.value = false
  }

  return { slug, comments, loading, error, pendingCount, polling, load, refresh, post, remove, correct, stop }
})
