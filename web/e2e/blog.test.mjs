// The blog in a real browser: register, write an article whose Markdown carries a heading
// and a <script>, post a clearly positive and a clearly negative Chinese comment and see
// each chip settle on the right label; the try-it page, the language switch and a phone.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  PHONE,
  WAIT,
  byTestId,
  horizontalOverflow,
  launchBrowser,
  newPage,
  register,
  screenshot,
  uniqueSuffix,
} from './lib.mjs'

const POSITIVE = '这家酒店干净整洁，服务也很热情，下次还会再来'
const NEGATIVE = '质量太差了，用了两天就坏了，非常失望'

let browser
before(async () => {
  browser = await launchBrowser()
})
after(async () => {
  await browser?.close()
})

describe('blog: register, write, comment', () => {
  const suffix = uniqueSuffix()
  const user = { username: `e2e${suffix}`, email: `e2e-${suffix}@example.test`, password: `pw-${suffix}-secret` }
  const title = `E2E article ${suffix}`
  let page
  let articleUrl = null

  before(async () => {
    page = await newPage(browser)
  })
  after(async () => {
    await page?.context().close()
  })

  test('register a new user', async () => {
    await register(page, user)
    const name = (await page.textContent(byTestId('nav-profile'))).trim()
    assert.equal(name, user.username)
    assert.ok(await page.evaluate(() => localStorage.getItem('bloginfer.token')), 'a session token is stored')
  })

  test('write an article: Markdown rendered, <script> neither run nor in the DOM', async (t) => {
    if (!(await page.$(byTestId('nav-profile')))) return t.skip('needs the registered user')
    await page.click(byTestId('nav-editor'))
    await page.fill(byTestId('editor-title'), title)
    await page.fill(byTestId('editor-description'), 'What the comments say about it')
    await page.fill(
      byTestId('editor-body'),
      [
        '## A heading from Markdown',
        '',
        'Some **bold** words and a [link](https://example.test/).',
        '',
        '<script>window.__e2eInjected = true; document.title = "pwned"</script>',
        '',
        '<img src="x" onerror="window.__e2eInjected = true">',
      ].join('\n'),
    )
    await page.fill(byTestId('editor-tags'), 'e2e')
    await page.keyboard.press('Enter')
    await page.click(byTestId('editor-publish'))
    await page.waitForURL(/\/article\//)
    articleUrl = page.url()

    await page.waitForSelector(byTestId('article-title'))
    assert.equal((await page.textContent(byTestId('article-title'))).trim(), title)
    const body = page.locator('.article-body')
    assert.equal((await body.locator('h2').textContent()).trim(), 'A heading from Markdown')
    assert.equal(await body.locator('strong').textContent(), 'bold')
    assert.equal(await body.locator('script').count(), 0, 'no <script> element in the rendered body')
    assert.equal(await page.locator('script:not([src])').count(), 0, 'no inline <script> anywhere on the page')
    assert.equal(await body.locator('[onerror]').count(), 0, 'no event-handler attribute survives')
    assert.equal(await page.evaluate(() => window.__e2eInjected), undefined, 'the injected script did not run')
    assert.notEqual(await page.title(), 'pwned')
    assert.equal(await page.locator(`${byTestId('tag-list')} >> text=e2e`).count(), 1)
  })

  test('a positive and a negative Chinese comment get the right sentiment chips', async (t) => {
    if (!articleUrl) return t.skip('needs the article')
    for (const text of [POSITIVE, NEGATIVE]) {
      await page.fill(byTestId('comment-input'), text)
      await page.click(byTestId('comment-submit'))
      await page.locator(byTestId('comment'), { hasText: text }).waitFor()
    }
    assert.equal(await page.locator(byTestId('comment')).count(), 2)

    // A new comment is usually pending (sentiment null) until the backend back-fills it.
    const chipOf = (text) => page.locator(byTestId('comment'), { hasText: text }).locator(byTestId('sentiment-chip'))
    for (const [text, expected] of [
      [POSITIVE, 'positive'],
      [NEGATIVE, 'negative'],
    ]) {
      const chip = chipOf(text)
      await chip.and(page.locator('[data-label="positive"], [data-label="negative"]')).waitFor({ timeout: WAIT.sentiment })
      assert.equal(await chip.getAttribute('data-label'), expected, `chip of "${text}"`)
      assert.equal(await chip.getAttribute('data-source'), 'model')
      const score = (await chip.locator(byTestId('sentiment-score')).textContent()).trim()
      assert.match(score, /^\d{1,3}%$/, 'the chip shows its confidence')
      assert.ok(Number.parseInt(score, 10) >= 50, `confidence in the shown label is at least 50% (got ${score})`)
    }
    await page.locator(byTestId('comments-pending')).waitFor({ state: 'detached' })
    // The article's author may correct a label.
    assert.equal(await page.locator(byTestId('correct-positive')).count(), 2)
    await screenshot(page, 'article-page')
  })

  test('the comments and their chips are still there after a reload', async (t) => {
    if (!articleUrl) return t.skip('needs the article')
    await page.goto(articleUrl)
    const chips = page.locator(byTestId('sentiment-chip'))
    await chips.nth(1).waitFor()
    const labels = await page.locator(byTestId('comment')).evaluateAll((cards) =>
      cards.map((card) => [
        card.querySelector('[data-testid="comment-body"]').textContent.trim(),
        card.querySelector('[data-testid="sentiment-chip"]').dataset.label,
      ]),
    )
    assert.deepEqual(Object.fromEntries(labels), { [POSITIVE]: 'positive', [NEGATIVE]: 'negative' })
    assert.deepEqual(page.errors, [], 'no uncaught errors on the page')
  })

  test("the article's author corrects a label: the chip gets the author mark, and keeps it", async (t) => {
    if (!articleUrl) return t.skip('needs the article')
    const card = () => page.locator(byTestId('comment'), { hasText: NEGATIVE })
    await card().locator(byTestId('correct-positive')).click()
    const chip = card().locator(`${byTestId('sentiment-chip')}[data-source="human"]`)
    await chip.waitFor()
    assert.equal(await chip.getAttribute('data-label'), 'positive')
    assert.equal(await card().locator(byTestId('sentiment-mark-human')).count(), 1)
    assert.equal(await card().locator(byTestId('sentiment-score')).count(), 0, 'a human label shows no model score')
    assert.equal(await card().locator(byTestId('correct-positive')).isDisabled(), true)
    await page.reload()
    await card().locator(`${byTestId('sentiment-chip')}[data-source="human"][data-label="positive"]`).waitFor()
    // The other comment keeps the model's label.
    const other = page.locator(byTestId('comment'), { hasText: POSITIVE }).locator(byTestId('sentiment-chip'))
    assert.equal(await other.getAttribute('data-source'), 'model')
  })
})

describe('try it', () => {
  test('typing a sentence shows a live label', async () => {
    const page = await newPage(browser)
    try {
      await page.goto('/try')
      // Typed, not submitted: the page predicts as you type.
      await page.locator(byTestId('try-input')).pressSequentially(POSITIVE, { delay: 5 })
      const result = page.locator(byTestId('try-result'))
      await result.waitFor()
      await page.waitForFunction(
        (text) => document.querySelector('[data-testid="try-input"]').value === text,
        POSITIVE,
      )
      await page.locator(`${byTestId('try-result')}[data-label="positive"]`).waitFor({ timeout: WAIT.ui })
      assert.match(await page.textContent(byTestId('try-model-version')), /\S/)

      await page.fill(byTestId('try-input'), NEGATIVE)
      await page.locator(`${byTestId('try-result')}[data-label="negative"]`).waitFor({ timeout: WAIT.ui })
      const score = (await page.textContent(byTestId('try-score'))).trim()
      assert.ok(Number.parseFloat(score) < 50, `P(positive) of the negative sentence is below 50% (got ${score})`)
      await screenshot(page, 'try-page')
      assert.deepEqual(page.errors, [])
    } finally {
      await page.context().close()
    }
  })
})

describe('language', () => {
  test('switching to 中文 changes the interface text, and it is remembered', async () => {
    const page = await newPage(browser)
    try {
      await page.goto('/')
      const home = page.locator(byTestId('nav-home'))
      assert.equal((await home.textContent()).trim(), 'Home')
      await page.selectOption(byTestId('language-switch'), 'zh-CN')
      await page.waitForFunction(() => document.querySelector('[data-testid="nav-home"]').textContent.trim() === '首页')
      assert.equal(await page.getAttribute('html', 'lang'), 'zh-CN')
      assert.equal((await page.textContent(byTestId('tab-global-feed'))).trim(), '全部文章')
      await page.reload()
      await page.waitForSelector(byTestId('nav-home'))
      assert.equal((await home.textContent()).trim(), '首页')
      await page.selectOption(byTestId('language-switch'), 'en')
      await page.waitForFunction(() => document.querySelector('[data-testid="nav-home"]').textContent.trim() === 'Home')
    } finally {
      await page.context().close()
    }
  })
})

describe('phone layout', () => {
  for (const [name, url, ready] of [
    ['home', '/', `${byTestId('article-preview')}, ${byTestId('no-articles')}`],
    ['try', '/try', byTestId('try-input')],
    ['register', '/register', byTestId('register-submit')],
  ]) {
    test(`${name} page at 390x844 has no horizontal scrolling`, async () => {
      const page = await newPage(browser, { viewport: PHONE })
      try {
        await page.goto(url)
        await page.waitForSelector(ready)
        const { scrollWidth, innerWidth, wide } = await horizontalOverflow(page)
        assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} > innerWidth ${innerWidth}; too wide: ${wide.join(', ')}`)
        // The navigation collapses behind the menu button on a phone.
        assert.ok(await page.isVisible(byTestId('nav-toggle')), 'the menu button shows')
        assert.equal(await page.isVisible(byTestId('nav-try')), false, 'the links hide behind it')
        await page.click(byTestId('nav-toggle'))
        await page.waitForSelector(`${byTestId('nav-try')}:visible`)
        if (name === 'home') await screenshot(page, 'home-phone')
      } finally {
        await page.context().close()
      }
    })
  }
})
