// Turns anything thrown by the API layer into text for the user.
import { isApiError } from '@/api'

type Translate = (key: string, named?: Record<string, unknown>) => string
type HasKey = (key: string) => boolean

/** A translated message for known error codes and statuses, else the server's own message. */
export function errorText(err: unknown, t: Translate, te: HasKey): string {
  if (isApiError(err)) {
    if (err.status === 429 && err.retryAfter !== null) return t('errors.retry_after', { seconds: err.retryAfter })
    for (const key of [`errors.${err.code}`, `errors.status_${err.status}`]) {
      if (te(key)) return t(key)
    }
    if (err.message) return err.message
    return t('errors.http', { status: err.status })
  }
  if (err instanceof Error && err.message) return err.message
  return t('errors.unknown')
}
