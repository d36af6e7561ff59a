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

// RealWorld validation messages the backend sends in English, with the i18n keys that
// translate them; a message not listed here is shown as the server wrote it.
const FIELD_MESSAGES: { pattern: RegExp; key: string; named?: (m: RegExpExecArray) => Record<string, unknown> }[] = [
  { pattern: /^has already been taken$/, key: 'taken' },
  { pattern: /^can't be blank$/, key: 'blank' },
  { pattern: /^is invalid$/, key: 'invalid' },
  { pattern: /^is too short \(minimum is (\d+) characters?\)$/, key: 'tooShort', named: (m) => ({ count: Number(m[1]) }) },
  { pattern: /^is too long \(maximum is (\d+) characters?\)$/, key: 'tooLong', named: (m) => ({ count: Number(m[1]) }) },
]

/** The i18n key of a field name ("email or password" -> "emailOrPassword"). */
function fieldKey(field: string): string {
  return field.trim().replace(/[\s_-]+(\w)/g, (_, c: string) => c.toUpperCase())
}

/**
 * One RealWorld validation line: "email has already been taken" in English, "邮箱已被占用" in
 * Chinese. Only a known field with a known message is translated; anything else is shown
 * as `<field> <message>`, the server's own words.
 */
export function fieldErrorText(field: string, message: string, t: Translate, te: HasKey): string {
  const fieldName = `errors.fields.${fieldKey(field)}`
  for (const known of FIELD_MESSAGES) {
    const match = known.pattern.exec(message.trim())
    if (!match) continue
    const messageKey = `errors.messages.${known.key}`
    if (!te(fieldName) || !te(messageKey)) break
    return t('errors.fieldLine', { field: t(fieldName), message: t(messageKey, known.named?.(match) ?? {}) })
  }
  return `${field} ${message}`
}
