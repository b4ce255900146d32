'use strict';
// Threads and read receipts in the web client, in Debian's Chromium: bob replies in the thread of
// alice's message from the thread panel; alice's page shows the reply count, and her thread panel
// lists the reply (and a second one live, while open); bob reads the room and alice's page shows
// his read receipt under her newest message. Screenshots go to tests/browser/artifacts/.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../e2e/lib/server');
const { launch, shot, ARGS, T, sendMessage, twoPages, roomOfTwo, msgWith } = require('./lib');

test('thread panel and read receipts between two browsers', async () => {
  const srv = await startServer({ args: ARGS });
  const chrome = await launch();
  const errors = [];
  try {
    const { a, b } = await twoPages(chrome.browser, errors);
    const { bobName } = await roomOfTwo(a, b, srv.base, 'threads');
    await sendMessage(a, 'root question');
    await msgWith(a, 'root question').waitFor({ timeout: T });

    // bob opens the thread of alice's message from its tools and replies there
    await b.locator('#rooms .room-item', { hasText: 'threads' }).click({ timeout: T });
    const bRoot = msgWith(b, 'root question');
    await bRoot.waitFor({ timeout: T });
    await bRoot.hover();
    await bRoot.getByRole('button', { name: 'Open thread' }).click();
    await b.waitForSelector('#thread:not([hidden]) #thread-root .body:has-text("root question")', { timeout: T });
    await b.fill('#thread-input', 'thread answer <b>not bold</b>');
    await b.press('#thread-input', 'Enter');
    await b.locator('#thread-list .msg .body', { hasText: 'thread answer' }).waitFor({ timeout: T });

    // alice's page: the root counts one reply; clicking it opens the panel with bob's reply,
    // shown as text (the markup is not interpreted)
    const aCount = msgWith(a, 'root question').locator('.reply-count');
    await aCount.filter({ hasText: '1 reply' }).waitFor({ timeout: T });
    assert.equal(await a.isHidden('#thread'), true);
    await aCount.click();
    await a.waitForSelector('#thread:not([hidden])', { timeout: T });
    assert.equal((await a.textContent('#thread-root .body')).trim(), 'root question');
    const aReply = a.locator('#thread-list .msg');
    await aReply.first().waitFor({ timeout: T });
    assert.equal(await aReply.count(), 1);
    assert.equal((await aReply.locator('.body').textContent()).trim(), 'thread answer <b>not bold</b>');
    assert.equal(await aReply.locator('.body b').count(), 0);
    assert.equal((await aReply.locator('.meta strong').textContent()).trim(), bobName);

    // a reply arriving live while the panel is open appears in it; the count follows
    await b.fill('#thread-input', 'second answer');
    await b.press('#thread-input', 'Enter');
    await a.locator('#thread-list .msg .body', { hasText: 'second answer' }).waitFor({ timeout: T });
    assert.equal(await a.locator('#thread-list .msg').count(), 2);
    await aCount.filter({ hasText: '2 replies' }).waitFor({ timeout: T });
    await shot(a, '20-alice-thread-panel');

    // alice replies from her panel with `thread: root`: bob's panel shows it
    await a.fill('#thread-input', 'thanks bob');
    await a.press('#thread-input', 'Enter');
    await b.locator('#thread-list .msg .body', { hasText: 'thanks bob' }).waitFor({ timeout: T });
    await aCount.filter({ hasText: '3 replies' }).waitFor({ timeout: T });

    // read receipts: alice posts; bob, with the room open at the bottom, reads it; alice's
    // newest message shows "Seen by bob", and only that one
    await a.click('#thread-close');
    await a.waitForSelector('#thread[hidden]', { state: 'attached', timeout: T });
    await sendMessage(a, 'did you read this?');
    await msgWith(b, 'did you read this?').waitFor({ timeout: T });
    const aLast = msgWith(a, 'did you read this?');
    await aLast.locator('.seen', { hasText: `Seen by ${bobName}` }).waitFor({ timeout: T });
    assert.equal(await a.locator('#msg-list .seen').count(), 1);
    assert.equal(await aLast.locator('.seen .avatar').count(), 1);
    assert.equal(await aLast.locator('.seen .avatar').isVisible(), true);
    // bob sees no receipt of his own, but alice's (she read everything she has)
    assert.equal(await b.locator('#msg-list .seen', { hasText: bobName }).count(), 0);
    await shot(a, '21-alice-read-receipt');

    // after a reload alice gets the receipt from GET .../receipts
    await a.reload();
    await a.waitForSelector('#conn-state[data-state="online"]', { timeout: T });
    await msgWith(a, 'did you read this?').locator('.seen', { hasText: `Seen by ${bobName}` }).waitFor({ timeout: T });
    assert.deepEqual(errors, []);
  } finally {
    await chrome.close();
    await srv.stop();
  }
});
