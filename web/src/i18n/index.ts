// vue-i18n setup: English and Simplified Chinese, chosen from localStorage, else from
// navigator.language; the choice is remembered and mirrored on <html lang>.
import { createI18n } from 'vue-i18n'
import en, { type MessageSchema } from './en'
import zhCN from './zh-CN'

export const LOCALES = ['en', 'zh-CN'] as const
export type Locale = (typeof LOCALES)[number]
export const LOCALE_NAMES: Record<Locale, string> = { en: 'English', 'zh-CN': '中文' }
const STORAGE_KEY = 'bloginfer.locale'

function isLocale(value: unknown): value is Locale {
  return typeof value === 'string' && (LOCALES as readonly string[]).includes(value)
}

export function detectLocale(): Locale {
  try {
    const stored = localStorage.getItem(STORAGE_KEY)
    if (isLocale(stored)) return stored
  } catch {
    // Storage may be disabled; fall through to the browser language.
  }
  const preferred = typeof navigator === 'undefined' ? '' : (navigator.language ?? navigator.languages?.[0] ?? '')
  return preferred.toLowerCase().startsWith('zh') ? 'zh-CN' : 'en'
}

export function createAppI18n(locale: Locale = detectLocale()) {
  const i18n = createI18n<[MessageSchema], Locale, false>({
    legacy: false,
    locale,
    fallbackLocale: 'en',
    messages: { en, 'zh-CN': zhCN },
  })
  applyDocumentLang(locale)
  return i18n
}

export type AppI18n = ReturnType<typeof createAppI18n>

export function applyDocumentLang(locale: Locale): void {
  if (typeof document !== 'undefined') document.documentElement.lang = locale
}

export function persistLocale(locale: Locale): void {
  try {
    localStorage.setItem(STORAGE_KEY, locale)
  } catch {
    // Not remembered, but still applied for this visit.
  }
  applyDocumentLang(locale)
}

export { isLocale }
