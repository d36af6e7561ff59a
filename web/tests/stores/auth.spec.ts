import { describe, expect, it } from 'vitest'
import { ApiError, articlesApi, readToken, writeToken } from '@/api'
import { useAuthStore } from '@/stores/auth'
import { json, mockFetch } from '../helpers/fetch'
import { user } from '../helpers/fixtures'

describe('auth store', () => {
  it('logs in, keeps the user and persists the token', async () => {
    const fetch = mockFetch().on('POST', '/api/users/login', json({ user: user({ token: 't-1' }) }))
    const auth = useAuthStore()
    await auth.login({ email: 'li@example.com', password: 'secret' })
    expect(fetch.calls[0]!.body).toEqual({ user: { email: 'li@example.com', password: 'secret' } })
    expect(auth.isLoggedIn).toBe(true)
    expect(auth.user?.username).toBe('li')
    expect(readToken()).toBe('t-1')
  })

  it('registers and signs in with the new account', async () => {
    const fetch = mockFetch().on('POST', '/api/users', json({ user: user({ username: 'zhao', token: 't-2' }) }))
    const auth = useAuthStore()
    await auth.register({ username: 'zhao', email: 'z@example.com', password: 'pw123456' })
    expect(fetch.calls[0]!.body).toEqual({ user: { username: 'zhao', email: 'z@example.com', password: 'pw123456' } })
    expect(auth.user?.username).toBe('zhao')
    expect(readToken()).toBe('t-2')
  })

  it('stays signed out when login fails with 422', async () => {
    mockFetch().on('POST', '/api/users/login', json({ errors: { 'email or password': ['is invalid'] } }, 422))
    const auth = useAuthStore()
    const err = await auth.login({ email: 'x', password: 'y' }).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.fields).toEqual({ 'email or password': ['is invalid'] })
    expect(auth.isLoggedIn).toBe(false)
    expect(readToken()).toBeNull()
  })

  it('restores the session from a persisted token', async () => {
    writeToken('persisted')
    const fetch = mockFetch().on('GET', '/api/user', json({ user: user({ token: 'persisted', admin: true }) }))
    const auth = useAuthStore()
    expect(auth.isLoggedIn).toBe(false)
    await Promise.all([auth.ensureLoaded(), auth.ensureLoaded()])
    expect(fetch.calls).toHaveLength(1)
    expect(fetch.calls[0]!.headers.Authorization).toBe('Token persisted')
    expect(auth.isLoggedIn).toBe(true)
    expect(auth.isAdmin).toBe(true)
  })

  it('drops a persisted token the server rejects with 401', async () => {
    writeToken('expired')
    mockFetch().on('GET', '/api/user', json({ error: { code: 'unauthorized', message: 'token expired' } }, 401))
    const auth = useAuthStore()
    await auth.ensureLoaded()
    expect(auth.isLoggedIn).toBe(false)
    expect(auth.token).toBeNull()
    expect(readToken()).toBeNull()
  })

  it('keeps the token when the backend is unreachable', async () => {
    writeToken('fine')
    mockFetch().on('GET', '/api/user', json({ error: { code: 'unavailable', message: 'down' } }, 503))
    const auth = useAuthStore()
    await auth.ensureLoaded()
    expect(auth.isLoggedIn).toBe(false)
    expect(readToken()).toBe('fine')
  })

  it('ends the session when any later request gets 401', async () => {
    mockFetch()
      .on('POST', '/api/users/login', json({ user: user({ token: 't-3' }) }))
      .on('POST', '/api/articles/x/favorite', json({ error: { code: 'unauthorized', message: 'revoked' } }, 401))
    const auth = useAuthStore()
    await auth.login({ email: 'a', password: 'b' })
    await expect(articlesApi.favorite('x')).rejects.toMatchObject({ status: 401 })
    expect(auth.user).toBeNull()
    expect(readToken()).toBeNull()
  })

  it('logs out: revokes the session on the server and forgets it locally', async () => {
    const fetch = mockFetch()
      .on('POST', '/api/users/login', json({ user: user({ token: 't-4' }) }))
      .on('POST', '/api/users/logout', { status: 204 })
    const auth = useAuthStore()
    await auth.login({ email: 'a', password: 'b' })
    await auth.logout()
    const logout = fetch.callsTo('POST', '/api/users/logout')
    expect(logout).toHaveLength(1)
    expect(logout[0]!.headers.Authorization).toBe('Token t-4')
    expect(auth.isLoggedIn).toBe(false)
    expect(readToken()).toBeNull()
  })

  it('logs out locally even when the server call fails', async () => {
    mockFetch()
      .on('POST', '/api/users/login', json({ user: user() }))
      .on('POST', '/api/users/logout', json({ error: { code: 'internal', message: 'boom' } }, 500))
    const auth = useAuthStore()
    await auth.login({ email: 'a', password: 'b' })
    await auth.logout()
    expect(auth.isLoggedIn).toBe(false)
    expect(readToken()).toBeNull()
  })

  it('updates the user and picks up a new token', async () => {
    const fetch = mockFetch()
      .on('POST', '/api/users/login', json({ user: user() }))
      .on('PUT', '/api/user', json({ user: user({ bio: '你好', token: 't-new' }) }))
    const auth = useAuthStore()
    await auth.login({ email: 'a', password: 'b' })
    await auth.update({ bio: '你好' })
    expect(fetch.callsTo('PUT', '/api/user')[0]!.body).toEqual({ user: { bio: '你好' } })
    expect(auth.user?.bio).toBe('你好')
    expect(readToken()).toBe('t-new')
  })
})
