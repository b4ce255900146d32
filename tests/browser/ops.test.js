'use strict';
// Message operations in the web client, in Debian's Chromium: alice sends, bob reacts (alice sees
// the chip), alice edits (bob sees the new text and "(edited)"), alice deletes (bob sees the
// tombstone); a reply shows its preview; a reload shows the same state from history.
// Screenshots go to tests/browser/artifacts/.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('../e2e/lib/server');
const { launch, shot, ARGS, T, sendMessage, twoPages, roomOfTwo, msgWith } = require('./lib');

test('reactions, edits, deletes and replies between two browsers', async () => {
  const srv = await startServer({ args: ARGS });
  const chrome = await launch();
  const errors = [];
  try {
    const { a, b } = await twoPages(chrome.browser, errors);
    const suffix = String(Date.now() % 100000);
    const { bobName } = await roomOfTwo(a, b, srv.base, 'ops');
    await sendMessage(a, 'first draft');
    await msgWith(a, 'first draft').waitFor({ timeout: T });

    await b.locator('#rooms .room-item', { hasText: 'ops' }).click({ timeout: T });
    const bMsg = msgWith(b, 'first draft');
    await bMsg.waitFor({ timeout: T });

    // bob reacts with 🎉 through the picker: alice sees the chip with count 1, not highlighted;
    // bob's chip is highlighted (aria-pressed).
    await bMsg.hover();
    await bMsg.getByRole('button', { name: 'Add reaction' }).click();
    await bMsg.getByRole('button', { name: 'React with 🎉' }).click();
    const aMsg = msgWith(a, 'first draft');
    const aChip = aMsg.locator('.reactions .chip');
    await aChip.waitFor({ timeout: T });
    assert.equal((await aChip.locator('.chip-emoji').textContent()).trim(), '🎉');
    assert.equal((await aChip.locator('.chip-count').textContent()).trim(), '1');
    assert.equal(await aChip.getAttribute('aria-pressed'), 'false');
    await b.waitForSelector('#msg-list .msg .chip.me[aria-pressed="true"]', { timeout: T });
    // alice adds the same emoji by clicking the chip: 2, highlighted for her
    await aChip.click();
    await a.waitForSelector('#msg-list .msg .chip.me .chip-count:text-is("2")', { timeout: T });
    await b.waitForSelector('#msg-list .msg .chip .chip-count:text-is("2")', { timeout: T });
    await shot(b, '10-bob-reactions');

    // alice edits her message: bob sees the new text and "(edited)"
    await aMsg.hover();
    await aMsg.getByRole('button', { name: 'Edit message' }).click();
    await a.waitForSelector('#compose-mode:not([hidden])', { timeout: T });
    assert.equal(await a.inputValue('#composer-input'), 'first draft');
    await a.fill('#composer-input', 'final text');
    await a.press('#composer-input', 'Enter');
    const bEdited = msgWith(b, 'final text');
    await bEdited.waitFor({ timeout: T });
    await bEdited.locator('.edited', { hasText: '(edited)' }).waitFor({ timeout: T });
    assert.equal(await msgWith(b, 'first draft').count(), 0);
    assert.equal((await bEdited.locator('.chip-count').textContent()).trim(), '2', 'the edit keeps the reactions');
    await msgWith(a, 'final text').locator('.edited').waitFor({ timeout: T });
    // bob cannot edit or delete alice's message, but can react and reply
    await bEdited.hover();
    assert.equal(await bEdited.getByRole('button', { name: 'Edit message' }).count(), 0);
    assert.equal(await bEdited.getByRole('button', { name: 'Delete message' }).count(), 0);

    // bob replies: the reply shows a preview of the message it answers
    await bEdited.getByRole('button', { name: 'Reply' }).click();
    await b.waitForSelector('#compose-mode:has-text("Replying to")', { timeout: T });
    await sendMessage(b, 'nice edit');
    const aReply = msgWith(a, 'nice edit');
    await aReply.locator('.reply-preview', { hasText: 'final text' }).waitFor({ timeout: T });
    await shot(b, '11-bob-edited-and-reply');

    // bob posts into the message's thread from another device (REST): alice sees the root count
    // one reply and the new message marked as in its thread
    const login = await fetch(`${srv.base}/v1/auth/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username: bobName, password: 'correct horse battery' }),
    });
    assert.equal(login.status, 200);
    const token = (await login.json()).access_token;
    const roomId = await b.getAttribute('#rooms .room-item.active', 'data-room');
    const rootSeq = Number(await msgWith(a, 'final text').getAttribute('data-seq'));
    const post = await fetch(`${srv.base}/v1/rooms/${roomId}/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify({ body: 'in the thread', client_msg_id: `t${suffix}`, thread: rootSeq }),
    });
    assert.equal(post.status, 201);
    await msgWith(a, 'in the thread').locator('.reply-preview', { hasText: 'final text' }).waitFor({ timeout: T });
    await msgWith(a, 'final text').locator('.reply-count', { hasText: '1 reply' }).waitFor({ timeout: T });

    // alice deletes her message: bob sees the tombstone, no text, no reactions
    a.once('dialog', (d) => d.accept());
    const aFinal = msgWith(a, 'final text');
    await aFinal.hover();
    await aFinal.getByRole('button', { name: 'Delete message' }).click();
    await b.waitForSelector('#msg-list .msg.deleted .tombstone', { timeout: T });
    assert.equal(await msgWith(b, 'final text').count(), 0);
    assert.equal(await b.locator('#msg-list .msg.deleted .chip').count(), 0);
    await a.waitForSelector('#msg-list .msg.deleted .tombstone', { timeout: T });
    // the reply's preview now says the original was deleted
    await msgWith(b, 'nice edit').locator('.reply-preview', { hasText: 'deleted message' }).waitFor({ timeout: T });
    await shot(b, '12-bob-tombstone');

    // a reload shows the same state from history (folded entries are not replayed twice)
    await b.reload();
    await b.waitForSelector('#conn-state[data-state="online"]', { timeout: T });
    await b.waitForSelector('#msg-list .msg.deleted .tombstone', { timeout: T });
    await msgWith(b, 'nice edit').waitFor({ timeout: T });
    await msgWith(b, 'in the thread').waitFor({ timeout: T });
    assert.equal(await b.locator('#msg-list .msg').count(), 3);
    assert.equal(await b.locator('#msg-list .chip').count(), 0);
    await shot(b, '13-bob-after-reload');
    assert.deepEqual(errors, []);
  } finally {
    await chrome.close();
    await srv.stop();
  }
});
