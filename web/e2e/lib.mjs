// Shared helpers of the end-to-end suite: Debian's Chromium driven by playwright-core
// (no browser download), the server under test from E2E_BASE_URL, artifacts under
// E2E_ARTIFACTS. scripts/e2e.sh starts `bloginfer up` and sets all of these.
import { mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { chromium } from 'playwright-core'

export const BASE_URL = (process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '')
// Default: the repository's var/e2e-artifacts (var/ is git-ignored), wherever this runs from.
export const ARTIFACTS = path.resolve(
  process.env.E2E_ARTIFACTS ?? fileURLToPath(new URL('../../var/e2e-artifacts', import.meta.url)),
)
/** The data dir of the `bloginfer up` under test (admin-login.txt lives there). */
export const DATA_DIR = process.env.E2E_DATA_DIR ?? null
export const CHROMIUM = process.env.E2E_CHROMIUM ?? '/usr/bin/chromium'

/** Generous waits: pending sentiment is back-filled every few seconds, training takes minutes. */
export const WAIT = { ui: 15_000, sentiment: 90_000, training: 300_000 }

export const DESKTOP = { width: 1280, height: 900 }
export const PHONE = { width: 390, height: 844 }

// Without the background-networking flags Chromium keeps dialling out, and on a closed
// machine those refused connections slow everything down.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** Launches Chromium; `launch` gives every browser a fresh temporary user-data dir. */
export async function launchBrowser() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS })
}

/**
 * A new context (own storage, so its own session) and page. Page errors and failed
 * same-origin requests are collected so a test can assert there were none.
 */
export async function newPage(browser, { viewport = DESKTOP, locale = 'en-US' } = {}) {
  const context = await browser.newContext({ viewport, locale, baseURL: BASE_URL, deviceScaleFactor: 1 })
  const page = await context.newPage()
  page.errors = []
  page.on('pageerror', (err) => page.errors.push(String(err)))
  page.setDefaultTimeout(WAIT.ui)
  return page
}

export async function screenshot(page, name) {
  await mkdir(ARTIFACTS, { recursive: true })
  const file = path.join(ARTIFACTS, `${name}.png`)
  await page.screenshot({ path: file, fullPage: true })
  return file
}

export const byTestId = (id) => `[data-testid="${id}"]`

/** A unique suffix for user names, e-mails and titles of this run. */
export function uniqueSuffix() {
  return `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
}

export async function register(page, { username, email, password }) {
  await page.goto('/register')
  await page.fill(byTestId('register-username'), username)
  await page.fill(byTestId('register-email'), email)
  await page.fill(byTestId('register-password'), password)
  await page.click(byTestId('register-submit'))
  // Attached, not visible: on a phone the navigation is folded behind the menu button.
  await page.waitForSelector(byTestId('nav-profile'), { state: 'attached' })
}

export async function login(page, { email, password }) {
  await page.goto('/login')
  await page.fill(byTestId('login-email'), email)
  await page.fill(byTestId('login-password'), password)
  await page.click(byTestId('login-submit'))
  // Attached, not visible: on a phone the navigation is folded behind the menu button.
  await page.waitForSelector(byTestId('nav-profile'), { state: 'attached' })
}

/** A JSON request to the server under test, outside the browser. */
export async function api(method, urlPath, { token, body } = {}) {
  const headers = { Accept: 'application/json' }
  if (token) headers.Authorization = `Token ${token}`
  if (body !== undefined) headers['Content-Type'] = 'application/json'
  const response = await fetch(`${BASE_URL}${urlPath}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  const text = await response.text()
  let json = null
  try {
    json = text ? JSON.parse(text) : null
  } catch {
    json = null
  }
  return { status: response.status, headers: response.headers, text, json }
}

/**
 * The admin credentials `bloginfer up` writes to `<data dir>/admin-login.txt`
 * (`email: ...` and `password: ...` lines), or null when there is no such file.
 */
export async function readAdminLogin(dataDir = DATA_DIR) {
  if (!dataDir) return null
  let text
  try {
    text = await readFile(path.join(dataDir, 'admin-login.txt'), 'utf8')
  } catch {
    return null
  }
  return parseAdminLogin(text)
}

export function parseAdminLogin(text) {
  const fields = {}
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*(email|password)\s*:\s*(.*?)\s*$/i.exec(line)
    if (match) fields[match[1].toLowerCase()] = match[2]
  }
  return fields.email && fields.password ? { email: fields.email, password: fields.password } : null
}

/**
 * How wide the page is against its viewport, and the innermost elements that stick out
 * past its right edge (the culprits when scrollWidth > innerWidth).
 */
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const doc = document.documentElement
    const limit = window.innerWidth + 1
    const sticksOut = (el) => el.getBoundingClientRect().right > limit
    const name = (el) => {
      const cls = typeof el.className === 'string' && el.className.trim() ? '.' + el.className.trim().split(/\s+/).join('.') : ''
      const id = el.dataset?.testid ? `[data-testid=${el.dataset.testid}]` : ''
      return `${el.tagName.toLowerCase()}${cls}${id} (right ${Math.round(el.getBoundingClientRect().right)})`
    }
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => sticksOut(el) && ![...el.children].some(sticksOut))
      .filter((el) => {
        // Content scrolled inside an overflow container does not widen the page, unless it
        // is positioned out of it (an absolute child of an unpositioned scroller escapes).
        if (['absolute', 'fixed'].includes(getComputedStyle(el).position)) return true
        for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
          const o = getComputedStyle(p).overflowX
          if (o === 'auto' || o === 'scroll' || o === 'hidden') return false
        }
        return true
      })
      .slice(0, 8)
      .map(name)
    return { scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, wide }
  })
}

/**
 * Answers the admin endpoints (`/v1/trainings...`, `/v1/models`, `/v1/feedback/...`) in
 * `context` with fixed data shaped as web/API.md says, and marks the signed-in user as an
 * admin. For looking at the dashboard's layout while the orchestrator does not exist; the
 * blog API and inference stay real.
 */
export async function stubOrchestrator(context, { currentVersion } = {}) {
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
  const run = (id, fields) => ({
    id, status: 'succeeded', phase: 'done', created_at: iso(0), started_at: iso(1), finished_at: iso(82),
    strategy: 'fedavg', workers: 2, rounds: 10, rounds_done: 10, candidate_version: null, promoted: false, error: null, ...fields,
  })
  const current = currentVersion ?? '20261201T090122000Z-17fdb3f9'
  const runs = [
    run('fl-20261201t093000-3f1c2a', { status: 'running', phase: 'round 4 of 10', created_at: iso(1800), started_at: iso(1801), finished_at: null, strategy: 'fedprox', workers: 3, rounds_done: 4 }),
    run('fl-20261201t090000-a81d77', { candidate_version: current, promoted: true }),
    run('fl-20261130t210000-0bd3e1', { status: 'failed', phase: 'round 2 of 5', created_at: iso(-43200), started_at: iso(-43199), finished_at: iso(-43180), rounds: 5, rounds_done: 2, error: 'worker w1 stopped answering (timeout after 30 s)' }),
  ]
  const samples = (workers) => Array.from({ length: workers }, (_, i) => ({ worker_id: `w${i}`, samples: Math.round(14153 / workers) - i }))
  const details = Object.fromEntries(runs.map((r) => [r.id, { ...r, round_metrics: roundsOf(r.rounds_done, r.workers), worker_samples: samples(r.workers) }]))
  const versions = [
    { version: current, created_at: iso(82), method: 'federated', accuracy: 0.8331, macro_f1: 0.8325, current: true },
    { version: '20261130T215703551Z-dd35798f', created_at: iso(-50000), method: 'central', accuracy: 0.841, macro_f1: 0.8399, current: false },
    { version: '20261129T101500000Z-0a0b0c0d', created_at: iso(-150000), method: 'federated', accuracy: 0.7912, macro_f1: 0.789, current: false },
  ]
  // Three LLM labels held for review, each against a confident model; decisions remove them.
  const sample = (id, text, label, confidence, modelScore, topics, reason) => ({
    id, text, label, source: 'llm', confidence, labeler: 'qwen2.5-7b-instruct', topics, reason,
    model_label: modelScore >= 0.5 ? 'positive' : 'negative', model_score: modelScore, model_version: current,
    status: 'review', status_reason: 'disagreement', comment_id: 500 + id, author_id: 3 + (id % 2), shard_key: `user:${3 + (id % 2)}`,
    created_at: iso(3600 + id * 60), updated_at: iso(3600 + id * 60), used_by_run: null, used_at: null,
  })
  let held = [
    sample(41, '服务员态度还行吧，就是上菜太慢了，等了快一个小时，联系 <phone> 也没人接。', 'negative', 0.82, 0.91, ['service', 'waiting time'], 'Complains about a long wait and unanswered calls.'),
    sample(40, '价格不便宜，但是物有所值，下次还来', 'positive', 0.88, 0.14, ['price', 'value'], 'Says it is worth the price and will come back.'),
    sample(39, '呵呵，真是"好"酒店', 'negative', 0.74, 0.87, [], 'Sarcastic quotation marks around 好.'),
  ]
  const feedback = () => ({
    total: 1739,
    by_source: { llm: 412, pseudo: 1290, human: 37 },
    by_label: { positive: 980, negative: 702, neutral: 57 },
    by_status: { accepted: 1602, review: held.length, rejected: 137 - held.length },
    breakdown: [],
    used: 1420,
    comments: { pending: 3, labeled: 1739, duplicate: 24, failed: 1 },
    labeler: { source: 'llm', model: 'qwen2.5-7b-instruct' },
    policy: {
      min_confidence: { llm: 0.7, pseudo: 0.9, human: 0 },
      hold_disagreements: true,
      disagreement_confidence: 0.8,
      max_per_author: 50,
      max_class_ratio: 1.5,
    },
    next_run: { selected: 1518, dropped: { author_cap: 61, class_balance: 23 } },
  })
  const json = (route, value, status = 200) => route.fulfill({ status, contentType: 'application/json', body: JSON.stringify(value) })
  await context.route('**/api/user', async (route) => {
    if (route.request().method() !== 'GET') return route.continue()
    const res = await route.fetch()
    const data = await res.json()
    if (data?.user) data.user.admin = true
    return json(route, data, res.status())
  })
  await context.route('**/v1/trainings', (route) => json(route, { trainings: runs, active_id: runs[0].id, cooldown_seconds: 0 }))
  await context.route('**/v1/trainings/*', (route) => {
    const id = decodeURIComponent(new URL(route.request().url()).pathname.split('/').pop())
    return details[id] ? json(route, details[id]) : json(route, { error: { code: 'not_found', message: 'no such run' } }, 404)
  })
  await context.route('**/v1/models', (route) => json(route, { current, versions }))
  await context.route('**/v1/feedback/stats', (route) => json(route, feedback()))
  await context.route(/\/v1\/feedback\/samples(\?.*)?$/, (route) => json(route, { samples: held, total: held.length, limit: 20, offset: 0 }))
  await context.route(/\/v1\/feedback\/samples\/\d+$/, (route) => {
    const id = Number(new URL(route.request().url()).pathname.split('/').pop())
    const found = held.find((s) => s.id === id)
    if (!found) return json(route, { error: { code: 'not_found', message: `no sample ${id}` } }, 404)
    if (route.request().method() !== 'PUT') return json(route, { sample: found })
    const { status, label } = route.request().postDataJSON() ?? {}
    held = held.filter((s) => s.id !== id)
    const human = label ? { label, source: 'human', confidence: 1, labeler: 'review:admin' } : {}
    return json(route, { sample: { ...found, ...human, status, status_reason: null } })
  })
}
