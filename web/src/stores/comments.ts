// Comments of the open article, a page at a time, with sentiment back-fill polling:
// while any shown comment's sentiment is null the pages shown are re-fetched, first after
// POLL_BASE_MS, then backing off. The server lists oldest first (so loading more never
// shifts what is shown); comments posted here are shown on top until their page loads.
import { computed, ref } from 'vue'
import { defineStore } from 'pinia'
import { commentsApi, type Comment, type SentimentLabel } from '@/api'

/** Comments per page (the server's default page). */
export const PAGE_SIZE = 20
/** The largest page the server gives. */
const MAX_PAGE = 100
export const POLL_BASE_MS = 2_000
export const POLL_MAX_MS = 10_000
const POLL_BACKOFF = 1.5

export const useCommentsStore = defineStore('comments', () => {
  const slug = ref<string | null>(null)
  const comments = ref<Comment[]>([])
  const loading = ref(false)
  const loadingMore = ref(false)
  const error = ref<unknown>(null)
  /** All of the article's comments on the server. */
  const total = ref(0)
  /** How many of the server's list (oldest first) are loaded. */
  const loaded = ref(0)
  /** Ids posted here, newest first, shown on top. */
  let posted: number[] = []

  let timer: ReturnType<typeof setTimeout> | null = null
  let delay = POLL_BASE_MS
  // Bumped on every local change so an older in-flight fetch cannot undo it.
  let revision = 0

  const pendingCount = computed(() => comments.value.filter((c) => c.sentiment === null).length)
  const hasMore = computed(() => comments.value.length < total.value)
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

  /** `count` comments from `offset` on, in pages the server allows, and the server's total. */
  async function fetchRange(target: string, offset: number, count: number) {
    const list: Comment[] = []
    let all = 0
    for (;;) {
      const limit = Math.min(MAX_PAGE, count - list.length)
      const page = await commentsApi.page(target, { limit, offset: offset + list.length })
      list.push(...page.comments)
      // A server that does not page sends everything and no count.
      all = page.commentsCount ?? offset + list.length
      if (page.commentsCount === undefined || page.comments.length < limit || list.length >= count) break
    }
    return { list, all }
  }

  /** Comments posted here on top (as the server has them now, if it sent them), then `list`. */
  function merge(list: Comment[], fresh: Comment[]): Comment[] {
    const byId = new Map(fresh.map((c) => [c.id, c]))
    const mine = posted
      .map((id) => byId.get(id) ?? comments.value.find((c) => c.id === id))
      .filter((c): c is Comment => c !== undefined)
    return [...mine, ...list.filter((c) => !posted.includes(c.id))]
  }

  async function refresh(): Promise<void> {
    const target = slug.value
    if (target === null) return
    const startedAt = revision
    try {
      const head = await fetchRange(target, 0, Math.max(PAGE_SIZE, loaded.value))
      let fresh = head.list
      // Comments posted here are last on the server: read the last page for them too.
      const shown = new Set(head.list.map((c) => c.id))
      if (posted.some((id) => !shown.has(id)) && head.all > head.list.length) {
        const from = Math.max(head.list.length, head.all - PAGE_SIZE)
        fresh = [...fresh, ...(await fetchRange(target, from, PAGE_SIZE)).list]
      }
      if (target !== slug.value) return
      if (startedAt === revision) {
        comments.value = merge(head.list, fresh)
        loaded.value = head.list.length
        total.value = head.all
        error.value = null
      }
    } catch (err) {
      if (target !== slug.value) return
      error.value = err
    }
    if (pendingCount.value === 0) cancelPoll()
    else schedulePoll()
  }

  /** Loads the next page of the server's list (nothing when all are shown). */
  async function loadMore(): Promise<void> {
    const target = slug.value
    if (target === null || loadingMore.value || !hasMore.value) return
    loadingMore.value = true
    try {
      const next = await fetchRange(target, loaded.value, PAGE_SIZE)
      if (target !== slug.value) return
      revision++
      const shown = new Set(comments.value.map((c) => c.id))
      comments.value = [...comments.value, ...next.list.filter((c) => !shown.has(c.id))]
      loaded.value += next.list.length
      total.value = next.all
      error.value = null
      if (pendingCount.value > 0) schedulePoll()
    } catch (err) {
      if (target === slug.value) error.value = err
    } finally {
      if (target === slug.value) loadingMore.value = false
    }
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
      const known = comments.value.some((c) => c.id === created.id)
      posted = [created.id, ...posted.filter((id) => id !== created.id)]
      comments.value = [created, ...comments.value.filter((c) => c.id !== created.id)]
      if (!known) total.value++
      if (created.sentiment === null) resetBackoff()
    }
    return created
  }

  async function remove(id: number): Promise<void> {
    const target = slug.value
    if (target === null) return
    await commentsApi.remove(target, id)
    revision++
    if (target !== slug.value) return
    const index = comments.value.findIndex((c) => c.id === id)
    if (index !== -1) {
      // Among the server's loaded pages unless it was posted here.
      if (!posted.includes(id)) loaded.value = Math.max(0, loaded.value - 1)
      total.value = Math.max(0, total.value - 1)
    }
    posted = posted.filter((p) => p !== id)
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
    total.value = 0
    loaded.value = 0
    posted = []
    error.value = null
    loading.value = false
    loadingMore.value = false
  }

  return {
    slug,
    comments,
    loading,
    loadingMore,
    error,
    total,
    hasMore,
    pendingCount,
    polling,
    load,
    refresh,
    loadMore,
    post,
    remove,
    correct,
    stop,
  }
})
