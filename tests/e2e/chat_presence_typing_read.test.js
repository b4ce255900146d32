'use strict';
// Presence, typing and read markers (docs/PROTOCOL.md, "Presence", the typing and read requests,
// GET /v1/users/{id}, unread counts in GET /v1/rooms).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startChat,
  newUser,
  loginAgain,
  api,
  createRoom,
  fullHistory,
  connect,
  expectNothing,
  expectWsError,
  withClients,
  nextId,
  sleep,
} = require('./lib/chat');

const T = { timeout: 30000 };
const PRESENCE_MAX_ROOM = 3;

describe('presence, typing and read markers', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'presence-max-room': PRESENCE_MAX_ROOM });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n, prefix = 'pt') => Promise.all(Array.from({ length: n }, () => newUser(srv, prefix)));
  const presenceOf = (c, user) => c.ofType('presence', (m) => m.user === user.id);

  describe('presence', () => {
    it('online with the first connection, offline with last_seen when the last one closes; a second device changes nothing', T, async () => {
      const [a, b, c] = await users(3);
      await createRoom(srv, a, [b]);
      await createRoom(srv, b, [c]); // c shares a room with b, none with a
      const a2tok = await loginAgain(srv, a);
      const cb = await connect(srv, b);
      const cc = await connect(srv, c);
      const clients = [cb, cc];
      await withClients(clients, async () => {
        // before: a is offline, never seen
        let g = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(g.status, 200, g.text);
        assert.equal(g.body.user.status, 'offline');
        assert.equal(g.body.user.last_seen, null);

        const a1 = await connect(srv, a);
        clients.push(a1);
        const on = await cb.next((m) => m.type === 'presence' && m.user === a.id);
        assert.equal(on.status, 'online');
        assert.ok('last_seen' in on, JSON.stringify(on));
        g = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(g.body.user.status, 'online');

        // a second device: no new event
        const a2 = await connect(srv, a2tok);
        clients.push(a2);
        await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 500, 'presence event for a second connection');
        // one closes: still online, no event
        await a1.close();
        await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 500, 'presence event while a device is still connected');
        g = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(g.body.user.status, 'online');
        assert.equal((await api(srv, a).get('/v1/me')).body.user.status, 'online');

        // the last one closes: offline with last_seen
        const t0 = Date.now();
        await a2.close();
        const off = await cb.next((m) => m.type === 'presence' && m.user === a.id && m.status === 'offline');
        assert.equal(typeof off.last_seen, 'number');
        assert.ok(off.last_seen >= t0 - 5000 && off.last_seen <= Date.now() + 5000, `last_seen ${off.last_seen} is not now (unix ms)`);
        g = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(g.body.user.status, 'offline');
        assert.equal(g.body.user.last_seen, off.last_seen);
        assert.deepEqual(presenceOf(cb, a).map((m) => m.status), ['online', 'offline']);

        // c shares no room with a: no events, and no status in the lookup
        assert.deepEqual(presenceOf(cc, a), []);
        const gc = await api(srv, c).get(`/v1/users/${a.id}`);
        assert.equal(gc.status, 200, gc.text);
        assert.equal(gc.body.user.id, a.id);
        assert.equal(gc.body.user.username, a.username);
        assert.ok(!('status' in gc.body.user), `status leaked: ${gc.text}`);
        assert.ok(!('last_seen' in gc.body.user), `last_seen leaked: ${gc.text}`);
      });
    });

    it('presence goes to every connection of the watchers, once per change even with two shared rooms, never to the user itself', T, async () => {
      const [a, b] = await users(2);
      await createRoom(srv, a, [b]);
      await createRoom(srv, b, [a]);
      const b1 = await connect(srv, b);
      const b2 = await connect(srv, b);
      await withClients([b1, b2], async () => {
        const a1 = await connect(srv, a);
        for (const cl of [b1, b2]) await cl.next((m) => m.type === 'presence' && m.user === a.id && m.status === 'online');
        await sleep(300);
        for (const cl of [b1, b2]) assert.deepEqual(presenceOf(cl, a).map((m) => m.status), ['online']);
        assert.deepEqual(presenceOf(a1, a), [], 'no presence event about yourself');
        await a1.close();
        for (const cl of [b1, b2]) await cl.next((m) => m.type === 'presence' && m.user === a.id && m.status === 'offline');
        await sleep(300);
        for (const cl of [b1, b2]) assert.deepEqual(presenceOf(cl, a).map((m) => m.status), ['online', 'offline']);
      });
    });

    it(`rooms over --presence-max-room members (${PRESENCE_MAX_ROOM}) send no presence events; the lookup still shows the status`, T, async () => {
      const [a, b, x, y] = await users(4);
      await createRoom(srv, a, [b, x, y]); // 4 members > 3
      const cb = await connect(srv, b);
      await withClients([cb], async () => {
        const ca = await connect(srv, a);
        await withClients([ca], async () => {
          await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 500, 'presence event from a big room');
          const g = await api(srv, b).get(`/v1/users/${a.id}`);
          assert.equal(g.body.user.status, 'online');
        });
        await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 300, 'presence event from a big room');
        const g = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(g.body.user.status, 'offline');
        assert.equal(typeof g.body.user.last_seen, 'number');
      });
    });
  });

  describe('typing', () => {
    it("other members get typing:true, the typer's connections nothing; typing:false follows the expiry", T, async () => {
      const [a, b, c, d] = await users(4);
      const room = await createRoom(srv, a, [b, c]);
      const a1 = await connect(srv, a);
      const a2 = await connect(srv, a);
      const cb = await connect(srv, b);
      const cc = await connect(srv, c);
      const cd = await connect(srv, d); // not a member
      await withClients([a1, a2, cb, cc, cd], async () => {
        a1.send({ type: 'typing', id: 'ty1', room: room.id });
        for (const cl of [cb, cc]) {
          const t = await cl.next((m) => m.type === 'typing' && m.room === room.id);
          assert.deepEqual(t, { type: 'typing', room: room.id, user: a.id, typing: true, expires_ms: 5000 });
        }
        // typing:false after the expiry (5 s), allowing slack
        for (const cl of [cb, cc]) {
          const f = await cl.next((m) => m.type === 'typing' && m.room === room.id, 8000);
          assert.equal(f.typing, false);
          assert.equal(f.user, a.id);
        }
        const ofTyping = (m) => m.type === 'typing' || m.id === 'ty1';
        assert.deepEqual(a1.messages.filter(ofTyping), [], 'the typer gets no reply and no event');
        assert.deepEqual(a2.messages.filter(ofTyping), [], "the typer's other device gets no event");
        assert.deepEqual(cd.messages.filter(ofTyping), [], 'a non-member gets no event');
        // never stored
        const h = await fullHistory(srv, b, room.id);
        assert.ok(h.every((m) => m.type !== 'typing'));
        assert.equal(h.length, 3);
      });
    });

    it('closing the typing connection sends typing:false right away', T, async () => {
      const [a, b] = await users(2);
      const room = await createRoom(srv, a, [b]);
      const a1 = await connect(srv, a);
      const cb = await connect(srv, b);
      await withClients([a1, cb], async () => {
        a1.send({ type: 'typing', room: room.id });
        await cb.next((m) => m.type === 'typing' && m.typing === true);
        await a1.close();
        // well before the 5 s expiry
        const f = await cb.next((m) => m.type === 'typing' && m.typing === false, 3000);
        assert.equal(f.user, a.id);
        assert.equal(f.room, room.id);
      });
    });

    it('typing in a room you are not in: not_member', T, async () => {
      const [a, b] = await users(2);
      const room = await createRoom(srv, a, []);
      const cb = await connect(srv, b);
      await withClients([cb], async () => {
        expectWsError(await cb.req({ type: 'typing', id: 't-nm', room: room.id }), 'not_member', 't-nm');
        expectWsError(await cb.req({ type: 'typing', id: 't-bad', room: 5 }), 'invalid_field', 't-bad');
      });
    });
  });

  describe('read markers', () => {
    it('read on one device: the other gets a read event; unread counts agree across devices and reach 0', T, async () => {
      const [a, b] = await users(2);
      const aDev2 = await loginAgain(srv, a);
      const room = await createRoom(srv, a, [b]);
      const seqs = [];
      for (let i = 0; i < 5; i++) {
        const r = await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: `m${i}`, client_msg_id: nextId('rd') });
        assert.equal(r.status, 201, r.text);
        seqs.push(r.body.seq);
      }
      assert.deepEqual(seqs, [3, 4, 5, 6, 7]);
      const listed = async (u) => (await api(srv, u).get('/v1/rooms')).body.rooms.find((x) => x.id === room.id);
      const both = async () => [await listed(a), await listed(aDev2)];
      for (const l of await both()) {
        assert.equal(l.unread, 5);
        assert.equal(l.read_seq, 0);
      }
      const a1 = await connect(srv, a);
      const a2 = await connect(srv, aDev2);
      const cb = await connect(srv, b);
      await withClients([a1, a2, cb], async () => {
        const r1 = await a1.req({ type: 'read', id: 'rd-1', room: room.id, seq: 5 });
        assert.deepEqual(r1, { type: 'read', id: 'rd-1', room: room.id, seq: 5, unread: 2 });
        const ev = await a2.next((m) => m.type === 'read');
        assert.deepEqual(ev, { type: 'read', room: room.id, seq: 5, unread: 2 });
        for (const l of await both()) {
          assert.equal(l.read_seq, 5);
          assert.equal(l.unread, 2);
        }
        assert.equal((await api(srv, aDev2).get(`/v1/rooms/${room.id}`)).body.room.read_seq, 5);

        // monotonic: an older seq keeps the higher marker
        const r2 = await a2.req({ type: 'read', id: 'rd-2', room: room.id, seq: 3 });
        assert.deepEqual(r2, { type: 'read', id: 'rd-2', room: room.id, seq: 5, unread: 2 });
        for (const l of await both()) assert.equal(l.read_seq, 5);

        // clamped to the room's last seq
        const r3 = await a2.req({ type: 'read', id: 'rd-3', room: room.id, seq: 1000000 });
        assert.deepEqual(r3, { type: 'read', id: 'rd-3', room: room.id, seq: 7, unread: 0 });
        const ev3 = await a1.next((m) => m.type === 'read' && m.seq === 7);
        assert.deepEqual(ev3, { type: 'read', room: room.id, seq: 7, unread: 0 });
        for (const l of await both()) {
          assert.equal(l.read_seq, 7);
          assert.equal(l.unread, 0);
        }
        // a new message counts again; a's own messages never do
        await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: 'one more', client_msg_id: nextId('rd') });
        await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'mine', client_msg_id: nextId('rd') });
        for (const l of await both()) {
          assert.equal(l.unread, 1);
          assert.equal(l.last_seq, 9);
        }
        assert.equal((await listed(b)).unread, 1, "b's unread: a's one message");

        // the other member does not see a's markers
        assert.deepEqual(cb.ofType('read'), []);
        // bad requests
        expectWsError(await a1.req({ type: 'read', id: 'rd-4', room: room.id, seq: -1 }), 'invalid_field', 'rd-4');
        expectWsError(await a1.req({ type: 'read', id: 'rd-5', room: room.id, seq: 'x' }), 'invalid_field', 'rd-5');
        expectWsError(await a1.req({ type: 'read', id: 'rd-6', room: room.id }), 'invalid_field', 'rd-6');
        for (const l of await both()) assert.equal(l.read_seq, 7);
      });
    });
  });
});
