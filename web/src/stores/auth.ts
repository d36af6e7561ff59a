import { computed, ref } from 'vue'
import { defineStore } from 'pinia'
import {
  clearToken,
  onUnauthorized,
  readToken,
  usersApi,
  writeToken,
  type LoginCredentials,
  type Registration,
  type User,
  type UserUpdate,
} from '@/api'

export const useAuthStore = defineStore('auth', () => {
  const user = ref<User | null>(null)
  const token = ref<string | null>(readToken())
  let loading: Promise<void> | null = null

  const isLoggedIn = computed(() => user.value !== null)
  const isAdmin = computed(() => user.value?.admin === true)

  function setSession(next: User): void {
    user.value = next
    token.value = next.token
    writeToken(next.token)
  }

  function clearSession(): void {
    user.value = null
    token.value = null
    loading = null
    clearToken()
  }

  // Any request made with our token that comes back 401 means the session is over.
  onUnauthorized(clearSession)

  /** Restores the user from a stored token once; later calls share the same promise. */
  function ensureLoaded(): Promise<void> {
    if (user.value || !token.value) return Promise.resolve()
    loading ??= usersApi
      .current()
      .then(setSession)
      .catch(() => {
        // 401 already cleared the session; on other errors stay signed out but keep
        // the token, so a reload once the backend is back restores the session.
        loading = null
      })
    return loading
  }

  async function login(credentials: LoginCredentials): Promise<User> {
    const next = await usersApi.login(credentials)
    setSession(next)
    return next
  }

  async function register(registration: Registration): Promise<User> {
    const next = await usersApi.register(registration)
    setSession(next)
    return next
  }

  async function update(changes: UserUpdate): Promise<User> {
    const next = await usersApi.update(changes)
    setSession(next)
    return next
  }

  async function logout(): Promise<void> {
    if (token.value) {
      try {
        await usersApi.logout()
      } catch {
        // The session is dropped locally whatever the server says.
      }
    }
    clearSession()
  }

  return { user, token, isLoggedIn, isAdmin, ensureLoaded, login, register, update, logout, clearSession }
})
