// A screenshot tour of every page, for a person to look at (not a test):
//   E2E_BASE_URL=http://127.0.0.1:8080 node e2e/tour.mjs [page-name ...]
// It seeds an author, a reader, articles and comments through the API, then saves
// <page>-<locale>-<desktop|phone>.png under $E2E_ARTIFACTS/tour/. The admin dashboard is
// shown with a stubbed orchestrator (the /v1/trainings, /v1/models and /v1/feedback answers
// of web/API.md) and the user's `admin` flag forced on, since that is front-end work.
import { mkdir } from 'node:fs/promises'
import path from 'node:path'
import { ARTIFACTS, BASE_URL, DESKTOP, PHONE, api, launchBrowser, uniqueSuffix } from './lib.mjs'

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

// The stubbed orchestrator for the admin dashboard.
const t0 = Date.parse('2026-12-01T09:00:00Z')
const iso = (sec) => new Date(t0 + sec * 1000).toISOString()
const roundsOf = (n, workers) =>
  Array.from({ length: n }, (_, i) => ({
    round: i + 1,
    clients: workers,
    train_loss: 0.64 * Math.pow(0.92, i) + 0.02 * Math.sin(i),
    val_loss: 0.55 * Math.pow(0.95, i) + 0.1,
    val_accuracy: 0.69 + 0.15 * (1 - Math.pow(0.75, i)),
    val_macro_f1: 0.68 + 0.15 * (1 - Math.pow(0.75, i)),
    seconds: 4.8 + (i % 3) * 0.2,
  }))
const runs = [
  { id: 'tr-20261201t0930-3f1c2a', status: 'running', phase: 'round 4 of 10', created_at: iso(1800), started_at: iso(1801), finished_at: null, strategy: 'fedprox', workers: 3, rounds: 10, rounds_done: 4, candidate_version: null, promoted: false, error: null },
  { id: 'tr-20261201t0900-a81d77', status: 'succeeded', phase: 'done', created_at: iso(0), started_at: iso(1), finished_at: iso(82), strategy: 'fedavg', workers: 2, rounds: 10, rounds_done: 10, candidate_version: '20261201T090122000Z-17fdb3f9', promoted: true, error: null },
  { id: 'tr-20261130t2100-0bd3e1', status: 'failed', phase: 'round 2 of 5', created_at: iso(-43200), started_at: iso(-43199), finished_at: iso(-43180), strategy: 'fedavg', workers: 2, rounds: 5, rounds_done: 2, candidate_version: null, promoted: false, error: 'worker w1 stopped answering (timeout after 30 s)' },
]
const details = {
  [runs[0].id]: { ...runs[0], round_metrics: roundsOf(4, 3), worker_samples: [{ worker_id: 'w0', samples: 4718 }, { worker_id: 'w1', samples: 4718 }, { worker_id: 'w2', samples: 4717 }] },
  [runs[1].id]: { ...runs[1], round_metrics: roundsOf(10, 2), worker_samples: [{ worker_id: 'w0', samples: 7077 }, { worker_id: 'w1', samples: 7076 }] },
  [runs[2].id]: { ...runs[2], round_metrics: roundsOf(2, 2), worker_samples: [{ worker_id: 'w0', samples: 7077 }, { worker_id: 'w1', samples: 7076 }] },
}
const model = await api('GET', '/v1/sentiment/model')
const current = model.json?.version ?? '20261201T090122000Z-17fdb3f9'
const versions = [
  { version: current, created_at: iso(82), method: 'federated', accuracy: 0.8331, macro_f1: 0.8325, current: true },
  { version: '20261130T215703551Z-dd35798f', created_at: iso(-50000), method: 'central', accuracy: 0.841, macro_f1: 0.8399, current: false },
  { version: '20261129T101500000Z-0a0b0c0d', created_at: iso(-150000), method: 'federated', accuracy: 0.7912, macro_f1: 0.7890, current: false },
]
const feedback = { by_source: { llm: 412, pseudo: 1290, human: 37 }, by_label: { positive: 980, negative: 702, neutral: 57 }, by_status: { accepted: 1602, held: 98, rejected: 39 }, total: 1739 }

async function stubAdmin(context) {
  const json = (route, value, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(value) })
  await context.route('**/api/user', async (route) => {
    if (route.request().method() !== 'GET') return route.continue()
    const res = await route.fetch()
    const data = await res.json()
    data.user.admin = true
    return json(route, data, res.status())
  })
  await context.route('**/v1/trainings', (route) => json(route, { trainings: runs, active_id: runs[0].id, cooldown_seconds: 0 }))
  await context.route('**/v1/trainings/*', (route) => {
    const id = decodeURIComponent(new URL(route.request().url()).pathname.split('/').pop())
    return details[id] ? json(route, details[id]) : json(route, { error: { code: 'not_found', message: 'no such run' } }, 404)
  })
  await context.route('**/v1/models', (route) => json(route, { current, versions }))
  await context.route('**/v1/feedback/stats', (route) => json(route, feedback))
}

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
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)
        console.log(`${file}${overflow > 0 ? `  OVERFLOW ${overflow}px` : ''}${errors.length ? `  ERRORS ${errors.join(' | ')}` : ''}`)
        await context.close()
      }
    }
  }
} finally {
  await browser.close()
}
