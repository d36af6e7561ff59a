// Shared helpers of the end-to-end suite: Debian's Chromium driven by playwright-core
// (no browser download), the server under test from E2E_BASE_URL, artifacts under
// E2E_ARTIFACTS. scripts/e2e.sh starts `bloginfer up` and sets all of these.
import { mkdir, readFile } from 'node:fs/promises'
import path from 'node:path'
import { chromium } from 'playwright-core'

export const BASE_URL = (process.env.E2E_BASE_URL ?? 'http://127.0.0.1:8080').replace(/\/$/, '')
export const ARTIFACTS = path.resolve(process.env.E2E_ARTIFACTS ?? 'e2e-artifacts')
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
  await page.waitForSelector(byTestId('nav-profile'))
}

export async function login(page, { email, password }) {
  await page.goto('/login')
  await page.fill(byTestId('login-email'), email)
  await page.fill(byTestId('login-password'), password)
  await page.click(byTestId('login-submit'))
  await page.waitForSelector(byTestId('nav-profile'))
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

/** True when the page is not wider than its viewport (no horizontal scrolling). */
export async function horizontalOverflow(page) {
  return page.evaluate(() => {
    const doc = document.documentElement
    const wide = [...document.querySelectorAll('body *')]
      .filter((el) => el.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 5)
      .map((el) => `${el.tagName.toLowerCase()}${el.className && typeof el.className === 'string' ? '.' + el.className.trim().split(/\s+/).join('.') : ''}`)
    return { scrollWidth: doc.scrollWidth, innerWidth: window.innerWidth, wide }
  })
}
