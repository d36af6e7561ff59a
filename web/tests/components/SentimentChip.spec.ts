import { describe, expect, it } from 'vitest'
import SentimentChip from '@/components/comments/SentimentChip.vue'
import { mountApp } from '../helpers/mount'
import { sentiment } from '../helpers/fixtures'
import type { CommentSentiment } from '@/api'

async function chip(value: CommentSentiment | null, canCorrect = false) {
  const { wrapper } = await mountApp(SentimentChip, { props: { sentiment: value, canCorrect } })
  return wrapper
}

describe('SentimentChip', () => {
  it('shows a positive label with the score as a percentage', async () => {
    const w = await chip(sentiment({ label: 'positive', score: 0.934 }))
    const el = w.get('[data-testid="sentiment-chip"]')
    expect(el.attributes('data-label')).toBe('positive')
    expect(el.text()).toContain('Positive')
    expect(w.get('[data-testid="sentiment-score"]').text()).toBe('93%')
    expect(el.attributes('title')).toContain('P(positive) = 93.4%')
  })

  it('shows a negative label with the confidence in that label', async () => {
    const w = await chip(sentiment({ label: 'negative', score: 0.12 }))
    const el = w.get('[data-testid="sentiment-chip"]')
    expect(el.attributes('data-label')).toBe('negative')
    expect(el.text()).toContain('Negative')
    expect(w.get('[data-testid="sentiment-score"]').text()).toBe('88%')
  })

  it('shows a pending state while the sentiment is null', async () => {
    const w = await chip(null)
    const el = w.get('[data-testid="sentiment-chip"]')
    expect(el.attributes('data-label')).toBe('pending')
    expect(el.text()).toContain('Analysing')
    expect(w.find('[data-testid="sentiment-score"]').exists()).toBe(false)
  })

  it('marks a label the author corrected, without a model score', async () => {
    const w = await chip(sentiment({ label: 'negative', score: 0.9, source: 'human' }))
    expect(w.get('[data-testid="sentiment-chip"]').attributes('data-source')).toBe('human')
    expect(w.find('[data-testid="sentiment-mark-human"]').exists()).toBe(true)
    expect(w.find('[data-testid="sentiment-mark-pseudo"]').exists()).toBe(false)
    expect(w.find('[data-testid="sentiment-score"]').exists()).toBe(false)
  })

  it('marks a pseudo label distinctly from a human one', async () => {
    const w = await chip(sentiment({ label: 'positive', score: 0.99, source: 'pseudo' }))
    const mark = w.get('[data-testid="sentiment-mark-pseudo"]')
    expect(mark.classes()).toContain('chip__mark--pseudo')
    expect(mark.attributes('aria-label')).toMatch(/confident prediction/)
    expect(w.find('[data-testid="sentiment-mark-human"]').exists()).toBe(false)
    expect(w.get('[data-testid="sentiment-score"]').text()).toBe('99%')
  })

  it('shows no mark for a plain model label', async () => {
    const w = await chip(sentiment({ source: 'model' }))
    expect(w.find('.chip__mark').exists()).toBe(false)
  })

  it('hides the correction control unless allowed', async () => {
    const w = await chip(sentiment())
    expect(w.find('[data-testid="sentiment-correct"]').exists()).toBe(false)
  })

  it('emits the chosen label from the correction control', async () => {
    const w = await chip(sentiment({ label: 'positive' }), true)
    await w.get('[data-testid="correct-negative"]').trigger('click')
    await w.get('[data-testid="correct-positive"]').trigger('click')
    expect(w.emitted('correct')).toEqual([['negative'], ['positive']])
  })

  it('disables re-applying the label a human already set', async () => {
    const w = await chip(sentiment({ label: 'negative', source: 'human' }), true)
    expect(w.get('[data-testid="correct-negative"]').attributes('disabled')).toBeDefined()
    expect(w.get('[data-testid="correct-negative"]').attributes('aria-pressed')).toBe('true')
    expect(w.get('[data-testid="correct-positive"]').attributes('disabled')).toBeUndefined()
  })

  it('lets a pending comment be labelled by hand', async () => {
    const w = await chip(null, true)
    await w.get('[data-testid="correct-positive"]').trigger('click')
    expect(w.emitted('correct')).toEqual([['positive']])
  })

  it('titles a human label without the model view the backend dropped', async () => {
    const w = await chip(sentiment({ label: 'negative', score: 0, modelVersion: null, source: 'human' }))
    const title = w.get('[data-testid="sentiment-chip"]').attributes('title')
    expect(title).toBe('corrected by the author')
    expect(title).not.toContain('P(positive)')
  })

  it('keeps the model view of a human label when the backend kept it', async () => {
    const w = await chip(sentiment({ label: 'negative', score: 0.81, modelVersion: 'v7', source: 'human' }))
    const title = w.get('[data-testid="sentiment-chip"]').attributes('title')
    expect(title).toBe('corrected by the author · P(positive) = 81.0% · model v7')
  })

  it('draws the correction buttons as SVG icons, not emoji', async () => {
    const w = await chip(sentiment(), true)
    for (const [label, icon] of [
      ['positive', 'thumbs-up'],
      ['negative', 'thumbs-down'],
    ]) {
      const button = w.get(`[data-testid="correct-${label}"]`)
      expect(button.find(`svg[data-icon="${icon}"]`).exists()).toBe(true)
      expect(button.text()).toBe('')
      expect(button.attributes('aria-label')).toBeTruthy()
    }
  })
})
