// The SDK's attachments against a real chatd: upload() a small PNG, send it with a message, the
// other member gets the metadata, fetchAttachment() gives back the same bytes; 415 as ChatdError.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startChatd, newUser, client, until } from './helpers.js';

// A 1x1 red PNG.
const PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==',
  'base64',
);

test('upload a PNG, send it, the other member reads it back', async () => {
  const srv = await startChatd();
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = client(srv.base, a);
  const cb = client(srv.base, b);
  try {
    await Promise.all([ca.connect(), cb.connect()]);
    const room = await ca.createRoom({ name: 'files', members: [b.id] });
    await until(() => cb.seen.member.some((m) => m.room === room.id && m.user === b.id), 5000, 'join');

    const att = await ca.upload(PNG, { name: 'dot.png', contentType: 'image/png' });
    assert.match(att.id, /^att_[0-9a-f]{32}$/);
    assert.equal(att.size, PNG.length);
    assert.equal(att.content_type, 'image/png');
    assert.equal(att.name, 'dot.png');
    assert.equal(att.sha256, createHash('sha256').update(PNG).digest('hex'));

    const ack = await ca.send(room.id, 'a picture', { attachments: [att] });
    await until(() => cb.seen.message.some((m) => m.seq === ack.seq), 5000, 'message at b');
    const m = cb.seen.message.find((x) => x.seq === ack.seq);
    assert.deepEqual(m.attachments, [att]);
    // The sender's own message event carries the objects it was given.
    assert.deepEqual(ca.seen.message.find((x) => x.seq === ack.seq).attachments, [att]);
    // History carries them too.
    const page = await cb.history(room.id, { limit: 10 });
    assert.deepEqual(page.messages.find((x) => x.seq === ack.seq).attachments, [att]);

    assert.equal(cb.attachmentUrl(att.id), `${srv.base}/v1/attachments/${att.id}`);
    const blob = await cb.fetchAttachment(att.id);
    assert.equal(blob.type, 'image/png');
    assert.deepEqual(Buffer.from(await blob.arrayBuffer()), PNG);
    const res = await cb.fetchAttachment(att.id, { response: true, headers: { Range: 'bytes=0-7' } });
    assert.equal(res.status, 206);
    assert.deepEqual(Buffer.from(await res.arrayBuffer()), PNG.subarray(0, 8));

    // A Blob works as well; a type not allowed is a ChatdError 415.
    const att2 = await ca.upload(new Blob([PNG], { type: 'image/png' }), { name: 'blob.png' });
    assert.equal(att2.content_type, 'image/png');
    await assert.rejects(ca.upload(Buffer.from('MZ'), { name: 'x.exe', contentType: 'application/x-msdownload' }), (e) => {
      assert.equal(e.name, 'ChatdError');
      assert.equal(e.status, 415);
      assert.equal(e.code, 'unsupported_media_type');
      return true;
    });
    // Someone who is not a member gets 404.
    const c = await newUser(srv.base, 'c');
    const cc = client(srv.base, c);
    try {
      await assert.rejects(cc.fetchAttachment(att.id), (e) => e.status === 404 && e.code === 'not_found');
    } finally {
      cc.close();
    }
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});
