// The one place that talks HTTP: same-origin relative URLs, the `Token` auth header,
// and both error shapes of the contract turned into ApiError.
import { readToken } from './token'

export type FieldErrors = Record<string, string[]>
export type Query = Record<string, string | number | boolean | null | undefined>
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE'

export class ApiError extends Error {
  readonly status: number
  readonly code: string
  /** RealWorld validation errors (422 `{"errors": {field: [msgs]}}`). */
  readonly fields: FieldErrors | null
  /** Seconds from a `Retry-After` header (429, 503). */
  readonly retryAfter: number | null

  constructor(
    status: number,
    code: string,
    message: string,
    fields: FieldErrors | null = null,
    retryAfter: number | null = null,
  ) {
    super(message)
    this.name = 'ApiError'
    this.status = status
    this.code = code
    this.fields = fields
    this.retryAfter = retryAfter
  }
}

export function isApiError(err: unknown): err is ApiError {
  return err instanceof ApiError
}

export function isAbort(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'AbortError'
}

type UnauthorizedListener = () => void
const unauthorizedListeners = new Set<UnauthorizedListener>()

/** Called when a request that carried a token got 401: the session is gone. */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener)
  return () => unauthorizedListeners.delete(listener)
}

/** `Retry-After` is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now = Date.now()): number | null {
  if (value === null || value.trim() === '') return null
  const trimmed = value.trim()
  if (/^\d+$/.test(trimmed)) return Number(trimmed)
  const date = Date.parse(trimmed)
  if (Number.isNaN(date)) return null
  return Math.max(0, Math.ceil((date - now) / 1000))
}

export function buildUrl(path: string, query?: Query): string {
  if (!query) return path
  const params = new URLSearchParams()
  for (const [key, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== '') params.set(key, String(value))
  }
  const qs = params.toString()
  return qs ? `${path}?${qs}` : path
}

async function readBody(response: Response): Promise<unknown> {
  const text = await response.text()
  if (text === '') return undefined
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function toFieldErrors(value: Record<string, unknown>): FieldErrors {
  const fields: FieldErrors = {}
  for (const [field, msgs] of Object.entries(value)) {
    fields[field] = Array.isArray(msgs) ? msgs.map(String) : [String(msgs)]
  }
  return fields
}

function toApiError(response: Response, body: unknown): ApiError {
  const retryAfter = parseRetryAfter(response.headers.get('Retry-After'))
  const fallback = response.statusText || `HTTP ${response.status}`
  if (isRecord(body) && isRecord(body.errors)) {
    const fields = toFieldErrors(body.errors)
    const first = Object.entries(fields)[0]
    const message = first ? `${first[0]} ${first[1].join(', ')}` : fallback
    return new ApiError(response.status, 'validation_failed', message, fields, retryAfter)
  }
  if (isRecord(body) && isRecord(body.error)) {
    const code = typeof body.error.code === 'string' ? body.error.code : `http_${response.status}`
    const message = typeof body.error.message === 'string' ? body.error.message : fallback
    return new ApiError(response.status, code, message, null, retryAfter)
  }
  return new ApiError(response.status, `http_${response.status}`, fallback, null, retryAfter)
}

export interface RequestOptions {
  body?: unknown
  query?: Query
  signal?: AbortSignal
}

export async function request<T>(method: Method, path: string, options: RequestOptions = {}): Promise<T> {
  const token = readToken()
  const headers: Record<string, string> = { Accept: 'application/json' }
  if (token) headers.Authorization = `Token ${token}`
  if (options.body !== undefined) headers['Content-Type'] = 'application/json'

  let response: Response
  try {
    response = await fetch(buildUrl(path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
      signal: options.signal,
    })
  } catch (err) {
    if (isAbort(err)) throw err
    throw new ApiError(0, 'network_error', err instanceof Error ? err.message : String(err))
  }

  const body = await readBody(response)
  if (!response.ok) {
    if (response.status === 401 && token) unauthorizedListeners.forEach((listener) => listener())
    throw toApiError(response, body)
  }
  return body as T
}

export const http = {
  get: <T>(path: string, query?: Query, signal?: AbortSignal) => request<T>('GET', path, { query, signal }),
  post: <T>(path: string, body?: unknown, signal?: AbortSignal) => request<T>('POST', path, { body, signal }),
  put: <T>(path: string, body?: unknown) => request<T>('PUT', path, { body }),
  delete: <T = void>(path: string) => request<T>('DELETE', path),
}
