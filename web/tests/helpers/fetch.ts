// A routed fetch stub: tests declare replies per "METHOD /path" and read back the calls.
import { vi } from 'vitest'

export interface Call {
  method: string
  path: string
  query: URLSearchParams
  headers: Record<string, string>
  body: unknown
}

export interface Reply {
  status?: number
  body?: unknown
  headers?: Record<string, string>
}

type Responder = Reply | ((call: Call) => Reply | Promise<Reply>)

interface Route {
  method: string
  path: string | RegExp
  responder: Responder
  once: boolean
}

export function json(body: unknown, status = 200, headers: Record<string, string> = {}): Reply {
  return { status, body, headers }
}

export function mockFetch() {
  const routes: Route[] = []
  const calls: Call[] = []

  const fetchMock = vi.fn(async (input: RequestInfo | URL, init: RequestInit = {}) => {
    const url = new URL(String(input), 'http://localhost')
    const method = (init.method ?? 'GET').toUpperCase()
    const call: Call = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: { ...(init.headers as Record<string, string>) },
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
    }
    calls.push(call)
    const index = routes.findIndex(
      (r) => r.method === method && (typeof r.path === 'string' ? r.path === url.pathname : r.path.test(url.pathname)),
    )
    const route = routes[index]
    if (!route) throw new Error(`unexpected request ${method} ${url.pathname}`)
    if (route.once) routes.splice(index, 1)
    const reply = typeof route.responder === 'function' ? await route.responder(call) : route.responder
    const status = reply.status ?? 200
    const text = reply.body === undefined || status === 204 ? null : JSON.stringify(reply.body)
    return new Response(text, {
      status,
      headers: { 'Content-Type': 'application/json', ...reply.headers },
    })
  })
  vi.stubGlobal('fetch', fetchMock)

  const api = {
    calls,
    fetchMock,
    /** Replies to every matching request. */
    on(method: string, path: string | RegExp, responder: Responder) {
      routes.push({ method, path, responder, once: false })
      return api
    },
    /** Replies to one matching request, ahead of `on` routes and after earlier `once` ones. */
    once(method: string, path: string | RegExp, responder: Responder) {
      const firstPersistent = routes.findIndex((r) => !r.once)
      routes.splice(firstPersistent === -1 ? routes.length : firstPersistent, 0, { method, path, responder, once: true })
      return api
    },
    callsTo(method: string, path: string) {
      return calls.filter((c) => c.method === method && c.path === path)
    },
  }
  return api
}

export type FetchMock = ReturnType<typeof mockFetch>
