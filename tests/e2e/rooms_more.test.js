'use strict';
// Room features (issue 14, part 5): archive and delete (owner), public rooms and joining them,
// invite links (expiry, max uses), the paged member list, leaving a direct chat.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { sleep } = require('./lib/server');
const { startChat, newUser, api, createRoom, connect, expectError, expectWsError, withClients } = require('./lib/chat');

test('archive: owner only, read-only (sends refused over REST and WebSocket), unarchive', async () => {
  const srv = await startChat();
  try {
    const o = await newUser(srv, 'ao');
    const m = await newUser(srv, 'am');
    const x = await newUser(srv, 'ax');
    const room = await createRoom(srv, o, [m]);
    const cm = await connect(srv, m);
    await withClients([cm], async () => {
      assert.equal((await cm.sendMsg(room.id, 'before')).type, 'ack');
      expectError(assert, await api(srv, m).patch(`/v1/rooms/${room.id}`, { archived: true }), 403, 'forbidden');
      const r = await api(srv, o).patch(`/v1/rooms/${room.id}`, { archived: true });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.room.archived, true);
      await cm.waitFor((c) => c.entries(room.id).some((e) => e.type === 'room' && e.archived === true), 5000, 'room entry');
      expectWsError(await cm.sendMsg(room.id, 'after'), 'room_archived');
      expectError(assert, await api(srv, o).post(`/v1/rooms/${room.id}/messages`, { body: 'x', client_msg_id: 'a1' }), 409, 'room_archived');
      expectError(assert, await api(srv, o).post(`/v1/rooms/${room.id}/members`, { user_id: x.id }), 409, 'room_archived');
      // still readable
      const h = await api(srv, m).get(`/v1/rooms/${room.id}/messages`);
      assert.ok(h.body.messages.some((e) => e.body === 'before'));
      assert.equal((await api(srv, o).patch(`/v1/rooms/${room.id}`, { archived: false })).status, 200);
      assert.equal((await cm.sendMsg(room.id, 'again')).type, 'ack');
    });
    expectError(assert, await api(srv, o).patch(`/v1/rooms/${room.id}`, { archived: 'yes' }), 400, 'invalid_field');
  } finally {
    await srv.stop();
  }
});

test('delete: owner only; a room entry first, then the room is gone for every member', async () => {
  const srv = await startChat();
  try {
    const o = await newUser(srv, 'do');
    const m = await newUser(srv, 'dm');
    const room = await createRoom(srv, o, [m]);
    const cm = await connect(srv, m);
    await withClients([cm], async () => {
      expectError(assert, await api(srv, m).del(`/v1/rooms/${room.id}`), 403, 'forbidden');
      assert.equal((await api(srv, o).del(`/v1/rooms/${room.id}`)).status, 204);
      await cm.waitFor((c) => c.entries(room.id).some((e) => e.type === 'room' && e.deleted === true), 5000, 'deleted entry');
      expectWsError(await cm.sendMsg(room.id, 'into the void'), 'not_found');
    });
    for (const u of [o, m]) {
      expectError(assert, await api(srv, u).get(`/v1/rooms/${room.id}`), 404, 'not_found');
      expectError(assert, await api(srv, u).get(`/v1/rooms/${room.id}/messages`), 404, 'not_found');
      assert.ok(!(await api(srv, u).get('/v1/rooms')).body.rooms.some((r) => r.id === room.id));
    }
    expectError(assert, await api(srv, o).del(`/v1/rooms/${room.id}`), 404, 'not_found');
    const dm = (await api(srv, o).post('/v1/dms', { user_id: m.id })).body.room;
    expectError(assert, await api(srv, o).del(`/v1/rooms/${dm.id}`), 403, 'forbidden');
  } finally {
    await srv.stop();
  }
});

test('public rooms: listed (paged), joined by anyone with a member entry; private ones are not', async () => {
  const srv = await startChat();
  try {
    const o = await newUser(srv, 'po');
    const j = await newUser(srv, 'pj');
    const created = await api(srv, o).post('/v1/rooms', { name: 'open 1', public: true });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.room.public, true);
    const pub1 = created.body.room;
    const pub2 = await createRoom(srv, o, []);
    assert.equal((await api(srv, o).patch(`/v1/rooms/${pub2.id}`, { public: true })).body.room.public, true);
    const priv = await createRoom(srv, o, []);
    const p1 = await api(srv, j).get('/v1/rooms/public?limit=1');
    assert.equal(p1.status, 200, p1.text);
    assert.equal(p1.body.rooms.length, 1);
    assert.equal(p1.body.has_more, true);
    const p2 = await api(srv, j).get(`/v1/rooms/public?limit=1&after=${p1.body.next}`);
    const listed = [...p1.body.rooms, ...p2.body.rooms].map((r) => r.id);
    assert.deepEqual(listed, [pub1.id, pub2.id]);
    assert.equal(p2.body.has_more, false);
    const cj = await connect(srv, j);
    await withClients([cj], async () => {
      const r = await api(srv, j).post(`/v1/rooms/${pub1.id}/join`);
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.room.member_count, 2);
      // the new connection is subscribed from its join entry on
      await cj.waitFor((c) => c.entries(pub1.id).some((e) => e.type === 'member' && e.action === 'join' && e.user === j.id), 5000, 'join entry');
      assert.equal((await cj.sendMsg(pub1.id, 'hello all')).type, 'ack');
    });
    assert.equal((await api(srv, j).post(`/v1/rooms/${pub1.id}/join`)).status, 200, 'joining again changes nothing');
    assert.equal((await api(srv, o).get(`/v1/rooms/${pub1.id}`)).body.room.member_count, 2);
    expectError(assert, await api(srv, j).post(`/v1/rooms/${priv.id}/join`), 404, 'not_found');
    expectError(assert, await api(srv, j).patch(`/v1/rooms/${pub1.id}`, { public: false }), 403, 'forbidden');
    assert.equal((await api(srv, o).patch(`/v1/rooms/${pub2.id}`, { public: false })).status, 200);
    assert.deepEqual((await api(srv, j).get('/v1/rooms/public')).body.rooms.map((r) => r.id), [pub1.id]);
    expectError(assert, await api(srv, j).get('/v1/rooms/public?limit=0'), 400, 'invalid_field');
  } finally {
    await srv.stop();
  }
});

test('public rooms: joining respects --max-room-members', async () => {
  const srv = await startChat({ 'max-room-members': 2 });
  try {
    const o = await newUser(srv, 'qo');
    const room = (await api(srv, o).post('/v1/rooms', { name: 'q', public: true })).body.room;
    assert.equal((await api(srv, (await newUser(srv, 'q1'))).post(`/v1/rooms/${room.id}/join`)).status, 200);
    expectError(assert, await api(srv, (await newUser(srv, 'q2'))).post(`/v1/rooms/${room.id}/join`), 409, 'quota_exceeded');
  } finally {
    await srv.stop();
  }
});

test('invites: admins create, anyone with the token joins; max uses and expiry', async () => {
  const srv = await startChat();
  try {
    const o = await newUser(srv, 'io');
    const m = await newUser(srv, 'im');
    const room = await createRoom(srv, o, [m]);
    expectError(assert, await api(srv, m).post(`/v1/rooms/${room.id}/invites`, {}), 403, 'forbidden');
    const outsider = await newUser(srv, 'ix');
    expectError(assert, await api(srv, outsider).post(`/v1/rooms/${room.id}/invites`, {}), 403, 'not_member');
    expectError(assert, await api(srv, o).post(`/v1/rooms/${room.id}/invites`, { max_uses: 0 }), 400, 'invalid_field');
    expectError(assert, await api(srv, o).post(`/v1/rooms/${room.id}/invites`, { expires_in: 99999999 }), 400, 'invalid_field');
    const inv = await api(srv, o).post(`/v1/rooms/${room.id}/invites`, { max_uses: 2 });
    assert.equal(inv.status, 201, inv.text);
    const { token, expires_at, max_uses } = inv.body.invite;
    assert.equal(typeof token, 'string');
    assert.equal(max_uses, 2);
    assert.ok(expires_at > Date.now());
    const u1 = await newUser(srv, 'i1');
    const u2 = await newUser(srv, 'i2');
    const u3 = await newUser(srv, 'i3');
    const a1 = await api(srv, u1).post(`/v1/invites/${token}/accept`);
    assert.equal(a1.status, 200, a1.text);
    assert.equal(a1.body.room.id, room.id);
    assert.equal((await api(srv, u1).post(`/v1/invites/${token}/accept`)).status, 200, 'a member again: not spent');
    assert.equal((await api(srv, u2).post(`/v1/invites/${token}/accept`)).status, 200);
    expectError(assert, await api(srv, u3).post(`/v1/invites/${token}/accept`), 410, 'invite_expired');
    expectError(assert, await api(srv, u3).post(`/v1/invites/${'x'.repeat(token.length)}/accept`), 404, 'not_found');
    expectError(assert, await api(srv, u3).post('/v1/invites/short/accept'), 404, 'not_found');
    const h = await api(srv, o).get(`/v1/rooms/${room.id}/messages`);
    assert.equal(h.body.messages.filter((e) => e.type === 'member' && e.action === 'join').length, 4);
    // expiry
    const short = await api(srv, o).post(`/v1/rooms/${room.id}/invites`, { expires_in: 1 });
    assert.equal(short.status, 201, short.text);
    await sleep(1300);
    expectError(assert, await api(srv, u3).post(`/v1/invites/${short.body.invite.token}/accept`), 410, 'invite_expired');
  } finally {
    await srv.stop();
  }
});

test('member list: paged with after/limit, members only', async () => {
  const srv = await startChat();
  try {
    const o = await newUser(srv, 'mo');
    const others = [];
    for (let i = 0; i < 4; i++) others.push(await newUser(srv, 'mm'));
    const room = await createRoom(srv, o, others);
    const seen = [];
    let after = null;
    for (let guard = 0; guard < 10; guard++) {
      const r = await api(srv, o).get(`/v1/rooms/${room.id}/members?limit=2${after ? `&after=${after}` : ''}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.members.length <= 2);
      for (const m of r.body.members) {
        assert.equal(m.user.id, m.user_id);
        assert.ok(['owner', 'member'].includes(m.role));
      }
      seen.push(...r.body.members.map((m) => m.user_id));
      if (!r.body.has_more) break;
      after = r.body.next;
    }
    assert.equal(seen.length, 5);
    assert.deepEqual(new Set(seen), new Set([o.id, ...others.map((u) => u.id)]));
    const sorted = [...seen].sort((x, y) => (BigInt(x.slice(2)) < BigInt(y.slice(2)) ? -1 : 1));
    assert.deepEqual(seen, sorted, 'user id order');
    const outsider = await newUser(srv, 'mx');
    expectError(assert, await api(srv, outsider).get(`/v1/rooms/${room.id}/members`), 403, 'not_member');
    expectError(assert, await api(srv, o).get(`/v1/rooms/${room.id}/members?limit=1001`), 400, 'invalid_field');
    expectError(assert, await api(srv, o).get(`/v1/rooms/${room.id}/members?after=r_1`), 400, 'invalid_field');
  } finally {
    await srv.stop();
  }
});

test('leaving a DM hides it from my list until a new message arrives; the other side keeps it', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'la');
    const b = await newUser(srv, 'lb');
    const dm = (await api(srv, a).post('/v1/dms', { user_id: b.id })).body.room;
    assert.equal((await api(srv, b).post(`/v1/rooms/${dm.id}/messages`, { body: 'one', client_msg_id: 'l1' })).status, 201);
    const listed = async (u) => (await api(srv, u).get('/v1/rooms')).body.rooms.some((r) => r.id === dm.id);
    assert.equal((await api(srv, a).post(`/v1/rooms/${dm.id}/leave`)).status, 204);
    assert.equal(await listed(a), false);
    assert.equal(await listed(b), true);
    // still a member: history stays readable
    assert.equal((await api(srv, a).get(`/v1/rooms/${dm.id}/messages`)).status, 200);
    assert.equal((await api(srv, b).post(`/v1/rooms/${dm.id}/messages`, { body: 'two', client_msg_id: 'l2' })).status, 201);
    assert.equal(await listed(a), true);
    // leave again, then opening it again shows it
    assert.equal((await api(srv, a).post(`/v1/rooms/${dm.id}/leave`)).status, 204);
    assert.equal(await listed(a), false);
    assert.equal((await api(srv, a).post('/v1/dms', { user_id: b.id })).status, 200);
    assert.equal(await listed(a), true);
    // leave on a group room is a plain leave
    const o = await newUser(srv, 'lo');
    const room = await createRoom(srv, o, [a]);
    assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/leave`)).status, 204);
    expectError(assert, await api(srv, a).get(`/v1/rooms/${room.id}`), 403, 'not_member');
    expectError(assert, await api(srv, o).post(`/v1/rooms/${room.id}/leave`), 409, 'conflict');
  } finally {
    await srv.stop();
  }
});
