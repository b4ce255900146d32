'use strict';
// Attachments in the web client, in Debian's Chromium: a type chatd does not allow (415) and a
// file over --max-upload (413, the server runs with 4096 bytes) show their error in the composer; alice attaches a small PNG and sends it with text; bob sees the
// thumbnail (loaded: naturalWidth > 0) and the file's name, and a text file as a download link
// with name and size. Screenshots go to tests/browser/artifacts/.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../e2e/lib/server');
const { launch, shot, ARGS, T, twoPages, roomOfTwo, msgWith } = require('./lib');

// A 1x1 red PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);

test('an image and a file attached in one browser show in the other', async () => {
  const srv = await startServer({ args: { ...ARGS, 'max-upload': 4096 } });
  const chrome = await launch();
  const errors = [];
  try {
    // The refused upload is logged by Chromium as a failed resource load (expected).
    const { a, b } = await twoPages(chrome.browser, errors, /status of 41[35]/);
    await roomOfTwo(a, b, srv.base, 'files');

    // a type chatd does not take: the composer says so, nothing is sent
    await a.setInputFiles('#attach-input', { name: 'tool.exe', mimeType: 'application/x-msdownload', buffer: Buffer.from('MZ..') });
    await a.waitForSelector('#attach-list .attach-item.failed', { timeout: T });
    assert.match(await a.textContent('#attach-error'), /tool\.exe: this file type is not allowed/);
    await a.click('#attach-list .attach-item.failed button');
    assert.equal(await a.isHidden('#attach-bar'), true);

    // too large
    await a.setInputFiles('#attach-input', { name: 'big.txt', mimeType: 'text/plain', buffer: Buffer.alloc(10000, 'x') });
    await a.waitForSelector('#attach-list .attach-item.failed', { timeout: T });
    assert.match(await a.textContent('#attach-error'), /big\.txt: too large/);
    await a.press('#composer-input', 'Enter'); // nothing is sent while a file failed
    assert.equal(await a.locator('#msg-list .msg').count(), 0);
    await a.click('#attach-list .attach-item.failed button');
    assert.equal(await a.isHidden('#attach-bar'), true);

    // the PNG: uploading, then ready, then sent with the text
    await a.setInputFiles('#attach-input', { name: 'red-dot.png', mimeType: 'image/png', buffer: PNG });
    await a.waitForSelector('#attach-list .attach-item.ready', { timeout: T });
    assert.match(await a.textContent('#attach-list .attach-item'), /red-dot\.png/);
    await a.fill('#composer-input', 'a picture');
    await a.press('#composer-input', 'Enter');
    await msgWith(a, 'a picture').waitFor({ timeout: T });
    assert.equal(await a.isHidden('#attach-bar'), true);

    // a text file with no text: the message's text is the file name
    await a.setInputFiles('#attach-input', { name: 'notes.txt', mimeType: 'text/plain', buffer: Buffer.from('hello notes\n') });
    await a.waitForSelector('#attach-list .attach-item.ready', { timeout: T });
    await a.press('#composer-input', 'Enter');
    await msgWith(a, 'notes.txt').waitFor({ timeout: T });

    // bob opens the room: the thumbnail is loaded, the names show; the text file is a link
    await b.locator('#rooms .room-item', { hasText: 'files' }).click({ timeout: T });
    const pic = msgWith(b, 'a picture');
    await pic.waitFor({ timeout: T });
    const img = pic.locator('.att-image img');
    await img.waitFor({ timeout: T });
    await b.waitForFunction(() => {
      const i = document.querySelector('#msg-list .att-image img');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: T });
    assert.equal(await img.evaluate((i) => i.naturalWidth), 1);
    assert.equal(await img.getAttribute('alt'), 'red-dot.png');
    assert.match(await pic.locator('.att-image figcaption').textContent(), /red-dot\.png \(\d+ B\)/);
    const link = msgWith(b, 'notes.txt').locator('a.att-file');
    await link.waitFor({ timeout: T });
    assert.match(await link.textContent(), /notes\.txt \(12 B\)/);
    // the link downloads the bytes (fetched with the token)
    const [dl] = await Promise.all([b.waitForEvent('download', { timeout: T }), link.click()]);
    assert.equal(dl.suggestedFilename(), 'notes.txt');
    const fs = require('node:fs');
    assert.equal(fs.readFileSync(await dl.path(), 'utf8'), 'hello notes\n');
    await shot(b, '20-bob-attachments');

    // alice's own copy shows the thumbnail too
    await a.waitForFunction(() => {
      const i = document.querySelector('#msg-list .msg:not(.pending) .att-image img');
      return i && i.complete && i.naturalWidth > 0;
    }, null, { timeout: T });
    await shot(a, '21-alice-attachments');
    assert.deepEqual(errors, []);
  } finally {
    await chrome.close();
    await srv.stop();
  }
});
