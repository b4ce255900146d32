'use strict';
// Message operations (docs/PROTOCOL.md, "Edits, deletes, reactions, replies and threads"): each
// operation by the right and the wrong user, over WebSocket and REST; a device that was offline
// converges through sync; thread paging; idempotency by client_msg_id; and the two fixes of
// issue 14 section 6 (the idempotency key per room; re-adding an admin keeps the role).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startChat,
  newUser,
  api,
  createRoom,
  fullHistory,
  connect,
  expectWsError,
  expectError,
  withClients,
  nextId,
} = require('./lib/chat');

const T = { timeout: 30000 };

describe('message operations', () => {
  let srv;
  before(async () => {
    srv = await startChat();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n, prefix = 'mo') => Promise.all(Array.from({ length: n }, () => newUser(srv, prefix)));
  const history = async (u, room) => {
    const h = await fullHistory(srv, u, room);
    return new Map(h.map((m) => [m.seq, m]));
  };

  it('edit: only the author; a log entry every member receives; history has the current text', T, async () => {
    const [a, b, x] = await users(3);
    const room = (await createRoom(srv, a, [b])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    const cx = await connect(srv, x);
    await withClients([ca, cb, cx], async () => {
      const sent = await ca.sendMsg(room, 'helo');
      assert.equal(sent.type, 'ack');
      const ack = await ca.req({ type: 'edit', room, seq: sent.seq, body: 'hello', client_msg_id: 'e1' });
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      assert.equal(ack.op, 'edit');
      assert.equal(ack.seq, sent.seq + 1);
      assert.equal(ack.target, sent.seq);
      assert.equal(ack.duplicate, false);
      const ev = await cb.next((m) => m.type === 'edit' && m.room === room);
      assert.equal(ev.seq, sent.seq + 1);
      assert.equal(ev.target, sent.seq);
      assert.equal(ev.body, 'hello');
      assert.equal(typeof ev.edited_at, 'number');
      assert.equal(ev.user, a.id);

      // the same client_msg_id again: the original's ack, nothing new
      const again = await ca.req({ type: 'edit', room, seq: sent.seq, body: 'hello', client_msg_id: 'e1' });
      assert.equal(again.duplicate, true);
      assert.equal(again.seq, ack.seq);

      // not the author; not a member; no such message; not a message
      expectWsError(await cb.req({ type: 'edit', room, seq: sent.seq, body: 'mine now' }), 'forbidden');
      expectWsError(await cx.req({ type: 'edit', room, seq: sent.seq, body: 'x' }), 'not_member');
      expectWsError(await ca.req({ type: 'edit', room, seq: 9999, body: 'x' }), 'not_found');
      expectWsError(await ca.req({ type: 'edit', room, seq: 1, body: 'x' }), 'not_found'); // a member entry
      expectWsError(await ca.req({ type: 'edit', room, seq: sent.seq, body: '' }), 'invalid_field');
      expectWsError(await ca.req({ type: 'edit', room, seq: 'one', body: 'x' }), 'invalid_field');

      const h = await history(a, room);
      const m = h.get(sent.seq);
      assert.equal(m.body, 'hello');
      assert.equal(m.edited_at, ev.edited_at);
      assert.equal(m.state_seq, ack.seq);
      assert.equal(h.get(ack.seq).type, 'edit');
    });
  });

  it('delete: the author or an admin; the text is erased everywhere (message and its edits); tombstone keeps seq, sender, ts', T, async () => {
    const [owner, b, c] = await users(3);
    const room = (await createRoom(srv, owner, [b, c])).id;
    const co = await connect(srv, owner);
    const cb = await connect(srv, b);
    const cc = await connect(srv, c);
    await withClients([co, cb, cc], async () => {
      const m1 = await cb.sendMsg(room, 'secret one');
      const e1 = await cb.req({ type: 'edit', room, seq: m1.seq, body: 'secret two' });
      assert.equal(e1.type, 'ack');
      const m2 = await cb.sendMsg(room, 'by b, deleted by the owner');
      const m3 = await cc.sendMsg(room, 'by c');

      expectWsError(await cb.req({ type: 'delete', room, seq: m3.seq }), 'forbidden'); // a member, not the author
      const d1 = await cb.req({ type: 'delete', room, seq: m1.seq, client_msg_id: 'd1' });
      assert.equal(d1.type, 'ack', JSON.stringify(d1));
      assert.equal(d1.op, 'delete');
      const ev = await cc.next((m) => m.type === 'delete' && m.target === m1.seq);
      assert.equal(ev.seq, d1.seq);
      assert.equal(ev.user, b.id);
      const d2 = await co.req({ type: 'delete', room, seq: m2.seq }); // the owner deletes b's
      assert.equal(d2.type, 'ack', JSON.stringify(d2));

      // deleted: no edit, no reaction, no second delete, no thread under it
      expectWsError(await cb.req({ type: 'edit', room, seq: m1.seq, body: 'back' }), 'message_deleted');
      expectWsError(await cc.req({ type: 'react', room, seq: m1.seq, emoji: '👍', on: true }), 'message_deleted');
      expectWsError(await cb.req({ type: 'delete', room, seq: m1.seq }), 'message_deleted');
      expectWsError(await cc.req({ type: 'send', room, body: 'r', client_msg_id: nextId('t'), thread: m1.seq }), 'message_deleted');
      // a resend of the delete answers the original
      const again = await cb.req({ type: 'delete', room, seq: m1.seq, client_msg_id: 'd1' });
      assert.equal(again.duplicate, true);
      assert.equal(again.seq, d1.seq);

      const h = await history(c, room);
      const t = h.get(m1.seq);
      assert.equal(t.deleted, true);
      assert.equal(t.body, '');
      assert.equal(t.sender, b.id);
      assert.equal(t.ts, m1.ts);
      assert.equal(h.get(e1.seq).type, 'edit');
      assert.equal(h.get(e1.seq).body, ''); // the edit entry's text is erased too
      assert.equal(h.get(m2.seq).deleted, true);
      assert.equal(h.get(m3.seq).deleted, undefined);
      assert.ok(![...h.values()].some((m) => JSON.stringify(m).includes('secret')), 'deleted text still served');
    });
  });

  it('react: one reaction per user and emoji, aggregated per message with me; emoji validated', T, async () => {
    const [a, b] = await users(2);
    const room = (await createRoom(srv, a, [b])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const m = await ca.sendMsg(room, 'react to me');
      const r1 = await ca.req({ type: 'react', room, seq: m.seq, emoji: '👍', on: true });
      assert.equal(r1.type, 'ack', JSON.stringify(r1));
      assert.equal(r1.op, 'react');
      assert.equal(r1.changed, true);
      const ev = await cb.next((x) => x.type === 'reaction' && x.seq === r1.seq);
      assert.deepEqual(
        { target: ev.target, emoji: ev.emoji, user: ev.user, on: ev.on },
        { target: m.seq, emoji: '👍', user: a.id, on: true },
      );
      // the same reaction again: nothing changes, no entry
      const r2 = await ca.req({ type: 'react', room, seq: m.seq, emoji: '👍', on: true });
      assert.equal(r2.changed, false);
      assert.equal(r2.seq, null);
      await cb.req({ type: 'react', room, seq: m.seq, emoji: '👍', on: true });
      await cb.req({ type: 'react', room, seq: m.seq, emoji: '👨‍👩‍👧‍👦', on: true });

      let ha = (await history(a, room)).get(m.seq);
      let hb = (await history(b, room)).get(m.seq);
      assert.deepEqual(ha.reactions, [
        { emoji: '👍', count: 2, me: true },
        { emoji: '👨‍👩‍👧‍👦', count: 1, me: false },
      ]);
      assert.deepEqual(hb.reactions, [
        { emoji: '👍', count: 2, me: true },
        { emoji: '👨‍👩‍👧‍👦', count: 1, me: true },
      ]);
      const off = await ca.req({ type: 'react', room, seq: m.seq, emoji: '👍', on: false });
      assert.equal(off.changed, true);
      ha = (await history(a, room)).get(m.seq);
      assert.deepEqual(ha.reactions[0], { emoji: '👍', count: 1, me: false });
      assert.equal(ha.state_seq, off.seq);

      for (const emoji of ['', 'ok', ' ', 'a👍', '👍\n', '👍'.repeat(11), '\u0085', 'x'.repeat(40)])
        expectWsError(await ca.req({ type: 'react', room, seq: m.seq, emoji, on: true }), 'invalid_field');
      expectWsError(await ca.req({ type: 'react', room, seq: m.seq, emoji: '👍' }), 'invalid_field'); // on is required
      for (const emoji of ['1️⃣', '🇫🇷', '❤️'])
        assert.equal((await ca.req({ type: 'react', room, seq: m.seq, emoji, on: true })).type, 'ack', emoji);
    });
  });

  it('a device offline during edits, deletes and reactions converges through sync, in seq order', T, async () => {
    const [a, b] = await users(2);
    const room = (await createRoom(srv, a, [b])).id;
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const m1 = await ca.sendMsg(room, 'one');
      const m2 = await ca.sendMsg(room, 'two');
      const m3 = await ca.sendMsg(room, 'three');
      // b saw everything up to m3, then went offline
      const cb1 = await connect(srv, b, { sync: { [room]: 0 } });
      await cb1.waitFor(() => cb1.entries(room).some((m) => m.seq === m3.seq), 10000, 'm3');
      await cb1.close();

      const ops = [
        await ca.req({ type: 'edit', room, seq: m1.seq, body: 'one, edited' }),
        await ca.req({ type: 'react', room, seq: m2.seq, emoji: '🎉', on: true }),
        await ca.req({ type: 'delete', room, seq: m3.seq }),
        await ca.req({ type: 'edit', room, seq: m1.seq, body: 'one, edited twice' }),
      ];
      for (const o of ops) assert.equal(o.type, 'ack', JSON.stringify(o));

      const cb2 = await connect(srv, b, { sync: { [room]: m3.seq } });
      await withClients([cb2], async () => {
        const last = ops[ops.length - 1].seq;
        await cb2.waitFor(() => cb2.entries(room).some((m) => m.seq === last), 10000, 'the last op');
        const got = cb2.entries(room);
        assert.deepEqual(got.map((m) => m.seq), ops.map((o) => o.seq));
        assert.deepEqual(got.map((m) => m.type), ['edit', 'reaction', 'delete', 'edit']);
        assert.equal(got[0].target, m1.seq);
        assert.equal(got[3].body, 'one, edited twice');

        // folding the replayed entries onto b's copy gives the server's state
        const copy = new Map([[m1.seq, { body: 'one' }], [m2.seq, { body: 'two', reactions: {} }], [m3.seq, { body: 'three' }]]);
        for (const e of got) {
          const t = copy.get(e.target);
          if (e.type === 'edit') t.body = e.body;
          if (e.type === 'delete') Object.assign(t, { body: '', deleted: true });
          if (e.type === 'reaction') t.reactions[e.emoji] = (t.reactions[e.emoji] || 0) + (e.on ? 1 : -1);
        }
        const h = await history(b, room);
        assert.equal(h.get(m1.seq).body, copy.get(m1.seq).body);
        assert.equal(h.get(m3.seq).deleted, copy.get(m3.seq).deleted);
        assert.deepEqual(h.get(m2.seq).reactions, [{ emoji: '🎉', count: copy.get(m2.seq).reactions['🎉'], me: false }]);

        // a full replay carries each message's current state with state_seq
        const cb3 = await connect(srv, b, { sync: { [room]: 0 } });
        await withClients([cb3], async () => {
          await cb3.waitFor(() => cb3.entries(room).some((m) => m.seq === last), 10000, 'full replay');
          const r1 = cb3.entries(room).find((m) => m.seq === m1.seq);
          assert.equal(r1.body, 'one, edited twice');
          assert.equal(r1.state_seq, last);
          assert.equal(cb3.entries(room).find((m) => m.seq === m3.seq).deleted, true);
        });
      });
    });
  });

  it('replies and threads: reply_to and thread must exist in the room; threads page; roots count replies', T, async () => {
    const [a, b] = await users(2);
    const room = (await createRoom(srv, a, [b])).id;
    const other = (await createRoom(srv, a, [])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const root = await ca.sendMsg(room, 'root');
      const elsewhere = await ca.sendMsg(other, 'in another room');
      const reply = await cb.req({ type: 'send', room, body: 're', client_msg_id: nextId('r'), reply_to: root.seq });
      assert.equal(reply.type, 'ack', JSON.stringify(reply));
      const live = await ca.next((m) => m.type === 'message' && m.seq === reply.seq);
      assert.equal(live.reply_to, root.seq);

      expectWsError(await cb.req({ type: 'send', room, body: 'x', client_msg_id: nextId('r'), reply_to: 9999 }), 'not_found');
      expectWsError(await cb.req({ type: 'send', room, body: 'x', client_msg_id: nextId('r'), reply_to: -1 }), 'invalid_field');
      expectWsError(await cb.req({ type: 'send', room, body: 'x', client_msg_id: nextId('r'), thread: 1 }), 'not_found'); // a member entry
      assert.ok(elsewhere.seq > 0);

      const replies = [];
      for (let i = 0; i < 5; i++) {
        const c = i % 2 ? ca : cb;
        const r = await c.req({ type: 'send', room, body: `t${i}`, client_msg_id: nextId('t'), thread: root.seq });
        assert.equal(r.type, 'ack', JSON.stringify(r));
        replies.push(r.seq);
        if (i === 0) await ca.sendMsg(room, 'not in the thread');
      }
      // a reply in a thread cannot be a root
      expectWsError(await ca.req({ type: 'send', room, body: 'x', client_msg_id: nextId('t'), thread: replies[0] }), 'invalid_field');

      const h = await history(a, room);
      assert.equal(h.get(root.seq).reply_count, 5);
      assert.equal(h.get(root.seq).last_reply_seq, replies[4]);
      assert.equal(h.get(replies[2]).thread, root.seq);

      // newest page first (ascending inside), then before=
      let p = await api(srv, b).get(`/v1/rooms/${room}/threads/${root.seq}/messages?limit=2`);
      assert.equal(p.status, 200, p.text);
      assert.deepEqual(p.body.messages.map((m) => m.seq), replies.slice(3));
      assert.equal(p.body.has_more, true);
      p = await api(srv, b).get(`/v1/rooms/${room}/threads/${root.seq}/messages?limit=2&before=${replies[3]}`);
      assert.deepEqual(p.body.messages.map((m) => m.seq), replies.slice(1, 3));
      p = await api(srv, b).get(`/v1/rooms/${room}/threads/${root.seq}/messages?after=0&limit=10`);
      assert.deepEqual(p.body.messages.map((m) => m.seq), replies);
      assert.equal(p.body.has_more, false);
      assert.ok(p.body.messages.every((m) => m.thread === root.seq));

      const outsider = await newUser(srv, 'mo');
      expectError(assert, await api(srv, outsider).get(`/v1/rooms/${room}/threads/${root.seq}/messages`), 403, 'not_member');
      expectError(assert, await api(srv, a).get(`/v1/rooms/${room}/threads/zero/messages`), 404, 'not_found');

      // REST send with links
      const rs = await api(srv, b).post(`/v1/rooms/${room}/messages`, { body: 'rest reply', client_msg_id: nextId('rr'), thread: root.seq, reply_to: replies[4] });
      assert.equal(rs.status, 201, rs.text);
      assert.equal((await history(a, room)).get(root.seq).reply_count, 6);
    });
  });

  it('REST: PATCH and DELETE /v1/rooms/{id}/messages/{seq}, POST .../reactions, by the right and the wrong user', T, async () => {
    const [a, b, x] = await users(3);
    const room = (await createRoom(srv, a, [b])).id;
    const cb = await connect(srv, b);
    await withClients([cb], async () => {
      const m = await api(srv, a).post(`/v1/rooms/${room}/messages`, { body: 'rest', client_msg_id: nextId('m') });
      assert.equal(m.status, 201);
      const seq = m.body.seq;

      let r = await api(srv, a).patch(`/v1/rooms/${room}/messages/${seq}`, { body: 'rest, edited', client_msg_id: 'pe1' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.target, seq);
      assert.equal(r.body.seq, seq + 1);
      const live = await cb.next((e) => e.type === 'edit' && e.seq === seq + 1);
      assert.equal(live.body, 'rest, edited');
      r = await api(srv, a).patch(`/v1/rooms/${room}/messages/${seq}`, { body: 'rest, edited', client_msg_id: 'pe1' });
      assert.equal(r.body.duplicate, true);
      expectError(assert, await api(srv, b).patch(`/v1/rooms/${room}/messages/${seq}`, { body: 'no' }), 403, 'forbidden');
      expectError(assert, await api(srv, x).patch(`/v1/rooms/${room}/messages/${seq}`, { body: 'no' }), 403, 'not_member');
      expectError(assert, await api(srv, a).patch(`/v1/rooms/${room}/messages/abc`, { body: 'no' }), 404, 'not_found');
      expectError(assert, await api(srv, a).patch(`/v1/rooms/${room}/messages/777`, { body: 'no' }), 404, 'not_found');
      expectError(assert, await api(srv, a).patch(`/v1/rooms/${room}/messages/${seq}`, {}), 400, 'invalid_field');

      r = await api(srv, b).post(`/v1/rooms/${room}/messages/${seq}/reactions`, { emoji: '🔥' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.changed, true);
      r = await api(srv, b).post(`/v1/rooms/${room}/messages/${seq}/reactions`, { emoji: '🔥', on: true });
      assert.equal(r.body.changed, false);
      expectError(assert, await api(srv, b).post(`/v1/rooms/${room}/messages/${seq}/reactions`, { emoji: 'lol' }), 400, 'invalid_field');
      expectError(assert, await api(srv, x).post(`/v1/rooms/${room}/messages/${seq}/reactions`, { emoji: '🔥' }), 403, 'not_member');

      expectError(assert, await api(srv, b).del(`/v1/rooms/${room}/messages/${seq}`), 403, 'forbidden');
      r = await api(srv, a).del(`/v1/rooms/${room}/messages/${seq}`);
      assert.equal(r.status, 200, r.text);
      await cb.next((e) => e.type === 'delete' && e.target === seq);
      expectError(assert, await api(srv, a).del(`/v1/rooms/${room}/messages/${seq}`), 410, 'message_deleted');
      const h = await history(b, room);
      assert.equal(h.get(seq).deleted, true);
      assert.equal(h.get(seq).reactions, undefined); // a tombstone keeps no reactions
    });
  });

  it('a kicked user can do nothing any more', T, async () => {
    const [a, b] = await users(2);
    const room = (await createRoom(srv, a, [b])).id;
    const m = await api(srv, b).post(`/v1/rooms/${room}/messages`, { body: 'mine', client_msg_id: nextId('k') });
    const kick = await api(srv, a).del(`/v1/rooms/${room}/members/${b.id}`);
    assert.equal(kick.status, 204, kick.text);
    const seq = m.body.seq;
    expectError(assert, await api(srv, b).patch(`/v1/rooms/${room}/messages/${seq}`, { body: 'x' }), 403, 'not_member');
    expectError(assert, await api(srv, b).del(`/v1/rooms/${room}/messages/${seq}`), 403, 'not_member');
    expectError(assert, await api(srv, b).post(`/v1/rooms/${room}/messages/${seq}/reactions`, { emoji: '👍' }), 403, 'not_member');
    const cb = await connect(srv, b);
    await withClients([cb], async () => {
      expectWsError(await cb.req({ type: 'edit', room, seq, body: 'x' }), 'not_member');
      expectWsError(await cb.req({ type: 'react', room, seq, emoji: '👍', on: true }), 'not_member');
    });
  });

  it('idempotency key is (room, sender, client_msg_id): the same id in another room is another message', T, async () => {
    const [a] = await users(1);
    const r1 = (await createRoom(srv, a, [])).id;
    const r2 = (await createRoom(srv, a, [])).id;
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const s1 = await ca.sendMsg(r1, 'in one', 'same-id');
      const s2 = await ca.sendMsg(r2, 'in two', 'same-id');
      assert.equal(s1.duplicate, false);
      assert.equal(s2.duplicate, false);
      assert.equal(s2.room, r2);
      const again = await ca.sendMsg(r2, 'in two', 'same-id');
      assert.equal(again.duplicate, true);
      assert.equal(again.seq, s2.seq);
      assert.equal(again.room, r2);
      const h = await fullHistory(srv, a, r2);
      assert.ok(h.some((m) => m.body === 'in two' && m.client_msg_id === 'same-id'));
      // REST too
      const p = await api(srv, a).post(`/v1/rooms/${r1}/messages`, { body: 'in two', client_msg_id: 'rest-id' });
      const q = await api(srv, a).post(`/v1/rooms/${r2}/messages`, { body: 'in two', client_msg_id: 'rest-id' });
      assert.equal(p.status, 201);
      assert.equal(q.status, 201);
      assert.equal(q.body.room, r2);
    });
  });

  it('re-adding an existing admin without role keeps the role', T, async () => {
    const [owner, adm] = await users(2);
    const room = (await createRoom(srv, owner, [])).id;
    let r = await api(srv, owner).post(`/v1/rooms/${room}/members`, { user_id: adm.id, role: 'admin' });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    r = await api(srv, owner).post(`/v1/rooms/${room}/members`, { user_id: adm.id });
    assert.ok(r.status === 200 || r.status === 201, r.text);
    const g = await api(srv, owner).get(`/v1/rooms/${room}`);
    assert.equal(g.body.room.members.find((m) => m.user_id === adm.id).role, 'admin');
    // an explicit role still changes it
    r = await api(srv, owner).post(`/v1/rooms/${room}/members`, { user_id: adm.id, role: 'member' });
    const g2 = await api(srv, owner).get(`/v1/rooms/${room}`);
    assert.equal(g2.body.room.members.find((m) => m.user_id === adm.id).role, 'member');
  });
});
