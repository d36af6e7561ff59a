// The ML dashboard in a real browser. Everyone but an admin gets an explanation; the admin
// flow (log in -> dashboard -> "Train now" -> a new run with its loss chart) needs the
// training orchestrator (`/v1/trainings`, web/API.md) and the admin login that `bloginfer up`
// writes to <data dir>/admin-login.txt. Until both exist that test is skipped, saying why.
import { after, before, describe, test } from 'node:test'
import assert from 'node:assert/strict'
import {
  DATA_DIR,
  DESKTOP,
  PHONE,
  WAIT,
  api,
  byTestId,
  horizontalOverflow,
  launchBrowser,
  login,
  newPage,
  readAdminLogin,
  register,
  screenshot,
  stubOrchestrator,
  uniqueSuffix,
} from './lib.mjs'

const TERMINAL = ['succeeded', 'failed', 'cancelled']

let browser
before(async () => {
  browser = await launchBrowser()
})
after(async () => {
  await browser?.close()
})

/** Why the admin flow cannot run against this server, or null when it can. */
async function orchestratorMissing() {
  const { status } = await api('GET', '/v1/trainings')
  if (status === 404) return `skipped: orchestrator not available (GET /v1/trainings -> ${status})`
  return null
}

describe('dashboard for everyone else', () => {
  test('a signed-out visitor is told it is for admins and offered a sign-in', async () => {
    const page = await newPage(browser)
    try {
      await page.goto('/dashboard')
      await page.waitForSelector(byTestId('admins-only'))
      assert.equal(await page.locator(byTestId('train-button')).count(), 0)
      assert.equal(await page.locator(`${byTestId('admins-only')} a[href^="/login"]`).count(), 1)
    } finally {
      await page.context().close()
    }
  })

  test('a signed-in non-admin sees the explanation, no dashboard link and no admin data', async () => {
    const page = await newPage(browser)
    const suffix = uniqueSuffix()
    try {
      await register(page, { username: `e2eu${suffix}`, email: `e2eu-${suffix}@example.test`, password: `pw-${suffix}-x` })
      assert.equal(await page.locator(byTestId('nav-dashboard')).count(), 0)
      const requests = []
      page.on('request', (r) => requests.push(new URL(r.url()).pathname))
      await page.goto('/dashboard')
      await page.waitForSelector(byTestId('admins-only'))
      assert.equal(await page.locator(byTestId('train-button')).count(), 0)
      assert.deepEqual(
        requests.filter((p) => /^\/v1\/(trainings|models|feedback)/.test(p)),
        [],
        'a non-admin page does not call the admin endpoints',
      )
      await screenshot(page, 'dashboard-non-admin')
    } finally {
      await page.context().close()
    }
  })
})

describe('dashboard layout (admin endpoints stubbed as web/API.md has them)', () => {
  // Layout only: the orchestrator's answers are fixed data, the rest is the real server.
  for (const [name, viewport] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ]) {
    test(`${name}: charts drawn, promote buttons reachable, no horizontal scrolling`, async () => {
      const page = await newPage(browser, { viewport })
      const suffix = uniqueSuffix()
      try {
        await stubOrchestrator(page.context())
        await register(page, { username: `e2el${suffix}`, email: `e2el-${suffix}@example.test`, password: `pw-${suffix}-l` })
        await page.goto('/dashboard')
        for (const id of ['loss-chart', 'accuracy-chart', 'worker-samples-chart']) await page.locator(`canvas${byTestId(id)}`).waitFor()
        await page.locator(byTestId('version-row')).nth(2).waitFor()
        // The review list under the feedback panel, with the stub's three held samples.
        await page.locator(byTestId('review-row')).nth(2).waitFor()
        await page.locator(byTestId('feedback-next-run')).waitFor()
        assert.equal(await page.locator(byTestId('training-run-row')).count(), 3)
        assert.equal(await page.locator(byTestId('train-button')).isDisabled(), true, 'a run is active')

        const { scrollWidth, innerWidth, wide } = await horizontalOverflow(page)
        assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} > innerWidth ${innerWidth}; too wide: ${wide.join(', ')}`)
        // Promote / roll back are not hidden behind the table's scroll on a desktop.
        const buttons = page.locator(byTestId('promote-button'))
        assert.equal(await buttons.count(), 2)
        if (name === 'desktop') {
          const clipped = await buttons.evaluateAll((els) =>
            els.filter((el) => el.getBoundingClientRect().right > el.closest('.table-scroll').getBoundingClientRect().right + 1).length,
          )
          assert.equal(clipped, 0, 'promote buttons fit in the versions table')
        }
        await screenshot(page, `dashboard-stubbed-${name}`)
        assert.deepEqual(page.errors, [])
      } finally {
        await page.context().close()
      }
    })
  }
})

describe('dashboard for the admin', () => {
  test('log in as admin, train now, a new run appears with its loss chart', async (t) => {
    const missing = await orchestratorMissing()
    if (missing) return t.skip(missing)
    const admin = await readAdminLogin()
    if (!admin) return t.skip(`skipped: no admin login in ${DATA_DIR ?? '(E2E_DATA_DIR unset)'}/admin-login.txt`)

    const page = await newPage(browser)
    try {
      await login(page, admin)
      await page.click(byTestId('nav-dashboard'))
      await page.waitForURL(/\/dashboard$/)
      const button = page.locator(byTestId('train-button'))
      await button.waitFor()
      // The list has loaded once the table or its empty note shows.
      await page.locator(`${byTestId('training-runs')}, ${byTestId('no-runs')}`).first().waitFor()
      const before = new Set(await page.locator(byTestId('training-run-row')).evaluateAll((rows) => rows.map((r) => r.dataset.runId)))
      if (process.env.E2E_FRESH_DATA === '1') {
        // `up` trained its first model as an ordinary run: the list shows it.
        const succeeded = await page.locator(`${byTestId('training-run-row')}[data-status="succeeded"]`).count()
        assert.ok(succeeded >= 1, 'the first model\'s run is in the list')
      }

      // A run already going, or the cooldown after one, keeps the button disabled for a while.
      const cooldown = Number(await button.getAttribute('data-cooldown'))
      assert.ok(cooldown * 1000 < WAIT.training, `the train button is in a cooldown of ${cooldown} s`)
      await page.locator(`${byTestId('train-button')}:enabled`).waitFor({ timeout: WAIT.training })
      await button.click()

      const newId = await page
        .waitForFunction(
          (known) =>
            [...document.querySelectorAll('[data-testid="training-run-row"]')]
              .map((row) => row.dataset.runId)
              .find((id) => !known.includes(id)) ?? false,
          [...before],
          { timeout: WAIT.ui },
        )
        .then((handle) => handle.jsonValue())
      assert.ok(newId, 'a new run row appears')
      assert.equal(await button.isDisabled(), true, 'train now is disabled while the run is active')

      const detail = page.locator(`${byTestId('run-detail')}[data-run-id="${newId}"]`)
      await detail.waitFor()
      const chart = detail.locator(`canvas${byTestId('loss-chart')}`)
      await chart.waitFor()
      const box = await chart.boundingBox()
      assert.ok(box && box.width > 100 && box.height > 100, `the loss chart has a size (${JSON.stringify(box)})`)

      // Two rounds make a line; then the dashboard keeps following the run to its end.
      await detail.locator(`${byTestId('round-table')} tbody tr:nth-child(2)`).waitFor({ timeout: WAIT.training })
      await screenshot(page, 'dashboard-training')
      await page
        .locator(TERMINAL.map((s) => `${byTestId('run-detail')}[data-run-id="${newId}"][data-status="${s}"]`).join(', '))
        .waitFor({ timeout: WAIT.training })
      const status = await detail.getAttribute('data-status')
      const error = status === 'failed' ? await detail.locator(byTestId('run-error')).textContent() : ''
      assert.equal(status, 'succeeded', `the run finished as ${status} ${error}`)
      const row = page.locator(`${byTestId('training-run-row')}[data-run-id="${newId}"]`)
      assert.equal(await row.getAttribute('data-status'), 'succeeded')
      await screenshot(page, 'dashboard')
      assert.deepEqual(page.errors, [])
    } finally {
      await page.context().close()
    }
  })
})
