// Each test starts with empty storage and a fresh Pinia.
import { beforeEach } from 'vitest'
import { createPinia, setActivePinia } from 'pinia'

beforeEach(() => {
  localStorage.clear()
  setActivePinia(createPinia())
})

// jsdom does not implement scrolling; the router's scrollBehavior calls it on navigation.
window.scrollTo = () => undefined
