// The article being read or edited.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { articlesApi, profilesApi, type Article, type ArticleDraft } from '@/api'

export const useArticleStore = defineStore('article', () => {
  const article = ref<Article | null>(null)
  const loading = ref(false)
  const error = ref<unknown>(null)
  let requestSeq = 0

  async function load(slug: string): Promise<void> {
    const seq = ++requestSeq
    if (article.value?.slug !== slug) article.value = null
    loading.value = true
    error.value = null
    try {
      const result = await articlesApi.get(slug)
      if (seq === requestSeq) article.value = result
    } catch (err) {
      if (seq === requestSeq) error.value = err
    } finally {
      if (seq === requestSeq) loading.value = false
    }
  }

  /** Creates an article, or updates the one with `slug`; returns the stored article. */
  async function save(draft: ArticleDraft, slug?: string): Promise<Article> {
    const saved = slug ? await articlesApi.update(slug, draft) : await articlesApi.create(draft)
    article.value = saved
    return saved
  }

  async function remove(): Promise<void> {
    if (!article.value) return
    await articlesApi.remove(article.value.slug)
    article.value = null
  }

  async function toggleFavorite(): Promise<void> {
    const current = article.value
    if (!current) return
    const updated = current.favorited
      ? await articlesApi.unfavorite(current.slug)
      : await articlesApi.favorite(current.slug)
    // Favourite responses may omit the body (list shape): keep the one we have.
    article.value = { ...current, ...updated, body: updated.body ?? current.body }
  }

  async function toggleFollow(): Promise<void> {
    const current = article.value
    if (!current) return
    const { username, following } = current.author
    const author = following ? await profilesApi.unfollow(username) : await profilesApi.follow(username)
    article.value = { ...current, author }
  }

  return { article, loading, error, load, save, remove, toggleFavorite, toggleFollow }
})
