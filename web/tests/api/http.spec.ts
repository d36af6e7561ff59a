import { describe, expect, it, vi } from 'vitest'
import { ApiError, articlesApi, commentsApi, onUnauthorized, sentimentApi, trainingsApi, usersApi, writeToken } from '@/api'
import { buildUrl, parseRetryAfter } from '@/api/http'
import { json, mockFetch } from '../helpers/fetch'
import { user } from '../helpers/fixtures'

describe('http client', () => {
  it('uses same-origin relative URLs and the Token auth header', async () => {
    const fetch = mockFetch().on('GET', '/api/user', json({ user: user() }))
    writeToken('abc')
    await usersApi.current()
    const [input] = fetch.fetchMock.mock.calls[0]!
    expect(String(input)).toBe('/api/user')
    expect(fetch.calls[0]!.headers.Authorization).toBe('Token abc')
  })

  it('sends no Authorization header without a token', async () => {
    const fetch = mockFetch().on('GET', '/api/articles', json({ articles: [], articlesCount: 0 }))
    await articlesApi.list()
    expect(fetch.calls[0]!.headers.Authorization).toBeUndefined()
  })

  it('builds list queries and drops empty values', async () => {
    const fetch = mockFetch().on('GET', '/api/articles', json({ articles: [], articlesCount: 0 }))
    await articlesApi.list({ tag: '旅行', limit: 10, offset: 20, author: undefined })
    const q = fetch.calls[0]!.query
    expect(q.get('tag')).toBe('旅行')
    expect(q.get('offset')).toBe('20')
    expect(q.has('author')).toBe(false)
    expect(buildUrl('/x', { a: '', b: null, c: 0 })).toBe('/x?c=0')
  })

  it('posts JSON bodies in the contract shapes', async () => {
    const fetch = mockFetch()
      .on('PUT', '/api/articles/a%20b/comments/7/sentiment', json({ comment: {} }))
      .on('POST', '/v1/sentiment', json({ label: 'positive' }))
    await commentsApi.correct('a b', 7, 'negative')
    await sentimentApi.predict('很好')
    expect(fetch.calls[0]!.body).toEqual({ label: 'negative' })
    expect(fetch.calls[0]!.headers['Content-Type']).toBe('application/json')
    expect(fetch.calls[1]!.body).toEqual({ text: '很好' })
  })

  it('turns a RealWorld 422 into field errors', async () => {
    mockFetch().on('POST', '/api/users', json({ errors: { email: ['has already been taken'] } }, 422))
    const err = await usersApi.register({ username: 'a', email: 'b', password: 'c' }).catch((e) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect(err.status).toBe(422)
    expect(err.fields).toEqual({ email: ['has already been taken'] })
    expect(err.message).toBe('email has already been taken')
  })

  it('turns the error envelope into code and message, with Retry-After', async () => {
    mockFetch().on(
      'POST',
      '/v1/trainings',
      json({ error: { code: 'cooldown', message: 'wait a bit' } }, 429, { 'Retry-After': '42' }),
    )
    const err = await trainingsApi.start().catch((e) => e)
    expect(err).toMatchObject({ status: 429, code: 'cooldown', message: 'wait a bit', retryAfter: 42, fields: null })
  })

  it('accepts empty 204 replies', async () => {
    mockFetch().on('DELETE', '/api/articles/x', { status: 204 })
    await expect(articlesApi.remove('x')).resolves.toBeUndefined()
  })

  it('reports network failures as network_error', async () => {
    vi.stubGlobal('fetch', vi.fn().mockRejectedValue(new TypeError('Failed to fetch')))
    await expect(articlesApi.list()).rejects.toMatchObject({ status: 0, code: 'network_error' })
  })

  it('signals 401 only for requests that carried a token', async () => {
    mockFetch().on('GET', '/api/user', json({ error: { code: 'unauthorized', message: 'no' } }, 401))
    const listener = vi.fn()
    const off = onUnauthorized(listener)
    await usersApi.current().catch(() => undefined)
    expect(listener).not.toHaveBeenCalled()
    writeToken('stale')
    await usersApi.current().catch(() => undefined)
    expect(listener).toHaveBeenCalledTimes(1)
    off()
  })

  it('parses Retry-After as seconds or an HTTP date', () => {
    expect(parseRetryAfter('17')).toBe(17)
    expect(parseRetryAfter(null)).toBeNull()
    expect(parseRetryAfter('soon')).toBeNull()
    const now = Date.parse('2026-11-28T10:00:00Z')
    expect(parseRetryAfter('Sat, 28 Nov 2026 10:01:30 GMT', now)).toBe(90)
  })
})
