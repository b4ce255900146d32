'use strict';
// The web client served by chatd (--web, default on), in Debian's Chromium: two users sign up
// in two browser contexts and chat; a reload keeps the history; one goes offline while the
// other sends and catches up when back. Screenshots go to tests/browser/artifacts/.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../e2e/lib/server');
const { launch, shot, ARGS, T, signUp, sendMessage, twoPages } = require('./lib');

const bodies = (page) => page.$$eval('#msg-list .msg:not(.pending) .body', (els) => els.map((e) => e.textContent));

async function waitBodies(page, expected, what) {
  try {
    await page.waitForFunction(
      (exp) => {
        const got = [...document.querySelectorAll('#msg-list .msg:not(.pending) .body')].map((e) => e.textContent);
        return JSON.stringify(got) === JSON.stringify(exp);
      },
      expected,
      { timeout: T },
    );
  } catch (e) {
    throw new Error(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(await bodies(page))}`);
  }
}

test('two browsers chat, a reload keeps history, an offline browser catches up', async () => {
  const srv = await startServer({ args: ARGS });
  const chrome = await launch();
  const errors = [];
  try {
    // Failed requests while the test holds a context offline are expected; nothing else is.
    const { ctxB, a, b } = await twoPages(chrome.browser, errors, /ERR_INTERNET_DISCONNECTED/);
    const suffix = String(Date.now() % 100000);
    const aliceName = `alice${suffix}`;
    const bobName = `bob${suffix}`;
    await signUp(a, srv.base, aliceName);
    const bobId = await signUp(b, srv.base, bobName);
    assert.match(bobId, /^u_\d+$/);
    await shot(b, '01-bob-signed-up');

    // alice creates a room with bob
    await a.click('#new-room');
    await a.fill('#dialog-name', 'general');
    await a.fill('#dialog-ids', bobName);
    await a.click('#dialog-ok');
    await a.waitForSelector('#conv-title:has-text("general")', { timeout: T });
    await sendMessage(a, 'hello bob');
    await waitBodies(a, ['hello bob'], 'alice sees her message');

    // bob sees the room appear with an unread badge, opens it, replies
    const bobRoom = b.locator('#rooms .room-item', { hasText: 'general' });
    await bobRoom.waitFor({ timeout: T });
    await b.waitForSelector('#rooms .room-item .badge', { timeout: T });
    assert.equal((await b.textContent('#rooms .room-item .badge')).trim(), '1');
    await shot(b, '02-bob-unread');
    await bobRoom.click();
    await waitBodies(b, ['hello bob'], 'bob sees the message');
    await b.fill('#composer-input', 'hi');
    await a.waitForSelector('#typing:has-text("is typing")', { timeout: T });
    await sendMessage(b, 'hi alice');
    await waitBodies(a, ['hello bob', 'hi alice'], 'alice gets the reply');
    assert.equal(await b.locator('#rooms .room-item .badge').count(), 0, 'no unread badge on the open room');
    await shot(a, '03-alice-conversation');

    // a reload keeps the login and the history
    await a.reload();
    await a.waitForSelector('#conn-state[data-state="online"]', { timeout: T });
    await waitBodies(a, ['hello bob', 'hi alice'], 'history after reload');
    await shot(a, '04-alice-after-reload');

    // bob goes offline while alice sends; he catches up when back
    await ctxB.setOffline(true);
    await b.waitForSelector('#conn-state[data-state="offline"]', { timeout: T });
    for (const t of ['while you were away 1', 'while you were away 2', 'while you were away 3']) await sendMessage(a, t);
    await waitBodies(a, ['hello bob', 'hi alice', 'while you were away 1', 'while you were away 2', 'while you were away 3'], 'alice sent 3');
    // bob's own send while offline waits in the queue (shown pending)
    await sendMessage(b, 'sent offline');
    await b.waitForSelector('#msg-list .msg.pending', { timeout: T });
    await shot(b, '05-bob-offline');
    assert.deepEqual(await bodies(b), ['hello bob', 'hi alice']);
    await ctxB.setOffline(false);
    const all = ['hello bob', 'hi alice', 'while you were away 1', 'while you were away 2', 'while you were away 3', 'sent offline'];
    await waitBodies(b, all, 'bob caught up');
    await waitBodies(a, all, 'alice got the queued message once');
    await b.waitForSelector('#conn-state[data-state="online"]');
    await shot(b, '06-bob-caught-up');

    // a mistake in a dialog is explained in the dialog
    await b.click('#new-dm');
    await b.fill('#dialog-ids', 'nobody_here');
    await b.click('#dialog-ok');
    await b.waitForSelector('#dialog-error:has-text("No user named")', { timeout: T });
    assert.ok(await b.isVisible('#dialog'), 'the dialog stays open');
    await shot(b, '07-dialog-error');
    await b.click('#dialog button[value="cancel"]');
    // the browser logs that refused request (404): expected here, and the only error so far
    assert.deepEqual(errors, ['bob console: Failed to load resource: the server responded with a status of 404 (Not Found)']);
    errors.length = 0;

    // a direct message from bob's side shows in alice's DM list
    await b.click('#new-dm');
    await b.fill('#dialog-ids', aliceName);
    await b.click('#dialog-ok');
    await b.waitForSelector('#conv-title:has-text("alice")', { timeout: T });
    await sendMessage(b, 'psst');
    await a.waitForSelector('#dms .room-item .badge', { timeout: T });
    await shot(a, '08-alice-dm-unread');

    // alice adds a third user (registered over REST) to the room by name
    const carolName = `carol${suffix}`;
    const reg = await fetch(`${srv.base}/v1/auth/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: carolName, password: 'correct horse battery' }),
    });
    assert.equal(reg.status, 201);
    await a.click('#rooms .room-item:has-text("general")');
    await a.click('#add-member');
    await a.fill('#dialog-ids', carolName);
    await a.click('#dialog-ok');
    await a.waitForSelector(`#msg-list .event:has-text("added ${carolName}")`, { timeout: T });
    await a.waitForSelector('#conv-sub:has-text("3 members")', { timeout: T });
    await b.click('#rooms .room-item:has-text("general")');
    await b.waitForSelector(`#msg-list .event:has-text("added ${carolName}")`, { timeout: T });
    await shot(b, '09-bob-sees-carol-added');

    // the SDK's IndexedDB storage adapter works in a real browser
    const idb = await a.evaluate(async () => {
      const { indexedDBStorage } = await import('/sdk/index.js');
      const s = indexedDBStorage('chatd-test');
      await s.set('seqs:u_1', '{"r_1":7}');
      const v = await s.get('seqs:u_1');
      await s.set('seqs:u_1', null);
      return [v, await s.get('seqs:u_1')];
    });
    assert.deepEqual(idb, ['{"r_1":7}', null]);
    assert.deepEqual(errors, []);
  } finally {
    await chrome.close();
    await srv.stop();
  }
});
