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

module.exports = { launch, shot, ARTIFACTS };
