import { describe, expect, it } from 'vitest'
import { flushPromises } from '@vue/test-utils'
import CommentsSection from '@/components/comments/CommentsSection.vue'
import { useAuthStore } from '@/stores/auth'
import { useCommentsStore } from '@/stores/comments'
import { canCorrectSentiment } from '@/lib/permissions'
import { mountApp } from '../helpers/mount'
import { json, mockFetch } from '../helpers/fetch'
import { article, comment, profile, sentiment, user } from '../helpers/fixtures'
import type { User } from '@/api'

const post = article({ author: profile({ username: 'author' }) })
const LIST = '/api/articles/hello/comments'

async function section(viewer: User | null) {
  const fetch = mockFetch()
    .on('GET', LIST, json({ comments: [comment(1, { author: profile({ username: 'reader' }) })] }))
    .on('PUT', `${LIST}/1/sentiment`, json({ comment: comment(1, { sentiment: sentiment({ label: 'negative', source: 'human' }) }) }))
  if (viewer) useAuthStore().user = viewer
  await useCommentsStore().load('hello')
  const { wrapper } = await mountApp(CommentsSection, { props: { article: post } })
  return { wrapper, fetch }
}

describe('comment sentiment correction rules', () => {
  it('is offered to the article author, who can correct a label', async () => {
    const { wrapper, fetch } = await section(user({ username: 'author' }))
    expect(wrapper.find('[data-testid="sentiment-correct"]').exists()).toBe(true)
    await wrapper.get('[data-testid="correct-negative"]').trigger('click')
    await flushPromises()
    expect(fetch.callsTo('PUT', `${LIST}/1/sentiment`)[0]!.body).toEqual({ label: 'negative' })
    expect(wrapper.get('[data-testid="sentiment-chip"]').attributes('data-label')).toBe('negative')
    expect(wrapper.find('[data-testid="sentiment-mark-human"]').exists()).toBe(true)
  })

  it('is offered to an admin who did not write the article', async () => {
    const { wrapper } = await section(user({ username: 'ops', admin: true }))
    expect(wrapper.find('[data-testid="sentiment-correct"]').exists()).toBe(true)
  })

  it('is hidden from other signed-in users, even the commenter', async () => {
    const { wrapper } = await section(user({ username: 'reader' }))
    expect(wrapper.find('[data-testid="sentiment-chip"]').exists()).toBe(true)
    expect(wrapper.find('[data-testid="sentiment-correct"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="comment-delete"]').exists()).toBe(true)
  })

  it('is hidden from visitors, who see a sign-in prompt instead of the form', async () => {
    const { wrapper } = await section(null)
    expect(wrapper.find('[data-testid="sentiment-correct"]').exists()).toBe(false)
    expect(wrapper.find('[data-testid="comment-input"]').exists()).toBe(false)
    expect(wrapper.text()).toContain('to add comments')
  })

  it('follows the same rule as the permissions helper', () => {
    expect(canCorrectSentiment(null, post)).toBe(false)
    expect(canCorrectSentiment(user({ username: 'author' }), post)).toBe(true)
    expect(canCorrectSentiment(user({ username: 'x', admin: true }), post)).toBe(true)
    expect(canCorrectSentiment(user({ username: 'x' }), post)).toBe(false)
  })
})

describe('posting a comment', () => {
  it('posts the textarea and shows the new comment as pending', async () => {
    const fetch = mockFetch()
      .on('GET', LIST, json({ comments: [] }))
      .on('POST', LIST, json({ comment: comment(5, { body: '写得很好', sentiment: null }) }))
    useAuthStore().user = user({ username: 'reader' })
    await useCommentsStore().load('hello')
    const { wrapper } = await mountApp(CommentsSection, { props: { article: post } })
    await wrapper.get('[data-testid="comment-input"]').setValue('写得很好')
    await wrapper.get('[data-testid="comment-submit"]').trigger('click')
    await flushPromises()
    expect(fetch.callsTo('POST', LIST)[0]!.body).toEqual({ comment: { body: '写得很好' } })
    expect(wrapper.get('[data-testid="comment-body"]').text()).toBe('写得很好')
    expect(wrapper.get('[data-testid="sentiment-chip"]').attributes('data-label')).toBe('pending')
    expect((wrapper.get('[data-testid="comment-input"]').element as HTMLTextAreaElement).value).toBe('')
    useCommentsStore().stop()
  })
})

describe('more comments', () => {
  it('offers the next page while there is one, and hides the button after the last', async () => {
    const all = Array.from({ length: 25 }, (_, i) => comment(i + 1))
    const fetch = mockFetch().on('GET', LIST, (call) => {
      const offset = Number(call.query.get('offset') ?? 0)
      const limit = Number(call.query.get('limit') ?? 20)
      return json({ comments: all.slice(offset, offset + limit), commentsCount: all.length })
    })
    await useCommentsStore().load('hello')
    const { wrapper } = await mountApp(CommentsSection, { props: { article: post } })
    expect(wrapper.findAll('[data-testid="comment-body"]')).toHaveLength(20)
    const more = wrapper.get('[data-testid="comments-more"]')
    expect(more.text()).toContain('5')
    await more.trigger('click')
    await flushPromises()
    expect(fetch.calls[1]!.query.get('offset')).toBe('20')
    expect(wrapper.findAll('[data-testid="comment-body"]')).toHaveLength(25)
    expect(wrapper.find('[data-testid="comments-more"]').exists()).toBe(false)
  })
})
