// The SDK against a real chatd: password flow, send/ack, events, history, rooms, read, typing,
// the offline queue before the first connect, idempotent resend by client_msg_id.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startChatd, newUser, client, until, sleep } from './helpers.js';

test('two clients chat: acks, messages, typing, read, history, rooms', async () => {
  const srv = await startChatd();
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = client(srv.base, a);
  const cb = client(srv.base, b);
  try {
    await Promise.all([ca.connect(), cb.connect()]);
    assert.equal(ca.state, 'online');
    assert.equal(ca.userId, a.id);
    const room = await ca.createRoom({ name: 'general', members: [b.id] });
    await until(() => cb.seen.member.some((m) => m.room === room.id && m.user === b.id), 5000, 'join');

    const ack = await ca.send(room.id, 'hello bob');
    assert.equal(ack.room, room.id);
    assert.equal(ack.seq, 3);
    assert.equal(ack.duplicate, false);
    assert.equal(typeof ack.msg_id, 'string');
    await until(() => cb.seen.message.length === 1, 5000, 'message at b');
    const m = cb.seen.message[0];
    assert.equal(m.body, 'hello bob');
    assert.equal(m.sender, a.id);
    assert.equal(m.seq, 3);
    // The sender's own message is reported too (from its ack), once.
    assert.deepEqual(ca.seen.message.map((x) => [x.seq, x.body, x.own]), [[3, 'hello bob', true]]);
    assert.equal(cb.lastSeq(room.id), 3);

    cb.typing(room.id);
    await until(() => ca.seen.typing.some((t) => t.user === b.id && t.typing), 5000, 'typing');

    const rd = await cb.read(room.id, 3);
    assert.deepEqual(rd, { room: room.id, seq: 3, unread: 0 });
    // The other member sees the read receipt, live and from receipts().
    await until(() => ca.seen.receipt.some((r) => r.room === room.id && r.user === b.id && r.seq === 3), 5000, 'receipt');
    const rc = await ca.receipts(room.id);
    assert.equal(rc.receipts.find((r) => r.user === b.id).read_seq, 3);

    // A reply in the thread of message 3, listed by threadHistory().
    const tr = await cb.send(room.id, 'in thread', { thread: 3 });
    const th = await ca.threadHistory(room.id, 3, { limit: 10 });
    assert.deepEqual(th.messages.map((x) => [x.seq, x.body, x.thread]), [[tr.seq, 'in thread', 3]]);
    assert.equal(th.has_more, false);

    const rooms = await cb.rooms();
    assert.equal(rooms.length, 1);
    assert.equal(rooms[0].last_seq, 4);
    assert.equal(rooms[0].unread, 0);

    for (let i = 0; i < 5; i++) await ca.send(room.id, `m${i}`);
    const page = await cb.history(room.id, { before: 9, limit: 3 });
    assert.deepEqual(page.messages.map((x) => x.seq), [6, 7, 8]);
    assert.equal(page.has_more, true);
    const after = await cb.history(room.id, { after: 7 });
    assert.deepEqual(after.messages.map((x) => x.body), ['m3', 'm4']);

    // The same client_msg_id twice: one message, the second ack says duplicate.
    const x1 = await ca.send(room.id, 'once', { clientMsgId: 'fixed-1' });
    const x2 = await ca.send(room.id, 'once', { clientMsgId: 'fixed-1' });
    assert.equal(x2.seq, x1.seq);
    assert.equal(x2.duplicate, true);
    await sleep(200);
    assert.equal(cb.seen.message.filter((x) => x.body === 'once').length, 1);

    const dm = await ca.dm(b.id);
    assert.equal(dm.kind, 'direct');
    await assert.rejects(ca.send('r_999999', 'nope'), (e) => e.code === 'not_member');
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});

test('sends made before connect are queued and delivered once', async () => {
  const srv = await startChatd();
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const setup = client(srv.base, a);
  const room = await setup.createRoom({ name: 'q', members: [b.id] });
  const cb = client(srv.base, b);
  await cb.connect();
  const ca = client(srv.base, a);
  try {
    const sends = [1, 2, 3].map((i) => ca.send(room.id, `early ${i}`));
    assert.equal(ca.pending().length, 3);
    await ca.connect();
    const acks = await Promise.all(sends);
    assert.deepEqual(acks.map((x) => x.seq), [3, 4, 5]);
    assert.equal(ca.pending().length, 0);
    await until(() => cb.seen.message.length === 3, 5000, 'b gets 3');
    assert.deepEqual(cb.seen.message.map((x) => x.body), ['early 1', 'early 2', 'early 3']);
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});

test('logout ends the session: the client reports state ended and does not reconnect', async () => {
  const srv = await startChatd();
  const a = await newUser(srv.base, 'a');
  const ca = client(srv.base, a);
  try {
    await ca.connect();
    await a.auth.logout();
    await until(() => ca.state === 'ended', 5000, 'ended');
    const last = ca.seen.state[ca.seen.state.length - 1];
    assert.equal(last.reason, 'session_ended');
    await sleep(500);
    assert.equal(ca.state, 'ended');
    await assert.rejects(ca.send('r_1', 'x'), (e) => e.code === 'ended');
  } finally {
    ca.close();
    await srv.stop();
  }
});
