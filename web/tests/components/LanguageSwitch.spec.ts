import { afterEach, describe, expect, it, vi } from 'vitest'
import AppHeader from '@/components/layout/AppHeader.vue'
import { detectLocale } from '@/i18n'
import { mountApp } from '../helpers/mount'

describe('language switch', () => {
  afterEach(() => vi.unstubAllGlobals())

  it('switches the interface between English and Chinese and remembers it', async () => {
    const { wrapper } = await mountApp(AppHeader, { locale: 'en' })
    expect(wrapper.get('[data-testid="nav-home"]').text()).toBe('Home')
    expect(wrapper.get('[data-testid="nav-try"]').text()).toBe('Try it')

    await wrapper.get('[data-testid="language-switch"]').setValue('zh-CN')
    expect(wrapper.get('[data-testid="nav-home"]').text()).toBe('首页')
    expect(wrapper.get('[data-testid="nav-login"]').text()).toBe('登录')
    expect(localStorage.getItem('bloginfer.locale')).toBe('zh-CN')
    expect(document.documentElement.lang).toBe('zh-CN')

    await wrapper.get('[data-testid="language-switch"]').setValue('en')
    expect(wrapper.get('[data-testid="nav-home"]').text()).toBe('Home')
  })

  it('defaults from navigator.language, and a remembered choice wins', () => {
    vi.stubGlobal('navigator', { language: 'zh-TW', languages: ['zh-TW'] })
    expect(detectLocale()).toBe('zh-CN')
    vi.stubGlobal('navigator', { language: 'fr-FR', languages: ['fr-FR', 'zh-CN'] })
    expect(detectLocale()).toBe('en')
    localStorage.setItem('bloginfer.locale', 'zh-CN')
    expect(detectLocale()).toBe('zh-CN')
  })

  it('shows admin-only navigation to admins', async () => {
    const { useAuthStore } = await import('@/stores/auth')
    const { user } = await import('../helpers/fixtures')
    useAuthStore().user = user({ admin: true })
    const { wrapper } = await mountApp(AppHeader)
    expect(wrapper.find('[data-testid="nav-dashboard"]').exists()).toBe(true)
    useAuthStore().user = user({ admin: false })
    await wrapper.vm.$nextTick()
    expect(wrapper.find('[data-testid="nav-dashboard"]').exists()).toBe(false)
  })
})
