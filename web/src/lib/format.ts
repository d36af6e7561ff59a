// Locale-aware formatting shared by the views.

export function formatDate(iso: string | null | undefined, locale: string): string {
  if (!iso) return '—'
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium' }).format(date)
}

export function formatDateTime(iso: string | null | undefined, locale: string): string {
  if (!iso) return '—'
  const date = new Date(iso)
  if (Number.isNaN(date.getTime())) return iso
  return new Intl.DateTimeFormat(locale, { dateStyle: 'medium', timeStyle: 'medium' }).format(date)
}

/** 0.9234 -> "92%" (or "92.3%" with one digit). */
export function formatPercent(value: number, digits = 0): string {
  return `${(value * 100).toFixed(digits)}%`
}

export function formatNumber(value: number, locale: string, digits = 0): string {
  return new Intl.NumberFormat(locale, { maximumFractionDigits: digits, minimumFractionDigits: digits }).format(value)
}

/** Seconds between two timestamps, or until now while still running. */
export function durationSeconds(start: string | null, end: string | null, now = Date.now()): number | null {
  if (!start) return null
  const from = Date.parse(start)
  const to = end ? Date.parse(end) : now
  if (Number.isNaN(from) || Number.isNaN(to)) return null
  return Math.max(0, Math.round((to - from) / 1000))
}

const DURATION_UNITS: Record<'en' | 'zh', { d: string; h: string; m: string; s: string; sep: string }> = {
  en: { d: 'd', h: 'h', m: 'm', s: 's', sep: ' ' },
  zh: { d: '天', h: '小时', m: '分', s: '秒', sep: '' },
}

/** 9 -> "9s", 65 -> "1m 05s", 52156 -> "14h 29m", 200000 -> "2d 07h"; in Chinese "1分05秒". */
export function formatDuration(seconds: number | null, locale = 'en'): string {
  if (seconds === null || !Number.isFinite(seconds)) return '—'
  const u = DURATION_UNITS[locale.toLowerCase().startsWith('zh') ? 'zh' : 'en']
  const total = Math.max(0, Math.round(seconds))
  const pad = (n: number) => String(n).padStart(2, '0')
  const d = Math.floor(total / 86_400)
  const h = Math.floor((total % 86_400) / 3_600)
  const m = Math.floor((total % 3_600) / 60)
  const s = total % 60
  if (d > 0) return `${d}${u.d}${u.sep}${pad(h)}${u.h}`
  if (h > 0) return `${h}${u.h}${u.sep}${pad(m)}${u.m}`
  if (m > 0) return `${m}${u.m}${u.sep}${pad(s)}${u.s}`
  return `${s}${u.s}`
}
