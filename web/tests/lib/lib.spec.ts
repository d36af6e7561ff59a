import { describe, expect, it, vi } from 'vitest'
import { debounce } from '@/lib/debounce'
import { durationSeconds, formatDuration, formatPercent } from '@/lib/format'
import { pageFromQuery, withPage } from '@/lib/paging'
import { dpSpent, formatDelta, formatEpsilon, securelyAggregated } from '@/lib/privacy'
import { safeRedirect } from '@/lib/redirect'
import { errorText } from '@/lib/errors'
import { ApiError } from '@/api'
import { createAppI18n } from '@/i18n'

describe('lib', () => {
  it('debounce calls once with the last arguments, and flush runs it now', () => {
    vi.useFakeTimers()
    const fn = vi.fn()
    const d = debounce(fn, 300)
    d('a')
    d('b')
    vi.advanceTimersByTime(299)
    expect(fn).not.toHaveBeenCalled()
    vi.advanceTimersByTime(1)
    expect(fn).toHaveBeenCalledExactlyOnceWith('b')
    d('c')
    d.flush()
    expect(fn).toHaveBeenLastCalledWith('c')
    d('d')
    d.cancel()
    vi.advanceTimersByTime(1000)
    expect(fn).toHaveBeenCalledTimes(2)
    vi.useRealTimers()
  })

  it('formats percentages and durations', () => {
    expect(formatPercent(0.934)).toBe('93%')
    expect(formatPercent(0.08, 1)).toBe('8.0%')
    expect(formatDuration(65)).toBe('1m 05s')
    expect(formatDuration(9)).toBe('9s')
    expect(formatDuration(null)).toBe('—')
    expect(durationSeconds('2026-01-01T00:00:00Z', '2026-01-01T00:01:30Z')).toBe(90)
    expect(durationSeconds(null, null)).toBeNull()
  })

  it('formats long durations in hours and days, not thousands of minutes', () => {
    expect(formatDuration(3_600)).toBe('1h 00m')
    expect(formatDuration(52_156)).toBe('14h 29m')
    expect(formatDuration(200_000)).toBe('2d 07h')
    expect(formatDuration(59.6)).toBe('1m 00s')
    expect(formatDuration(Number.NaN)).toBe('—')
  })

  it('writes durations with Chinese units in Chinese', () => {
    expect(formatDuration(9, 'zh-CN')).toBe('9秒')
    expect(formatDuration(65, 'zh-CN')).toBe('1分05秒')
    expect(formatDuration(52_156, 'zh-CN')).toBe('14小时29分')
    expect(formatDuration(200_000, 'zh-CN')).toBe('2天07小时')
    expect(formatDuration(65, 'en')).toBe('1m 05s')
  })

  it('reads ?page= defensively', () => {
    expect(pageFromQuery('3')).toBe(3)
    expect(pageFromQuery(['2', '5'])).toBe(2)
    expect(pageFromQuery('-1')).toBe(1)
    expect(pageFromQuery('abc')).toBe(1)
    expect(pageFromQuery(undefined)).toBe(1)
    expect(withPage('/tag/x', 1)).toBe('/tag/x')
    expect(withPage('/tag/x', 2)).toBe('/tag/x?page=2')
  })

  it('only follows local redirects', () => {
    expect(safeRedirect('/article/a?x=1')).toBe('/article/a?x=1')
    expect(safeRedirect('//evil.example')).toBe('/')
    expect(safeRedirect('https://evil.example')).toBe('/')
    expect(safeRedirect('/\\evil.example')).toBe('/')
    expect(safeRedirect(null)).toBe('/')
  })

  it('translates known errors and falls back to the server message', () => {
    const i18n = createAppI18n('zh-CN')
    const { t, te } = i18n.global
    const tr = (key: string, named?: Record<string, unknown>) => (named ? t(key, named) : t(key))
    const has = (key: string) => te(key)
    expect(errorText(new ApiError(503, 'whatever', 'down'), tr, has)).toBe('情感模型暂时不可用，请稍后再试。')
    expect(errorText(new ApiError(429, 'cooldown', 'x', null, 12), tr, has)).toBe('请求过于频繁，请 12 秒后再试。')
    expect(errorText(new ApiError(0, 'network_error', 'Failed to fetch'), tr, has)).toContain('无法连接服务器')
    expect(errorText(new ApiError(422, 'text_empty', 'text must not be empty'), tr, has)).toBe('text must not be empty')
  })

  it('reads the privacy of a run from its last rounds and formats ε and δ', () => {
    const r = (round: number, extra: object = {}) => ({ round, clients: 3, train_loss: null, val_loss: null, val_accuracy: null, val_macro_f1: null, seconds: 1, ...extra })
    // Out of order on purpose: the last round is the highest, not the last element.
    const dp = [r(2, { secure: true, epsilon: 2.5, delta: 1e-5 }), r(0), r(1, { secure: false, epsilon: 1, delta: 1e-5 })]
    expect(dpSpent(dp)).toEqual({ epsilon: 2.5, delta: 1e-5, rounds: 2 })
    expect(securelyAggregated(dp)).toBe(true)
    expect(dpSpent([r(0), r(1, { epsilon: null, delta: 1e-5 })])?.epsilon).toBe(Infinity)
    expect(dpSpent([r(0), r(1, { secure: true })])).toBeNull()
    expect(dpSpent(undefined)).toBeNull()
    expect(securelyAggregated([r(0, { secure: true })])).toBeNull()
    expect(securelyAggregated([r(0), r(1)])).toBe(false)
    expect(formatEpsilon(3.2149)).toBe('3.21')
    expect(formatEpsilon(Infinity)).toBe('∞')
    expect(formatDelta(1e-5)).toBe('1e-5')
    expect(formatDelta(0.0000025)).toBe('2.5e-6')
    expect(formatDelta(null)).toBe('?')
  })
})
