'use strict';
// Rooms and direct chats (docs/PROTOCOL.md, "Rooms"): create, list, get, rename, members and
// roles, leave, kick (and what a kicked connection still receives), authorization errors, DMs.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startChat,
  newUser,
  api,
  createRoom,
  fullHistory,
  connect,
  expectNothing,
  expectWsError,
  expectError,
  withClients,
  nextId,
} = require('./lib/chat');

const T = { timeout: 30000 };
const UNKNOWN_ROOM = 'r_987654321';

describe('chat rooms', () => {
  let srv;
  before(async () => {
    srv = await startChat();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n, prefix = 'rm') => Promise.all(Array.from({ length: n }, () => newUser(srv, prefix)));

  describe('create', () => {
    it('POST /v1/rooms: 201, the room shape, and one member entry per member (seq 1..N, creator first)', T, async () => {
      const [a, b, c] = await users(3);
      const t0 = Date.now();
      const r = await api(srv, a).post('/v1/rooms', { name: 'general', topic: 'all things', members: [b.id, c.id] });
      assert.equal(r.status, 201, r.text);
      assert.match(r.headers['content-type'], /^application\/json/);
      const room = r.body.room;
      assert.equal(typeof room.id, 'string');
      assert.ok(room.id.length > 0);
      assert.equal(room.kind, 'group');
      assert.equal(room.name, 'general');
      assert.equal(room.topic, 'all things');
      assert.equal(room.created_by, a.id);
      assert.equal(typeof room.created_at, 'number');
      assert.ok(room.created_at >= t0 - 60000 && room.created_at <= Date.now() + 60000, `created_at ${room.created_at} is not unix ms`);
      assert.equal(room.last_seq, 3);
      assert.equal(room.member_count, 3);

      const h = await api(srv, a).get(`/v1/rooms/${room.id}/messages`);
      assert.equal(h.status, 200, h.text);
      assert.equal(h.body.has_more, false);
      const ms = h.body.messages;
      assert.deepEqual(ms.map((m) => m.seq), [1, 2, 3]);
      assert.deepEqual(ms.map((m) => m.user), [a.id, b.id, c.id]);
      assert.deepEqual(ms.map((m) => m.role), ['owner', 'member', 'member']);
      for (const [i, m] of ms.entries()) {
        assert.equal(m.type, 'member');
        assert.equal(m.room, room.id);
        assert.equal(m.action, 'join');
        assert.equal(m.by, a.id);
        assert.equal(m.member_count, i + 1, `member_count after join ${i + 1}: ${JSON.stringify(m)}`);
        assert.equal(typeof m.ts, 'number');
      }
    });

    it('de-duplicates the member list and ignores the creator in it; topic defaults to ""', T, async () => {
      const [a, b] = await users(2);
      const room = await createRoom(srv, a, [b.id, a.id, b.id]);
      assert.equal(room.member_count, 2);
      assert.equal(room.last_seq, 2);
      assert.equal(room.topic, '');
      const solo = await createRoom(srv, a, []);
      assert.equal(solo.member_count, 1);
      assert.equal(solo.last_seq, 1);
    });

    it('refuses a bad name/topic/members with 400 invalid_field and an unknown member with 404', T, async () => {
      const [a, b] = await users(2);
      const p = (json) => api(srv, a).post('/v1/rooms', json);
      expectError(assert, await p({ members: [b.id] }), 400, 'invalid_field');
      expectError(assert, await p({ name: '' }), 400, 'invalid_field');
      expectError(assert, await p({ name: 'x'.repeat(101) }), 400, 'invalid_field');
      expectError(assert, await p({ name: 42 }), 400, 'invalid_field');
      expectError(assert, await p({ name: 'ok', topic: 'x'.repeat(501) }), 400, 'invalid_field');
      expectError(assert, await p({ name: 'ok', members: b.id }), 400, 'invalid_field');
      expectError(assert, await p({ name: 'ok', members: [42] }), 400, 'invalid_field');
      expectError(assert, await p({ name: 'ok', members: ['u_987654321'] }), 404, 'not_found');
      // limits are bytes: 100 bytes of UTF-8 is fine
      const ok = await p({ name: 'é'.repeat(50), topic: 'x'.repeat(500) });
      assert.equal(ok.status, 201, ok.text);
      // no token: 401
      const anon = await api(srv, { token: undefined }).post('/v1/rooms', { name: 'x' });
      expectError(assert, anon, 401, 'unauthorized');
    });
  });

  describe('read', () => {
    it('GET /v1/rooms lists my rooms with last_seq, read_seq, unread and role', T, async () => {
      const [a, b, c] = await users(3);
      const room = await createRoom(srv, a, [b], { name: 'listed' });
      for (const i of [1, 2]) {
        const s = await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: `hi ${i}`, client_msg_id: nextId('l') });
        assert.equal(s.status, 201, s.text);
      }
      const la = await api(srv, a).get('/v1/rooms');
      assert.equal(la.status, 200, la.text);
      const ra = la.body.rooms.find((x) => x.id === room.id);
      assert.ok(ra, `room ${room.id} missing from ${la.text}`);
      assert.equal(ra.kind, 'group');
      assert.equal(ra.name, 'listed');
      assert.equal(ra.role, 'owner');
      assert.equal(ra.last_seq, 4);
      assert.equal(ra.member_count, 2);
      assert.equal(ra.read_seq, 0);
      assert.equal(ra.unread, 2, 'two messages from b; member entries are not unread messages');
      assert.equal(ra.peer, undefined, 'peer is for direct rooms only');

      const rb = (await api(srv, b).get('/v1/rooms')).body.rooms.find((x) => x.id === room.id);
      assert.equal(rb.role, 'member');
      assert.equal(rb.last_seq, 4);
      assert.equal(rb.unread, 0, "b's own messages are not unread for b");

      const lc = await api(srv, c).get('/v1/rooms');
      assert.equal(lc.status, 200);
      assert.deepEqual(lc.body.rooms, [], 'c is in no room');
    });

    it('GET /v1/rooms/{id}: the room with members, my role and read_seq', T, async () => {
      const [a, b] = await users(2);
      const room = await createRoom(srv, a, [b], { name: 'details', topic: 'tt' });
      const r = await api(srv, b).get(`/v1/rooms/${room.id}`);
      assert.equal(r.status, 200, r.text);
      const g = r.body.room;
      assert.equal(g.id, room.id);
      assert.equal(g.name, 'details');
      assert.equal(g.topic, 'tt');
      assert.equal(g.kind, 'group');
      assert.equal(g.last_seq, 2);
      assert.equal(g.member_count, 2);
      assert.equal(g.role, 'member');
      assert.equal(g.read_seq, 1); // b joined at seq 2: the marker starts just before its join
      const members = g.members.map(({ user_id, role }) => ({ user_id, role })).sort((x, y) => x.user_id.localeCompare(y.user_id));
      const want = [
        { user_id: a.id, role: 'owner' },
        { user_id: b.id, role: 'member' },
      ].sort((x, y) => x.user_id.localeCompare(y.user_id));
      assert.deepEqual(members, want);
    });

    it('an unknown room is 404 not_found everywhere', T, async () => {
      const [a, b] = await users(2);
      const x = api(srv, a);
      expectError(assert, await x.get(`/v1/rooms/${UNKNOWN_ROOM}`), 404, 'not_found');
      expectError(assert, await x.get(`/v1/rooms/${UNKNOWN_ROOM}/messages`), 404, 'not_found');
      expectError(assert, await x.patch(`/v1/rooms/${UNKNOWN_ROOM}`, { name: 'n' }), 404, 'not_found');
      expectError(assert, await x.post(`/v1/rooms/${UNKNOWN_ROOM}/members`, { user_id: b.id }), 404, 'not_found');
      expectError(assert, await x.del(`/v1/rooms/${UNKNOWN_ROOM}/members/${b.id}`), 404, 'not_found');
      expectError(assert, await x.get('/v1/rooms/not-a-room-id'), 404, 'not_found');
    });

    it('POST a message to an unknown room is 404 not_found', T, async () => {
      const [a] = await users(1);
      const r = await api(srv, a).post(`/v1/rooms/${UNKNOWN_ROOM}/messages`, { body: 'x', client_msg_id: nextId() });
      expectError(assert, r, 404, 'not_found');
    });
  });

  describe('rename', () => {
    it('PATCH logs a room entry that members receive; GET shows the new name', T, async () => {
      const [a, b] = await users(2);
      const room = await createRoom(srv, a, [b], { name: 'before', topic: 'old' });
      const cb = await connect(srv, b);
      await withClients([cb], async () => {
        const r = await api(srv, a).patch(`/v1/rooms/${room.id}`, { name: 'after', topic: 'new topic' });
        assert.equal(r.status, 200, r.text);
        assert.equal(r.body.room.name, 'after');
        assert.equal(r.body.room.topic, 'new topic');
        assert.equal(r.body.room.last_seq, 3);
        const ev = await cb.next((m) => m.type === 'room' && m.room === room.id);
        assert.equal(ev.seq, 3);
        assert.equal(ev.name, 'after');
        assert.equal(ev.topic, 'new topic');
        assert.equal(ev.by, a.id);
        assert.equal(typeof ev.ts, 'number');

        // topic only: the name stays
        const t = await api(srv, a).patch(`/v1/rooms/${room.id}`, { topic: '' });
        assert.equal(t.status, 200, t.text);
        assert.equal(t.body.room.name, 'after');
        assert.equal(t.body.room.topic, '');
        const ev2 = await cb.next((m) => m.type === 'room' && m.room === room.id && m.seq === 4);
        assert.equal(ev2.name, 'after');

        const g = await api(srv, b).get(`/v1/rooms/${room.id}`);
        assert.equal(g.body.room.name, 'after');
        const h = await fullHistory(srv, b, room.id);
        assert.deepEqual(h.map((m) => m.type), ['member', 'member', 'room', 'room']);
        assert.deepEqual(h[2], ev);

        expectError(assert, await api(srv, a).patch(`/v1/rooms/${room.id}`, {}), 400, 'invalid_field');
        expectError(assert, await api(srv, a).patch(`/v1/rooms/${room.id}`, { name: '' }), 400, 'invalid_field');
      });
    });
  });

  describe('members', () => {
    it("adding a member: the join entry reaches the members, and the new member's open connections receive the room from that entry on", T, async () => {
      const [a, b, c] = await users(3);
      const room = await createRoom(srv, a, [b]);
      const ca = await connect(srv, a);
      const cb = await connect(srv, b);
      const c1 = await connect(srv, c); // c is in no room yet
      const c2 = await connect(srv, c);
      await withClients([ca, cb, c1, c2], async () => {
        assert.equal(c1.hello.rooms, 0);
        const r = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id });
        assert.equal(r.status, 200, r.text);
        assert.deepEqual(r.body, { member: { user_id: c.id, role: 'member' } });

        for (const cl of [ca, cb, c1, c2]) {
          const j = await cl.next((m) => m.type === 'member' && m.room === room.id);
          assert.equal(j.seq, 3);
          assert.equal(j.action, 'join');
          assert.equal(j.user, c.id);
          assert.equal(j.role, 'member');
          assert.equal(j.by, a.id);
          assert.equal(j.member_count, 3);
        }
        // the new member's connections start at the join entry: nothing older was pushed
        for (const cl of [c1, c2]) assert.deepEqual(cl.entries(room.id).map((m) => m.seq), [3]);

        // and they receive what follows, live
        const ack = await cb.sendMsg(room.id, 'welcome c');
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        assert.equal(ack.seq, 4);
        for (const cl of [c1, c2, ca]) {
          const m = await cl.next((x) => x.type === 'message' && x.room === room.id);
          assert.equal(m.seq, 4);
          assert.equal(m.body, 'welcome c');
        }
        // and may send into it over the same connection
        const ack2 = await c1.sendMsg(room.id, 'thanks');
        assert.equal(ack2.type, 'ack', JSON.stringify(ack2));
        assert.equal(ack2.seq, 5);
        const m5 = await c2.next((x) => x.type === 'message' && x.seq === 5);
        assert.equal(m5.sender, c.id);

        const h = await api(srv, c).get(`/v1/rooms/${room.id}/messages`);
        assert.equal(h.status, 200, h.text);
        assert.deepEqual(h.body.messages.map((m) => m.seq), [1, 2, 3, 4, 5]);

        // adding an existing member again with the same role changes nothing
        const again = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id });
        assert.equal(again.status, 200, again.text);
        assert.equal((await api(srv, a).get(`/v1/rooms/${room.id}`)).body.room.last_seq, 5);
        // unknown user
        expectError(assert, await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: 'u_987654321' }), 404, 'not_found');
        expectError(assert, await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'king' }), 400, 'invalid_field');
        expectError(assert, await api(srv, a).post(`/v1/rooms/${room.id}/members`, {}), 400, 'invalid_field');
      });
    });

    it('a member cannot add, kick, rename or change roles (403 forbidden)', T, async () => {
      const [a, b, c, d] = await users(4);
      const room = await createRoom(srv, a, [b, c]);
      const xb = api(srv, b);
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: d.id }), 403, 'forbidden');
      expectError(assert, await xb.del(`/v1/rooms/${room.id}/members/${c.id}`), 403, 'forbidden');
      expectError(assert, await xb.del(`/v1/rooms/${room.id}/members/${a.id}`), 403, 'forbidden');
      expectError(assert, await xb.patch(`/v1/rooms/${room.id}`, { name: 'mine now' }), 403, 'forbidden');
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'admin' }), 403, 'forbidden');
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: b.id, role: 'owner' }), 403, 'forbidden');
      // nothing was logged
      const g = await api(srv, a).get(`/v1/rooms/${room.id}`);
      assert.equal(g.body.room.last_seq, 3);
      assert.equal(g.body.room.member_count, 3);
      assert.equal(g.body.room.name, room.name);
    });

    it('an admin adds members, renames and kicks members, but cannot grant admin or kick the owner/admins', T, async () => {
      const [a, b, c, d, e, f] = await users(6);
      const room = await createRoom(srv, a, [b, c, f]);
      // the owner makes b admin: a `role` entry
      const g = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: b.id, role: 'admin' });
      assert.equal(g.status, 200, g.text);
      assert.deepEqual(g.body, { member: { user_id: b.id, role: 'admin' } });
      let h = await fullHistory(srv, a, room.id);
      const roleEv = h[h.length - 1];
      assert.equal(roleEv.type, 'member');
      assert.equal(roleEv.action, 'role');
      assert.equal(roleEv.user, b.id);
      assert.equal(roleEv.role, 'admin');
      assert.equal(roleEv.by, a.id);
      assert.equal(roleEv.member_count, 4);

      const xb = api(srv, b);
      const add = await xb.post(`/v1/rooms/${room.id}/members`, { user_id: d.id });
      assert.equal(add.status, 200, add.text);
      assert.deepEqual(add.body, { member: { user_id: d.id, role: 'member' } });
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: e.id, role: 'admin' }), 403, 'forbidden');
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'admin' }), 403, 'forbidden');
      expectError(assert, await xb.post(`/v1/rooms/${room.id}/members`, { user_id: e.id, role: 'owner' }), 403, 'forbidden');
      const ren = await xb.patch(`/v1/rooms/${room.id}`, { name: 'admin was here' });
      assert.equal(ren.status, 200, ren.text);
      expectError(assert, await xb.del(`/v1/rooms/${room.id}/members/${a.id}`), 403, 'forbidden');
      // a second admin: b cannot kick an equal
      assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: f.id, role: 'admin' })).status, 200);
      expectError(assert, await xb.del(`/v1/rooms/${room.id}/members/${f.id}`), 403, 'forbidden');
      const kick = await xb.del(`/v1/rooms/${room.id}/members/${c.id}`);
      assert.equal(kick.status, 204, kick.text);
      assert.equal(kick.text, '');
      expectError(assert, await xb.del(`/v1/rooms/${room.id}/members/${e.id}`), 404, 'not_found');

      const members = (await api(srv, a).get(`/v1/rooms/${room.id}`)).body.room.members;
      const roles = Object.fromEntries(members.map((m) => [m.user_id, m.role]));
      assert.deepEqual(roles, { [a.id]: 'owner', [b.id]: 'admin', [d.id]: 'member', [f.id]: 'admin' });
      h = await fullHistory(srv, a, room.id);
      const k = h[h.length - 1];
      assert.equal(k.action, 'kick');
      assert.equal(k.user, c.id);
      assert.equal(k.by, b.id);
      assert.equal(k.role, null);
      assert.equal(k.member_count, 4);
    });

    it('the owner transfers ownership: the target becomes owner, the previous owner admin', T, async () => {
      const [a, b, c, d] = await users(4);
      const room = await createRoom(srv, a, [b, c]);
      const cc = await connect(srv, c);
      await withClients([cc], async () => {
        const t = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: b.id, role: 'owner' });
        assert.equal(t.status, 200, t.text);
        assert.deepEqual(t.body, { member: { user_id: b.id, role: 'owner' } });
        const e1 = await cc.next((m) => m.type === 'member' && m.seq === 4);
        const e2 = await cc.next((m) => m.type === 'member' && m.seq === 5);
        assert.deepEqual([e1.action, e1.user, e1.role, e1.by], ['role', b.id, 'owner', a.id]);
        assert.deepEqual([e2.action, e2.user, e2.role], ['role', a.id, 'admin']);
      });
      const g = (await api(srv, c).get(`/v1/rooms/${room.id}`)).body.room;
      const roles = Object.fromEntries(g.members.map((m) => [m.user_id, m.role]));
      assert.deepEqual(roles, { [a.id]: 'admin', [b.id]: 'owner', [c.id]: 'member' });
      assert.equal((await api(srv, a).get('/v1/rooms')).body.rooms.find((x) => x.id === room.id).role, 'admin');
      // a, now admin, can no longer grant admin; b, the owner, can
      expectError(assert, await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'admin' }), 403, 'forbidden');
      const ok = await api(srv, b).post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'admin' });
      assert.equal(ok.status, 200, ok.text);
      // the new owner can demote and kick the old one; the old one could add a plain member
      assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: d.id })).status, 200);
      const dem = await api(srv, b).post(`/v1/rooms/${room.id}/members`, { user_id: a.id, role: 'member' });
      assert.equal(dem.status, 200, dem.text);
      assert.equal(dem.body.member.role, 'member');
      assert.equal((await api(srv, b).del(`/v1/rooms/${room.id}/members/${a.id}`)).status, 204);
      const owners = (await api(srv, b).get(`/v1/rooms/${room.id}`)).body.room.members.filter((m) => m.role === 'owner');
      assert.deepEqual(owners.map(({ user_id, role }) => ({ user_id, role })), [{ user_id: b.id, role: 'owner' }]);
    });

    it('the last owner cannot leave (409 conflict); members leave with 204 and a leave entry', T, async () => {
      const [a, b, c] = await users(3);
      const room = await createRoom(srv, a, [b, c]);
      expectError(assert, await api(srv, a).del(`/v1/rooms/${room.id}/members/${a.id}`), 409, 'conflict');
      const l = await api(srv, b).del(`/v1/rooms/${room.id}/members/${b.id}`);
      assert.equal(l.status, 204, l.text);
      const h = await fullHistory(srv, a, room.id);
      const e = h[h.length - 1];
      assert.deepEqual([e.type, e.seq, e.action, e.user, e.role, e.by, e.member_count], ['member', 4, 'leave', b.id, null, b.id, 2]);
      expectError(assert, await api(srv, b).get(`/v1/rooms/${room.id}/messages`), 403, 'not_member');
      assert.ok(!(await api(srv, b).get('/v1/rooms')).body.rooms.some((x) => x.id === room.id));
      // after handing ownership over, the former owner may leave
      assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id, role: 'owner' })).status, 200);
      assert.equal((await api(srv, a).del(`/v1/rooms/${room.id}/members/${a.id}`)).status, 204);
      const g = (await api(srv, c).get(`/v1/rooms/${room.id}`)).body.room;
      assert.deepEqual(g.members.map(({ user_id, role }) => ({ user_id, role })), [{ user_id: c.id, role: 'owner' }]);
      assert.equal(g.member_count, 1);
    });

    it('kick: the kicked connections get the kick entry and then nothing more from the room; the kicked user is refused everywhere', T, async () => {
      const [a, b, c] = await users(3);
      const room = await createRoom(srv, a, [b, c]);
      const other = await createRoom(srv, a, [b]); // b stays in this one
      const ca = await connect(srv, a);
      const cb1 = await connect(srv, b);
      const cb2 = await connect(srv, b);
      const cc = await connect(srv, c);
      await withClients([ca, cb1, cb2, cc], async () => {
        const k = await api(srv, a).del(`/v1/rooms/${room.id}/members/${b.id}`);
        assert.equal(k.status, 204, k.text);
        for (const cl of [cb1, cb2, cc, ca]) {
          const e = await cl.next((m) => m.type === 'member' && m.room === room.id);
          assert.deepEqual([e.seq, e.action, e.user, e.by, e.role, e.member_count], [4, 'kick', b.id, a.id, null, 2]);
        }
        const mark1 = cb1.messages.length;
        const mark2 = cb2.messages.length;
        // traffic in the room after the kick: c sees it, b must not
        const ack = await ca.sendMsg(room.id, 'after the kick');
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        await api(srv, a).patch(`/v1/rooms/${room.id}`, { name: 'secret plans' });
        await cc.next((m) => m.type === 'message' && m.seq === ack.seq);
        await cc.next((m) => m.type === 'room' && m.room === room.id);
        const fromRoom = (m) => m.room === room.id;
        await expectNothing(cb1, fromRoom, 500, 'event of the room b was kicked from', mark1);
        await expectNothing(cb2, fromRoom, 0, 'event of the room b was kicked from', mark2);

        // b is refused: history, REST send, WS send/typing/read, sync
        expectError(assert, await api(srv, b).get(`/v1/rooms/${room.id}/messages`), 403, 'not_member');
        expectError(assert, await api(srv, b).get(`/v1/rooms/${room.id}`), 403, 'not_member');
        expectError(assert, await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: 'x', client_msg_id: nextId() }), 403, 'not_member');
        expectWsError(await cb1.sendMsg(room.id, 'let me in'), 'not_member');
        expectWsError(await cb1.req({ type: 'typing', room: room.id }), 'not_member');
        expectWsError(await cb2.req({ type: 'read', room: room.id, seq: 1 }), 'not_member');
        const s = await cb1.req({ type: 'sync', rooms: { [room.id]: 0 } });
        assert.equal(s.type, 'synced');
        assert.deepEqual(s.rooms[room.id], { error: 'not_member' });
        assert.ok(!(await api(srv, b).get('/v1/rooms')).body.rooms.some((x) => x.id === room.id));

        // b's other room still works on the same connections
        const ack2 = await ca.sendMsg(other.id, 'still here?');
        for (const cl of [cb1, cb2]) {
          const m = await cl.next((x) => x.type === 'message' && x.room === other.id);
          assert.equal(m.seq, ack2.seq);
        }
        await expectNothing(cb1, fromRoom, 0, 'event of the room b was kicked from', mark1);
      });
    });

    it('non-members are refused: history, send, typing, read, get, rename, add (not_member)', T, async () => {
      const [a, b, d] = await users(3);
      const room = await createRoom(srv, a, [b]);
      const x = api(srv, d);
      expectError(assert, await x.get(`/v1/rooms/${room.id}/messages`), 403, 'not_member');
      expectError(assert, await x.get(`/v1/rooms/${room.id}`), 403, 'not_member');
      expectError(assert, await x.post(`/v1/rooms/${room.id}/messages`, { body: 'hi', client_msg_id: nextId() }), 403, 'not_member');
      expectError(assert, await x.patch(`/v1/rooms/${room.id}`, { name: 'mine' }), 403, 'not_member');
      expectError(assert, await x.post(`/v1/rooms/${room.id}/members`, { user_id: d.id }), 403, 'not_member');
      const cd = await connect(srv, d);
      const cb = await connect(srv, b);
      await withClients([cd, cb], async () => {
        expectWsError(await cd.req({ type: 'send', id: 'n1', room: room.id, body: 'hi', client_msg_id: 'x1' }), 'not_member', 'n1');
        expectWsError(await cd.req({ type: 'typing', id: 'n2', room: room.id }), 'not_member', 'n2');
        expectWsError(await cd.req({ type: 'read', id: 'n3', room: room.id, seq: 1 }), 'not_member', 'n3');
        expectWsError(await cd.req({ type: 'send', id: 'n4', room: UNKNOWN_ROOM, body: 'hi', client_msg_id: 'x2' }), 'not_member', 'n4');
        const s = await cd.req({ type: 'sync', rooms: { [room.id]: 0 } });
        assert.deepEqual(s.rooms, { [room.id]: { error: 'not_member' } });
        // nothing of it reached the members
        await expectNothing(cb, (m) => m.room === room.id && m.type !== 'member', 300, 'event from a non-member');
      });
      assert.equal((await api(srv, a).get(`/v1/rooms/${room.id}`)).body.room.last_seq, 2);
    });
  });

  describe('direct chats', () => {
    it('POST /v1/dms: 201 on creation, then 200 with the same room from either side; two members, kind direct', T, async () => {
      const [a, b] = await users(2);
      const r1 = await api(srv, a).post('/v1/dms', { user_id: b.id });
      assert.equal(r1.status, 201, r1.text);
      const room = r1.body.room;
      assert.equal(room.kind, 'direct');
      assert.equal(room.member_count, 2);
      assert.equal(room.last_seq, 2);
      const r2 = await api(srv, a).post('/v1/dms', { user_id: b.id });
      assert.equal(r2.status, 200, r2.text);
      assert.equal(r2.body.room.id, room.id);
      const r3 = await api(srv, b).post('/v1/dms', { user_id: a.id });
      assert.equal(r3.status, 200, r3.text);
      assert.equal(r3.body.room.id, room.id);

      const g = (await api(srv, b).get(`/v1/rooms/${room.id}`)).body.room;
      assert.equal(g.kind, 'direct');
      assert.deepEqual(g.members.map((m) => m.user_id).sort(), [a.id, b.id].sort());
      const h = await fullHistory(srv, a, room.id);
      assert.deepEqual(h.map((m) => [m.type, m.action]), [['member', 'join'], ['member', 'join']]);
    });

    it('direct rooms are fixed: no adding, kicking, leaving or renaming (403 forbidden)', T, async () => {
      const [a, b, c] = await users(3);
      const room = (await api(srv, a).post('/v1/dms', { user_id: b.id })).body.room;
      expectError(assert, await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id }), 403, 'forbidden');
      expectError(assert, await api(srv, a).del(`/v1/rooms/${room.id}/members/${b.id}`), 403, 'forbidden');
      expectError(assert, await api(srv, b).del(`/v1/rooms/${room.id}/members/${b.id}`), 403, 'forbidden');
      expectError(assert, await api(srv, a).patch(`/v1/rooms/${room.id}`, { name: 'ours' }), 403, 'forbidden');
      expectError(assert, await api(srv, c).get(`/v1/rooms/${room.id}/messages`), 403, 'not_member');
      assert.equal((await api(srv, a).get(`/v1/rooms/${room.id}`)).body.room.member_count, 2);
    });

    it('the listing shows the peer; messages reach the other side; bad targets are refused', T, async () => {
      const [a, b] = await users(2);
      const cb = await connect(srv, b);
      await withClients([cb], async () => {
        const room = (await api(srv, a).post('/v1/dms', { user_id: b.id })).body.room;
        // b's open connection joined the new room
        const j = await cb.next((m) => m.type === 'member' && m.room === room.id && m.user === b.id);
        assert.equal(j.action, 'join');
        const la = (await api(srv, a).get('/v1/rooms')).body.rooms.find((x) => x.id === room.id);
        const lb = (await api(srv, b).get('/v1/rooms')).body.rooms.find((x) => x.id === room.id);
        assert.equal(la.peer, b.id);
        assert.equal(lb.peer, a.id);
        assert.equal(la.kind, 'direct');
        const s = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'psst', client_msg_id: nextId() });
        assert.equal(s.status, 201, s.text);
        const m = await cb.next((x) => x.type === 'message' && x.room === room.id);
        assert.equal(m.body, 'psst');
        assert.equal(m.sender, a.id);
      });
      expectError(assert, await api(srv, a).post('/v1/dms', { user_id: a.id }), 400, 'invalid_field');
      expectError(assert, await api(srv, a).post('/v1/dms', { user_id: 'u_987654321' }), 404, 'not_found');
      expectError(assert, await api(srv, a).post('/v1/dms', {}), 400, 'invalid_field');
    });
  });
});
