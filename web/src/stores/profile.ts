// The profile page's user.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { profilesApi, type Profile } from '@/api'

export const useProfileStore = defineStore('profile', () => {
  const profile = ref<Profile | null>(null)
  const loading = ref(false)
  const error = ref<unknown>(null)
  let requestSeq = 0

  async function load(username: string): Promise<void> {
    const seq = ++requestSeq
    if (profile.value?.username !== username) profile.value = null
    loading.value = true
    error.value = null
    try {
      const result = await profilesApi.get(username)
      if (seq === requestSeq) profile.value = result
    } catch (err) {
      if (seq === requestSeq) error.value = err
    } finally {
      if (seq === requestSeq) loading.value = false
    }
  }

  async function toggleFollow(): Promise<void> {
    const current = profile.value
    if (!current) return
    profile.value = current.following
      ? await profilesApi.unfollow(current.username)
      : await profilesApi.follow(current.username)
  }

  return { profile, loading, error, load, toggleFollow }
})
