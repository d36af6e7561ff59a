import type { LocationQueryValue } from 'vue-router'

/** A `?redirect=` target, only when it is a path on this site (no open redirects). */
export function safeRedirect(value: LocationQueryValue | LocationQueryValue[] | undefined): string {
  const raw = Array.isArray(value) ? value[0] : value
  if (typeof raw === 'string' && raw.startsWith('/') && !raw.startsWith('//') && !raw.startsWith('/\\')) return raw
  return '/'
}
