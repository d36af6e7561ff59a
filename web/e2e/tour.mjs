// A screenshot tour of every page, for a person to look at (not a test):
//   E2E_BASE_URL=http://127.0.0.1:8080 node e2e/tour.mjs [page-name ...]
// It seeds an author, a reader, articles and comments through the API, then saves
// <page>-<locale>-<desktop|phone>.png under $E2E_ARTIFACTS/tour/. The admin dashboard is
// shown with a stubbed orchestrator (the /v1/trainings, /v1/models and /v1/feedback answers
// of web/API.md) and the user's `admin` flag forced on, since that is front-end work.
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { ARTIFACTS, BASE_URL, DESKTOP, PHONE, api, horizontalOverflow, launchBrowser, stubOrchestrator, uniqueSuffix } from './lib.mjs'

const only = new Set(process.argv.slice(2))
const out = path.join(ARTIFACTS, 'tour')
await mkdir(out, { recursive: true })

async function must(method, url, options) {
  const res = await api(method, url, options)
  if (res.status >= 300) throw new Error(`${method} ${url} -> ${res.status} ${res.text}`)
  return res.json
}

const s = uniqueSuffix()
const author = (await must('POST', '/api/users', { body: { user: { username: `王小明${s.slice(-4)}`, email: `a-${s}@example.test`, password: `pw-${s}-a` } } })).user
const reader = (await must('POST', '/api/users', { body: { user: { username: `reader_${s}`, email: `r-${s}@example.test`, password: `pw-${s}-r` } } })).user
await must('PUT', '/api/user', { token: author.token, body: { user: { bio: '写写代码，也写写生活。Writes about code and life.' } } })

const body = [
  '## 为什么选择联邦学习',
  '',
  'Federated learning keeps the **data on the device** and sends only model updates. 数据不出本地，只上传模型更新。',
  '',
  '- 隐私：原始评论不离开客户端',
  '- Robustness: `median` and `trimmed-mean` aggregation',
  '',
  '> 好的模型来自好的数据。',
  '',
  '```rust',
  'fn main() { println!("hello, 联邦"); }',
  '```',
  '',
  '| round | loss |',
  '| --- | --- |',
  '| 1 | 0.64 |',
  '| 10 | 0.32 |',
].join('\n')
const main = (await must('POST', '/api/articles', {
  token: author.token,
  body: { article: { title: `联邦学习入门：在笔记本上训练情感模型 ${s}`, description: 'A first look at federated training', body, tagList: ['联邦学习', 'rust', 'ml'] } },
})).article
for (let i = 1; i <= 11; i++) {
  await must('POST', '/api/articles', {
    token: i % 2 ? author.token : reader.token,
    body: { article: { title: `Filler article ${i} ${s}`, description: `Description of filler ${i}`, body: `Body ${i}`, tagList: i % 3 ? ['filler'] : [] } },
  })
}
for (const text of [
  '这家酒店干净整洁，服务也很热情，下次还会再来',
  '质量太差了，用了两天就坏了，非常失望',
  '写得很清楚，终于看懂了联邦学习的原理，感谢作者分享！这一段关于聚合策略的解释尤其有帮助，希望以后多写一些关于差分隐私的内容。',
]) {
  await must('POST', `/api/articles/${main.slug}/comments`, { token: reader.token, body: { comment: { body: text } } })
}
await must('POST', `/api/profiles/${encodeURIComponent(author.username)}/follow`, { token: reader.token })
await must('POST', `/api/articles/${main.slug}/favorite`, { token: reader.token })
// Wait for the back-fill of the comments' sentiment.
for (let i = 0; i < 60; i++) {
  const { comments } = await must('GET', `/api/articles/${main.slug}/comments`)
  if (comments.every((c) => c.sentiment)) break
  await new Promise((r) => setTimeout(r, 1000))
}

// The admin dashboard with a stubbed orchestrator.
const model = await api('GET', '/v1/sentiment/model')
const stubAdmin = (context) => stubOrchestrator(context, { currentVersion: model.json?.version })

const pages = [
  ['home', '/', null, '[data-testid="article-preview"]'],
  ['feed', '/feed', reader, '[data-testid="article-preview"]'],
  ['tag', '/tag/filler', null, '[data-testid="article-preview"]'],
  ['article-reader', `/article/${main.slug}`, reader, '[data-testid="sentiment-chip"]'],
  ['article-author', `/article/${main.slug}`, author, '[data-testid="correct-positive"]'],
  ['article-guest', `/article/${main.slug}`, null, '[data-testid="sentiment-chip"]'],
  ['editor', '/editor', author, '[data-testid="editor-title"]'],
  ['editor-edit', `/editor/${main.slug}`, author, '[data-testid="editor-title"]'],
  ['profile', `/profile/${encodeURIComponent(author.username)}`, reader, '[data-testid="article-preview"]'],
  ['profile-favorites', `/profile/${encodeURIComponent(reader.username)}/favorites`, reader, '[data-testid="article-preview"]'],
  ['settings', '/settings', author, 'form'],
  ['login', '/login', null, '[data-testid="login-submit"]'],
  ['login-error', '/login', null, '[data-testid="login-submit"]', async (page) => {
    await page.fill('[data-testid="login-email"]', 'nobody@example.test')
    await page.fill('[data-testid="login-password"]', 'wrong-password')
    await page.click('[data-testid="login-submit"]')
    await page.waitForSelector('[data-testid="error-messages"]')
  }],
  ['register', '/register', null, '[data-testid="register-submit"]'],
  ['register-error', '/register', null, '[data-testid="register-submit"]', async (page) => {
    await page.fill('[data-testid="register-username"]', reader.username)
    await page.fill('[data-testid="register-email"]', reader.email)
    await page.fill('[data-testid="register-password"]', 'whatever-password')
    await page.click('[data-testid="register-submit"]')
    await page.waitForSelector('[data-testid="error-messages"]')
  }],
  ['try', '/try', null, '[data-testid="try-input"]', async (page) => {
    await page.fill('[data-testid="try-input"]', '物流很快，包装完好，性价比不错')
    await page.waitForSelector('[data-testid="try-result"]')
  }],
  ['try-empty', '/try', null, '[data-testid="try-input"]'],
  ['dashboard-guest', '/dashboard', null, '[data-testid="admins-only"]'],
  ['dashboard-user', '/dashboard', reader, '[data-testid="admins-only"]'],
  ['dashboard-admin', '/dashboard', author, 'canvas[data-testid="loss-chart"]', null, stubAdmin],
  ['not-found', '/no/such/page', null, 'h1'],
]

const browser = await launchBrowser()
try {
  for (const [name, url, who, ready, act, setup] of pages) {
    if (only.size && !only.has(name)) continue
    for (const locale of ['en', 'zh-CN']) {
      for (const [width, viewport] of [['desktop', DESKTOP], ['phone', PHONE]]) {
        const context = await browser.newContext({ viewport, baseURL: BASE_URL, deviceScaleFactor: 1 })
        await context.addInitScript(
          ([token, loc]) => {
            if (token) localStorage.setItem('bloginfer.token', token)
            localStorage.setItem('bloginfer.locale', loc)
          },
          [who?.token ?? null, locale],
        )
        if (setup) await setup(context)
        const page = await context.newPage()
        const errors = []
        page.on('pageerror', (e) => errors.push(String(e)))
        page.on('console', (m) => m.type() === 'error' && errors.push(m.text()))
        await page.goto(url)
        await page.waitForSelector(ready, { timeout: 15_000 })
        if (act) await act(page)
        await page.waitForTimeout(700) // charts animate in
        const file = path.join(out, `${name}-${locale}-${width}.png`)
        await page.screenshot({ path: file, fullPage: true })
        const { scrollWidth, innerWidth, wide } = await horizontalOverflow(page)
        const overflow = scrollWidth > innerWidth ? `  OVERFLOW ${scrollWidth - innerWidth}px: ${wide.join(', ')}` : ''
        console.log(`${file}${overflow}${errors.length ? `  ERRORS ${errors.join(' | ')}` : ''}`)
        await context.close()
      }
    }
  }
} finally {
  await browser.close()
}
