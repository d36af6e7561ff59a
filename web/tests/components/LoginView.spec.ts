import { describe, expect, it, vi } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import LoginView from '@/views/LoginView.vue'
import RegisterView from '@/views/RegisterView.vue'
import { readToken } from '@/api'
import { useAuthStore } from '@/stores/auth'
import { mountApp } from '../helpers/mount'
import { json, mockFetch } from '../helpers/fetch'
import { user } from '../helpers/fixtures'

describe('LoginView', () => {
  it('shows RealWorld 422 validation errors', async () => {
    mockFetch().on('POST', '/api/users/login', json({ errors: { 'email or password': ['is invalid'] } }, 422))
    const { wrapper } = await mountApp(LoginView, { path: '/login' })
    expect(wrapper.find('[data-testid="error-messages"]').exists()).toBe(false)
    await wrapper.get('[data-testid="login-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="login-password"]').setValue('wrong')
    await wrapper.get('[data-testid="login-form"]').trigger('submit')
    await flushPromises()
    const errors = wrapper.get('[data-testid="error-messages"]')
    expect(errors.findAll('li').map((li) => li.text())).toEqual(['email or password is invalid'])
    expect(useAuthStore().isLoggedIn).toBe(false)
  })

  it('shows the 422 of bad credentials in Chinese', async () => {
    mockFetch().on('POST', '/api/users/login', json({ errors: { 'email or password': ['is invalid'] } }, 422))
    const { wrapper } = await mountApp(LoginView, { path: '/login', locale: 'zh-CN' })
    await wrapper.get('[data-testid="login-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="login-password"]').setValue('wrong')
    await wrapper.get('[data-testid="login-form"]').trigger('submit')
    await flushPromises()
    expect(wrapper.get('[data-testid="error-messages"]').text()).toBe('邮箱或密码无效')
  })

  it('treats a 401 on login as bad credentials, not an ended session', async () => {
    mockFetch().on('POST', '/api/users/login', json({ error: { code: 'invalid_credentials', message: 'nope' } }, 401))
    const { wrapper } = await mountApp(LoginView, { path: '/login', locale: 'zh-CN' })
    await wrapper.get('[data-testid="login-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="login-password"]').setValue('wrong')
    await wrapper.get('[data-testid="login-form"]').trigger('submit')
    await flushPromises()
    expect(wrapper.get('[data-testid="error-messages"]').text()).toBe('邮箱或密码错误')
  })

  it('signs in and follows a local ?redirect=', async () => {
    const fetch = mockFetch().on('POST', '/api/users/login', json({ user: user({ token: 'ok' }) }))
    const { wrapper, router } = await mountApp(LoginView, { path: '/login?redirect=/try' })
    await wrapper.get('[data-testid="login-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="login-password"]').setValue('secret')
    await wrapper.get('[data-testid="login-submit"]').trigger('submit')
    await flushPromises()
    expect(fetch.calls[0]!.body).toEqual({ user: { email: 'li@example.com', password: 'secret' } })
    expect(readToken()).toBe('ok')
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/try'))
  })

  it('ignores an off-site redirect', async () => {
    mockFetch().on('POST', '/api/users/login', json({ user: user() }))
    const { wrapper, router } = await mountApp(LoginView, { path: '/login?redirect=//evil.example' })
    await wrapper.get('[data-testid="login-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="login-password"]').setValue('secret')
    await wrapper.get('[data-testid="login-form"]').trigger('submit')
    await vi.waitFor(() => expect(router.currentRoute.value.fullPath).toBe('/'))
  })
})

describe('RegisterView', () => {
  it('lists every field error the server returns', async () => {
    mockFetch().on(
      'POST',
      '/api/users',
      json({ errors: { username: ['has already been taken'], email: ["can't be blank", 'is invalid'] } }, 422),
    )
    const { wrapper } = await mountApp(RegisterView, { path: '/register' })
    await wrapper.get('[data-testid="register-username"]').setValue('li')
    await wrapper.get('[data-testid="register-email"]').setValue('x')
    await wrapper.get('[data-testid="register-password"]').setValue('pw')
    await wrapper.get('[data-testid="register-submit"]').trigger('submit')
    await flushPromises()
    expect(wrapper.findAll('[data-testid="error-messages"] li').map((li) => li.text())).toEqual([
      'username has already been taken',
      "email can't be blank",
      'email is invalid',
    ])
  })

  it('translates the known field errors into Chinese and keeps unknown ones as sent', async () => {
    mockFetch().on(
      'POST',
      '/api/users',
      json(
        {
          errors: {
            email: ['has already been taken'],
            password: ['is too short (minimum is 8 characters)'],
            username: ["can't be blank"],
            nickname: ['is invalid'],
            label: ['must be positive or negative'],
          },
        },
        422,
      ),
    )
    const { wrapper } = await mountApp(RegisterView, { path: '/register', locale: 'zh-CN' })
    await wrapper.get('[data-testid="register-username"]').setValue('li')
    await wrapper.get('[data-testid="register-email"]').setValue('li@example.com')
    await wrapper.get('[data-testid="register-password"]').setValue('pw')
    await wrapper.get('[data-testid="register-submit"]').trigger('submit')
    await flushPromises()
    expect(wrapper.findAll('[data-testid="error-messages"] li').map((li) => li.text())).toEqual([
      '邮箱已被占用',
      '密码太短（至少 8 个字符）',
      '用户名不能为空',
      'nickname is invalid',
      'label must be positive or negative',
    ])
  })
})

