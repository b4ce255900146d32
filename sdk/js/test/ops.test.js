// Edits, deletes, reactions, replies and threads through the SDK, against the real chatd.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startChatd, newUser, client, until, sleep, tcpProxy } from './helpers.js';

/** Record the rich-messaging entries a client reports. */
function watchOps(c) {
  c.ops = [];
  for (const ev of ['edit', 'delete', 'reaction']) c.on(ev, (e) => c.ops.push(e));
  return c;
}

/** Users a and b, each with a connected client watching ops, in a room of their own. */
async function pair(srv, url = srv.base) {
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = watchOps(client(url, a));
  const cb = watchOps(client(srv.base, b));
  await Promise.all([ca.connect(), cb.connect()]);
  const room = await ca.createRoom({ name: 'ops', members: [b.id] });
  return { a, b, ca, cb, room };
}

test('edit, delete and react round trip between two clients; replies and threads', async () => {
  const srv = await startChatd();
  const { a, b, ca, cb, room } = await pair(srv);
  try {
    const sent = await ca.send(room.id, 'hello');
    await until(() => cb.seen.message.some((m) => m.seq === sent.seq), 5000, 'b gets the message');

    // b reacts: a gets the entry as the server sent it, b its own from the ack.
    const r = await cb.react(room.id, sent.seq, '👍');
    assert.equal(r.op, 'react');
    assert.equal(r.target, sent.seq);
    assert.equal(r.changed, true);
    assert.equal(r.duplicate, false);
    assert.ok(r.seq > sent.seq);
    const ra = await until(() => ca.ops.find((e) => e.type === 'reaction'), 5000, 'a gets the reaction');
    assert.deepEqual(
      { type: ra.type, room: ra.room, seq: ra.seq, target: ra.target, emoji: ra.emoji, user: ra.user, on: ra.on },
      { type: 'reaction', room: room.id, seq: r.seq, target: sent.seq, emoji: '👍', user: b.id, on: true },
    );
    assert.equal(typeof ra.ts, 'number');
    assert.equal(ra.own, undefined);
    const rb = cb.ops.find((e) => e.type === 'reaction');
    assert.equal(rb.own, true);
    assert.equal(rb.seq, r.seq);
    assert.equal(rb.user, b.id);

    // The same reaction again changes nothing and appends no entry.
    const again = await cb.react(room.id, sent.seq, '👍', true);
    assert.equal(again.changed, false);
    assert.equal(again.seq, null);

    // a edits: b gets the edit entry.
    const e = await ca.edit(room.id, sent.seq, 'hello, edited');
    assert.equal(e.op, 'edit');
    assert.equal(e.target, sent.seq);
    const eb = await until(() => cb.ops.find((x) => x.type === 'edit'), 5000, 'b gets the edit');
    assert.equal(eb.seq, e.seq);
    assert.equal(eb.target, sent.seq);
    assert.equal(eb.body, 'hello, edited');
    assert.equal(eb.user, a.id);
    assert.equal(typeof eb.edited_at, 'number');
    assert.equal(ca.ops.find((x) => x.type === 'edit').own, true);

    // Only the author edits.
    await assert.rejects(cb.edit(room.id, sent.seq, 'not mine'), (err) => err.code === 'forbidden');

    // History shows the current state.
    let h = await cb.history(room.id);
    let msg = h.messages.find((m) => m.seq === sent.seq);
    assert.equal(msg.body, 'hello, edited');
    assert.equal(typeof msg.edited_at, 'number');
    assert.deepEqual(msg.reactions, [{ emoji: '👍', count: 1, me: true }]);
    assert.ok(msg.state_seq >= e.seq);

    // b removes the reaction.
    const off = await cb.react(room.id, sent.seq, '👍', false);
    assert.equal(off.changed, true);
    await until(() => ca.ops.some((x) => x.type === 'reaction' && x.on === false), 5000, 'a gets the removal');

    // Replies and threads.
    const reply = await cb.send(room.id, 'a reply', { replyTo: sent.seq });
    const inThread = await cb.send(room.id, 'in the thread', { thread: sent.seq });
    const liveReply = await until(() => ca.seen.message.find((m) => m.seq === reply.seq), 5000, 'reply');
    assert.equal(liveReply.reply_to, sent.seq);
    const liveThread = await until(() => ca.seen.message.find((m) => m.seq === inThread.seq), 5000, 'thread');
    assert.equal(liveThread.thread, sent.seq);
    assert.equal(cb.seen.message.find((m) => m.seq === reply.seq).reply_to, sent.seq);

    // a deletes: b gets the delete entry; history shows a tombstone.
    const d = await ca.delete(room.id, sent.seq);
    assert.equal(d.op, 'delete');
    const db = await until(() => cb.ops.find((x) => x.type === 'delete'), 5000, 'b gets the delete');
    assert.equal(db.target, sent.seq);
    assert.equal(db.seq, d.seq);
    assert.equal(db.user, a.id);
    h = await cb.history(room.id);
    msg = h.messages.find((m) => m.seq === sent.seq);
    assert.equal(msg.deleted, true);
    assert.equal(msg.body, '');
    await assert.rejects(ca.delete(room.id, sent.seq), (err) => err.code === 'message_deleted');

    // Every op entry reached b once, in seq order.
    const seqs = cb.ops.map((x) => x.seq);
    assert.deepEqual([...seqs].sort((x, y) => x - y), seqs);
    assert.equal(new Set(seqs).size, seqs.length);
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});

test('edits, deletes and reactions made offline or with a lost ack are resent once', async () => {
  const srv = await startChatd();
  const proxy = await tcpProxy(srv.port);
  const { ca, cb, room } = await pair(srv, proxy.url);
  try {
    const m1 = await ca.send(room.id, 'one');
    const m2 = await ca.send(room.id, 'two');

    // A lost ack: the edit is stored but its answer never comes back.
    proxy.blackhole = true;
    const lost = ca.edit(room.id, m1.seq, 'one, edited');
    await until(() => cb.ops.some((x) => x.type === 'edit'), 5000, 'edit stored');
    assert.equal(ca.pending().length, 1);
    const pend = ca.pending()[0];
    assert.equal(pend.op, 'edit');
    assert.equal(pend.target, m1.seq);

    // Offline: a reaction and a delete wait in the queue.
    proxy.refuse = true;
    proxy.cut();
    proxy.blackhole = false;
    await until(() => ca.state === 'offline', 5000, 'offline');
    const queued = [ca.react(room.id, m1.seq, '🎉'), ca.delete(room.id, m2.seq)];
    assert.deepEqual(ca.pending().map((p) => p.op), ['edit', 'react', 'delete']);
    await sleep(300);
    proxy.refuse = false;

    const ack = await lost;
    assert.equal(ack.duplicate, true, 'the resend got the original ack');
    assert.equal(ack.client_msg_id, pend.client_msg_id);
    const [r, d] = await Promise.all(queued);
    assert.equal(r.changed, true);
    assert.equal(d.target, m2.seq);
    assert.equal(ca.pending().length, 0);

    await until(() => cb.ops.length === 3, 5000, 'b gets 3 entries');
    await sleep(300);
    assert.deepEqual(cb.ops.map((x) => x.type), ['edit', 'reaction', 'delete']);
    // The edit was applied once: one edit entry in the log.
    const h = await cb.history(room.id);
    assert.equal(h.messages.filter((x) => x.type === 'edit').length, 1);
    const one = h.messages.find((x) => x.seq === m1.seq);
    assert.equal(one.body, 'one, edited');
    assert.deepEqual(one.reactions, [{ emoji: '🎉', count: 1, me: false }]);
    assert.equal(h.messages.find((x) => x.seq === m2.seq).deleted, true);
    // a reported its own edit once (from the sync replay or the duplicate ack, not both).
    assert.equal(ca.ops.filter((x) => x.type === 'edit').length, 1);

    // An explicit client_msg_id reused: the original ack, nothing new stored.
    const x1 = await ca.react(room.id, m1.seq, '👀', true, { clientMsgId: 'react-eyes' });
    const x2 = await ca.react(room.id, m1.seq, '👀', true, { clientMsgId: 'react-eyes' });
    assert.equal(x2.duplicate, true);
    assert.equal(x2.seq, x1.seq);
  } finally {
    ca.close();
    cb.close();
    await proxy.close();
    await srv.stop();
  }
});

/** The folding rule of docs/PROTOCOL.md (the same as in sdk/js/README.md). */
function fold(msgs, e, myId) {
  const m = msgs.get(e.target);
  if (!m || (m.state_seq || 0) >= e.seq) return;
  m.state_seq = e.seq;
  if (e.type === 'edit') Object.assign(m, { body: e.body, edited_at: e.edited_at });
  else if (e.type === 'delete') Object.assign(m, { deleted: true, body: '', reactions: [] });
  else {
    const rs = (m.reactions ||= []);
    let r = rs.find((x) => x.emoji === e.emoji);
    if (!r) rs.push((r = { emoji: e.emoji, count: 0, me: false }));
    r.count += e.on ? 1 : -1;
    if (e.user === myId) r.me = e.on;
    if (r.count <= 0) rs.splice(rs.indexOf(r), 1);
  }
}

const view = (m) => ({ body: m.body, edited_at: m.edited_at, deleted: !!m.deleted, reactions: m.deleted ? [] : m.reactions || [] });

test('folding live entries into a history copy, replays included, ends at what history shows', async () => {
  const srv = await startChatd();
  const { a, b, ca, cb, room } = await pair(srv);
  try {
    const m1 = await ca.send(room.id, 'one');
    const m2 = await ca.send(room.id, 'two');
    // Entries b receives before it reads history: the history copy already includes them, so
    // folding them again (as after a replay) must change nothing.
    await ca.react(room.id, m1.seq, '👍');
    await cb.react(room.id, m1.seq, '👍');
    await ca.edit(room.id, m1.seq, 'one (1)');
    await until(() => cb.ops.length === 3, 5000, 'b gets 3 entries');
    const copy = new Map();
    for (const m of (await cb.history(room.id)).messages) if (m.type === 'message') copy.set(m.seq, structuredClone(m));
    for (const e of cb.ops) fold(copy, e, b.id); // replayed: already included
    const before = (await cb.history(room.id)).messages.find((m) => m.seq === m1.seq);
    assert.deepEqual(view(copy.get(m1.seq)), view(before));
    // Live entries after the copy was taken.
    const n = cb.ops.length;
    await cb.react(room.id, m1.seq, '🎉');
    await ca.react(room.id, m1.seq, '👍', false);
    await ca.edit(room.id, m1.seq, 'one (2)');
    await cb.react(room.id, m2.seq, '👀');
    await ca.delete(room.id, m2.seq);
    await until(() => cb.ops.length === n + 5, 5000, 'b gets 5 more');
    // Each entry twice (a replay after a reconnect): the second pass changes nothing.
    for (const e of cb.ops) fold(copy, e, b.id);
    for (const e of cb.ops) fold(copy, e, b.id);
    const now = new Map((await cb.history(room.id)).messages.filter((m) => m.type === 'message').map((m) => [m.seq, m]));
    assert.deepEqual(view(copy.get(m1.seq)), view(now.get(m1.seq)));
    assert.deepEqual(view(copy.get(m2.seq)), view(now.get(m2.seq)));
    assert.equal(copy.get(m1.seq).body, 'one (2)');
    assert.deepEqual(copy.get(m1.seq).reactions, [
      { emoji: '👍', count: 1, me: true },
      { emoji: '🎉', count: 1, me: true },
    ]);
    assert.equal(copy.get(m2.seq).deleted, true);
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});
