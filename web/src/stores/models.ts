// The serving model (metrics) and the registry's versions, with promote / roll back.
import { ref } from 'vue'
import { defineStore } from 'pinia'
import { modelsApi, sentimentApi, type ModelInfo, type ModelVersion } from '@/api'

export const useModelsStore = defineStore('models', () => {
  const info = ref<ModelInfo | null>(null)
  const infoError = ref<unknown>(null)
  const versions = ref<ModelVersion[]>([])
  const current = ref<string | null>(null)
  const versionsError = ref<unknown>(null)
  const promoting = ref<string | null>(null)
  const promoteError = ref<unknown>(null)

  async function loadInfo(): Promise<void> {
    try {
      info.value = await sentimentApi.model()
      infoError.value = null
    } catch (err) {
      infoError.value = err
    }
  }

  async function loadVersions(): Promise<void> {
    try {
      const list = await modelsApi.list()
      versions.value = list.versions
      current.value = list.current
      versionsError.value = null
    } catch (err) {
      versionsError.value = err
    }
  }

  async function refresh(): Promise<void> {
    await Promise.all([loadInfo(), loadVersions()])
  }

  async function promote(version: string): Promise<void> {
    promoting.value = version
    promoteError.value = null
    try {
      const result = await modelsApi.promote(version)
      current.value = result.current
      versions.value = versions.value.map((v) => ({ ...v, current: v.version === result.current }))
      await refresh()
    } catch (err) {
      promoteError.value = err
    } finally {
      promoting.value = null
    }
  }

  return { info, infoError, versions, current, versionsError, promoting, promoteError, refresh, promote }
})
