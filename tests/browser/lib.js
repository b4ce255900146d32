'use strict';
// Debian's Chromium driven by playwright-core: no browser download, a fresh profile per launch.
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('playwright-core');

const CHROMIUM = process.env.CHROMIUM_BIN || '/usr/bin/chromium';
const ARTIFACTS = path.join(__dirname, 'artifacts');

async function launch() {
  // playwright gives every launch a fresh temporary --user-data-dir of its own (and refuses the
  // flag); each simulated user gets its own browser context (separate storage and cookies).
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-dev-shm-usage',
    ],
  });
  return {
    browser,
    async close() {
      await browser.close().catch(() => {});
    },
  };
}

/** Save a screenshot under tests/browser/artifacts/ (kept as a test artefact). */
async function shot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`) });
}

// Chat servers for browser tests: no rate limits in the way.
const ARGS = { 'auth-rate': 1000, 'msg-rate': 1000, 'msg-burst': 1000 };
const T = 15000; // how long a step may take before the test fails

/** Sign up `username` in the web client on `page`; resolves the user id once online. */
async function signUp(page, base, username) {
  await page.goto(base + '/');
  await page.click('#tab-signup');
  await page.fill('#username', username);
  await page.fill('#password', 'correct horse battery');
  await page.click('#auth-submit');
  await page.waitForSelector('#app:not([hidden])', { timeout: T });
  await page.waitForSelector('#conn-state[data-state="online"]', { timeout: T });
  return (await page.textContent('#me-id')).trim();
}

/** Type `text` in the composer and press Enter. */
async function sendMessage(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/**
 * Two users' pages (alice and bob), each in its own browser context; page errors and console
 * errors (but those matching `ignore`) are pushed to `errors`.
 */
async function twoPages(browser, errors, ignore = null) {
  const ctxA = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const ctxB = await browser.newContext({ viewport: { width: 1100, height: 700 } });
  const a = await ctxA.newPage();
  const b = await ctxB.newPage();
  for (const [p, who] of [[a, 'alice'], [b, 'bob']]) {
    p.on('pageerror', (e) => errors.push(`${who}: ${e.message}`));
    p.on('console', (m) => m.type() === 'error' && !(ignore && ignore.test(m.text())) && errors.push(`${who} console: ${m.text()}`));
  }
  return { ctxA, ctxB, a, b };
}

/**
 * alice (page a) and bob (page b) sign up with fresh names; alice creates the room `name` with
 * bob as a member and has it open. Resolves {aliceName, bobName}.
 */
async function roomOfTwo(a, b, base, name) {
  const suffix = String(Date.now() % 100000);
  const aliceName = `alice${suffix}`;
  const bobName = `bob${suffix}`;
  await signUp(a, base, aliceName);
  await signUp(b, base, bobName);
  await a.click('#new-room');
  await a.fill('#dialog-name', name);
  await a.fill('#dialog-ids', bobName);
  await a.click('#dialog-ok');
  await a.waitForSelector(`#conv-title:has-text("${name}")`, { timeout: T });
  return { aliceName, bobName };
}

/** The rendered message with this text (not pending) in the room's list. */
const msgWith = (page, text) => page.locator('#msg-list .msg:not(.pending)', { has: page.locator('.body', { hasText: text }) });

module.exports = { launch, shot, ARTIFACTS, ARGS, T, signUp, sendMessage, twoPages, roomOfTwo, msgWith };
