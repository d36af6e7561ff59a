import { describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import SettingsView from '@/views/SettingsView.vue'
import { useAuthStore } from '@/stores/auth'
import { mountApp } from '../helpers/mount'
import { json, mockFetch } from '../helpers/fetch'
import { user } from '../helpers/fixtures'

/** The settings page of a signed-in user. */
async function settings() {
  const auth = useAuthStore()
  auth.user = user({ bio: 'old bio' })
  return mountApp(SettingsView, { path: '/settings' })
}

describe('SettingsView', () => {
  it('asks for the current password only when the email or password changes, and sends it', async () => {
    const fetch = mockFetch().on('PUT', '/api/user', json({ user: user() }))
    const { wrapper } = await settings()
    expect(wrapper.find('[data-testid="settings-current-password"]').exists()).toBe(false)
    await wrapper.get('[data-testid="settings-password"]').setValue('a brand new one')
    expect(wrapper.find('[data-testid="settings-current-password"]').exists()).toBe(true)
    await wrapper.get('[data-testid="settings-current-password"]').setValue('correct horse')
    await wrapper.get('[data-testid="settings-form"]').trigger('submit')
    await flushPromises()
    expect(fetch.calls.at(-1)?.body).toEqual({ user: { password: 'a brand new one', currentPassword: 'correct horse' } })
  })

  it('sends an emptied bio as null, without a current password', async () => {
    const fetch = mockFetch().on('PUT', '/api/user', json({ user: user() }))
    const { wrapper } = await settings()
    await wrapper.get('[data-testid="settings-bio"]').setValue('')
    await wrapper.get('[data-testid="settings-form"]').trigger('submit')
    await flushPromises()
    expect(fetch.calls.at(-1)?.body).toEqual({ user: { bio: null } })
  })
})
