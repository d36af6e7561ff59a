// Article lists (home feeds, tag and profile lists) and the popular tags.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { articlesApi, tagsApi, type Article, type ArticleList } from '@/api'

export const PAGE_SIZE = 10

export type ArticleFeed =
  | { kind: 'global' }
  | { kind: 'feed' }
  | { kind: 'tag'; tag: string }
  | { kind: 'author'; username: string }
  | { kind: 'favorited'; username: string }

function fetchFeed(feed: ArticleFeed, limit: number, offset: number): Promise<ArticleList> {
  switch (feed.kind) {
    case 'feed':
      return articlesApi.feed({ limit, offset })
    case 'tag':
      return articlesApi.list({ tag: feed.tag, limit, offset })
    case 'author':
      return articlesApi.list({ author: feed.username, limit, offset })
    case 'favorited':
      return articlesApi.list({ favorited: feed.username, limit, offset })
    case 'global':
      return articlesApi.list({ limit, offset })
  }
}

export const useArticlesStore = defineStore('articles', () => {
  const articles = ref<Article[]>([])
  const articlesCount = ref(0)
  const page = ref(1)
  const loading = ref(false)
  const error = ref<unknown>(null)
  const tags = ref<string[]>([])
  const tagsLoading = ref(false)
  let requestSeq = 0

  /** Loads one page of a feed; a slower earlier request never overwrites a later one. */
  async function load(feed: ArticleFeed, pageNumber = 1): Promise<void> {
    const seq = ++requestSeq
    loading.value = true
    error.value = null
    page.value = pageNumber
    try {
      const result = await fetchFeed(feed, PAGE_SIZE, (pageNumber - 1) * PAGE_SIZE)
      if (seq !== requestSeq) return
      articles.value = result.articles
      articlesCount.value = result.articlesCount
    } catch (err) {
      if (seq !== requestSeq) return
      articles.value = []
      articlesCount.value = 0
      error.value = err
    } finally {
      if (seq === requestSeq) loading.value = false
    }
  }

  async function toggleFavorite(slug: string): Promise<void> {
    const current = articles.value.find((a) => a.slug === slug)
    if (!current) return
    const updated = current.favorited ? await articlesApi.unfavorite(slug) : await articlesApi.favorite(slug)
    replace(updated)
  }

  function replace(updated: Article): void {
    articles.value = articles.value.map((a) => (a.slug === updated.slug ? { ...a, ...updated } : a))
  }

  async function loadTags(): Promise<void> {
    tagsLoading.value = true
    try {
      tags.value = await tagsApi.list()
    } catch {
      tags.value = []
    } finally {
      tagsLoading.value = false
    }
  }

  return { articles, articlesCount, page, loading, error, tags, tagsLoading, load, toggleFavorite, replace, loadTags }
})
