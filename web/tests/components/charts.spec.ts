import { describe, expect, it } from 'vitest'
import { lineOptions } from '@/components/charts/setup'

describe('line chart options', () => {
  it('draws legend entries as line samples, so dashed series look dashed', () => {
    const labels = lineOptions({}).plugins?.legend?.labels
    expect(labels?.usePointStyle).toBe(true)
    expect(labels?.pointStyle).toBe('line')
  })

  it('keeps the right-hand axis at zero or above, and only adds it when used', () => {
    expect(lineOptions({ hasRight: false }).scales?.y1).toBeUndefined()
    const y1 = lineOptions({ hasRight: true, yMin: 0 }).scales?.y1 as { min?: number; position?: string }
    expect(y1.min).toBe(0)
    expect(y1.position).toBe('right')
  })

  it('passes the left axis bounds, title and tick format through', () => {
    const options = lineOptions({ xTitle: 'Round', yMin: 0.5, yMax: 1, yFormat: (v) => `${v * 100}%` })
    const y = options.scales?.y as { min?: number; max?: number; ticks?: { callback?: (v: number) => string } }
    expect([y.min, y.max]).toEqual([0.5, 1])
    expect(y.ticks?.callback?.(0.5)).toBe('50%')
    expect((options.scales?.x as { title?: { text?: string } }).title?.text).toBe('Round')
  })
})
