'use strict';
// Abuse limits of issue 11 (docs/PROTOCOL.md, "Limits"): attackers cannot lock an account out of
// login; the per-user connection cap holds with --rate-limits off; room, member and direct-chat
// quotas and rates; GET /v1/rooms pages; the `read` op's unread count is bounded and rate limited.

const { describe, it, after, before } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { request, post, uniqueName, registerUser, expectError } = require('./lib/http');
const { wsConnect } = require('./lib/ws');
const { startChat, newUser, api, createRoom, connect, withClients } = require('./lib/chat');

const T = { timeout: 60000 };

describe('login lock-out', () => {
  let srv;
  after(async () => {
    if (srv) await srv.stop();
  });

  it('attackers on three IPs hammering wrong passwords never make the victim\'s correct logins from a fourth IP fail', T, async () => {
    // --auth-rate 2: per IP 2/s burst 8 (the victim's 7 logins fit); failures per (username, IP)
    // burst 2; per username burst 8.
    srv = await startServer({ args: { 'auth-rate': 2 } });
    const victim = await registerUser(srv, uniqueName('vic'));
    const attackers = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];
    const victimIp = '127.0.0.5';
    const login = (password, localAddress) =>
      post(srv, '/v1/auth/login', { username: victim.username, password }, { localAddress });
    const seen = new Map(attackers.map((ip) => [ip, { 401: 0, 429: 0 }]));
    for (let round = 0; round < 6; round++) {
      // Each attacker: three wrong passwords in parallel, then the victim logs in once.
      await Promise.all(
        attackers.flatMap((ip) =>
          [0, 1, 2].map(async () => {
            const r = await login('wrong password', ip);
            assert.ok(r.status === 401 || r.status === 429, `attacker got ${r.status} ${r.text}`);
            seen.get(ip)[r.status]++;
          }),
        ),
      );
      const r = await login(victim.password, victimIp);
      assert.equal(r.status, 200, `victim's correct login in round ${round}: ${r.status} ${r.text}`);
      assert.ok(r.body.access_token);
    }
    for (const [ip, n] of seen) {
      assert.ok(n[429] > 0, `attacker ${ip} was never limited: ${JSON.stringify(n)}`);
      assert.ok(n[401] < 18, `attacker ${ip}: every guess was checked`);
    }
    // A client that failed for the username while the username's budget is spent is refused
    // even with the right password; the victim's own IP, which has not failed, is not.
    const r = await login(victim.password, attackers[0]);
    expectError(assert, r, 429, 'rate_limited');
    assert.equal((await login(victim.password, victimIp)).status, 200);
  });
});

describe('connections per user with --rate-limits off', () => {
  let srv;
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--rate-limits off --max-conns-per-user 2: the third upgrade is still 429', T, async () => {
    srv = await startChat({ 'rate-limits': 'off', 'max-conns-per-user': 2 });
    const a = await newUser(srv, 'cap');
    const c1 = await connect(srv, a);
    const c2 = await connect(srv, a);
    await withClients([c1, c2], async () => {
      const err = await wsConnect(srv.wsUrl, { token: a.token }).then(
        (c) => {
          c.terminate();
          return null;
        },
        (e) => e,
      );
      assert.ok(err, 'a third connection was accepted with rate limits off');
      assert.equal(err.statusCode, 429, String(err));
      assert.equal(err.body && err.body.error && err.body.error.code, 'rate_limited', err.text);
    });
  });
});

describe('read: bounded unread count and a rate limit', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'unread-max': 10, 'read-rate': 1 }); // reads: 1/s, burst 5
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--unread-max 10: unread counts look at 10 entries past the marker and say unread_capped when more follow', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'ur'), newUser(srv, 'ur')]);
    const room = await createRoom(srv, a, [b]); // seq 1: a joins, seq 2: b joins
    const cb = await connect(srv, b);
    const ca = await connect(srv, a);
    await withClients([ca, cb], async () => {
      for (let i = 0; i < 15; i++) assert.equal((await cb.sendMsg(room.id, `m${i}`)).type, 'ack'); // seq 3..17
      const listed = async () => (await api(srv, a).get('/v1/rooms')).body.rooms.find((r) => r.id === room.id);
      let l = await listed();
      assert.equal(l.unread, 8, 'entries 1-10: messages 3-10');
      assert.equal(l.unread_capped, true);
      const r1 = await ca.req({ type: 'read', room: room.id, seq: 0 });
      assert.equal(r1.type, 'read', JSON.stringify(r1));
      assert.equal(r1.unread, 8);
      assert.equal(r1.unread_capped, true);
      const r2 = await ca.req({ type: 'read', room: room.id, seq: 7 });
      assert.deepEqual({ ...r2, id: undefined }, { type: 'read', id: undefined, room: room.id, seq: 7, unread: 10 });
      l = await listed();
      assert.equal(l.unread, 10);
      assert.equal(l.unread_capped, undefined, 'exact: nothing after the 10 looked at');
    });
  });

  it('--read-rate 1: a flood of read requests gets rate_limited with retry_after_ms; no request goes unanswered', T, async () => {
    const a = await newUser(srv, 'rr');
    const room = await createRoom(srv, a);
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const replies = await Promise.all(Array.from({ length: 12 }, () => ca.req({ type: 'read', room: room.id, seq: 1 })));
      const limited = replies.filter((m) => m.type === 'error');
      const ok = replies.filter((m) => m.type === 'read');
      assert.equal(ok.length + limited.length, 12, JSON.stringify(replies));
      assert.ok(ok.length >= 5, 'the burst of 5 passes');
      assert.ok(limited.length > 0, 'no read was limited');
      for (const m of limited) {
        assert.equal(m.code, 'rate_limited', JSON.stringify(m));
        assert.ok(Number.isInteger(m.retry_after_ms) && m.retry_after_ms > 0);
      }
    });
  });
});

function assertRetry(r) {
  expectError(assert, r, 429, 'rate_limited');
  assert.match(String(r.headers['retry-after']), /^\d+$/);
  assert.ok(Number(r.headers['retry-after']) >= 1);
}

describe('room, member and direct-chat rate', () => {
  let srv;
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--room-rate 1 (burst 10): creating rooms, adding members and opening direct chats share one bucket per user; 429 with Retry-After', T, async () => {
    srv = await startChat({ 'room-rate': 1 });
    const [a, b, c] = await Promise.all([newUser(srv, 'rr'), newUser(srv, 'rr'), newUser(srv, 'rr')]);
    const room = await createRoom(srv, a); // 1
    assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: b.id })).status, 200); // 2
    assert.equal((await api(srv, a).post('/v1/dms', { user_id: c.id })).status, 201); // 3
    let limited = null;
    let created = 0;
    for (let i = 0; i < 30 && !limited; i++) {
      const r = await api(srv, a).post('/v1/rooms', { name: `r${i}`, members: [b.id, c.id] });
      if (r.status === 429) limited = r;
      else {
        assert.equal(r.status, 201, r.text);
        created++;
      }
    }
    assert.ok(limited, 'no 429 after 30 room creations at --room-rate 1');
    assert.ok(created >= 7 && created < 30, `${created} rooms before the limit`);
    assertRetry(limited);
    assertRetry(await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: c.id }));
    assertRetry(await api(srv, a).post('/v1/dms', { user_id: b.id }));
    // another user is unaffected
    assert.equal((await api(srv, b).post('/v1/rooms', { name: 'b' })).status, 201);
  });
});

describe('room quotas (with --rate-limits off: quotas still apply)', () => {
  let srv;
  before(async () => {
    srv = await startChat({
      'rate-limits': 'off',
      'max-owned-rooms': 3,
      'max-room-members': 4,
      'max-rooms-per-user': 5,
      'max-new-dms': 2,
    });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--max-owned-rooms 3: the fourth room is 409 quota_exceeded; transferring ownership away frees one; a transfer to a user at the quota is refused', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'qo'), newUser(srv, 'qo')]);
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push(await createRoom(srv, a));
    const r = await api(srv, a).post('/v1/rooms', { name: 'four' });
    expectError(assert, r, 409, 'quota_exceeded');
    assert.match(r.body.error.message, /--max-owned-rooms/);
    assert.equal((await api(srv, a).get('/v1/rooms')).body.rooms.length, 3, 'nothing was created');
    // hand one room to b: a may create again
    const t = await api(srv, a).post(`/v1/rooms/${rooms[0].id}/members`, { user_id: b.id, role: 'owner' });
    assert.equal(t.status, 200, t.text);
    await createRoom(srv, a);
    // b owns 1 + 2 of its own = 3: a transfer to b is refused, and changes nothing
    await createRoom(srv, b);
    await createRoom(srv, b);
    const t2 = await api(srv, a).post(`/v1/rooms/${rooms[1].id}/members`, { user_id: b.id, role: 'owner' });
    expectError(assert, t2, 409, 'quota_exceeded');
    const detail = (await api(srv, a).get(`/v1/rooms/${rooms[1].id}`)).body.room;
    assert.equal(detail.role, 'owner');
    assert.equal(detail.member_count, 1);
  });

  it('--max-room-members 4: creating with 4 others or adding a fifth member is 409 quota_exceeded', T, async () => {
    const users = await Promise.all(Array.from({ length: 6 }, () => newUser(srv, 'qm')));
    const [a, ...others] = users;
    const r = await api(srv, a).post('/v1/rooms', { name: 'big', members: others.slice(0, 4).map((u) => u.id) });
    expectError(assert, r, 409, 'quota_exceeded');
    assert.match(r.body.error.message, /--max-room-members/);
    assert.equal((await api(srv, a).get('/v1/rooms')).body.rooms.length, 0, 'nothing was created');
    const room = await createRoom(srv, a, others.slice(0, 3)); // 4 members
    assert.equal(room.member_count, 4);
    const add = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: others[3].id });
    expectError(assert, add, 409, 'quota_exceeded');
    // a member leaves: there is room again
    assert.equal((await api(srv, others[0]).del(`/v1/rooms/${room.id}/members/${others[0].id}`)).status, 204);
    assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: others[3].id })).status, 200);
  });

  it('--max-rooms-per-user 5: nobody can add a user to a sixth group room; the user can leave one and be added again', T, async () => {
    const users = await Promise.all(Array.from({ length: 3 }, () => newUser(srv, 'qu')));
    const [x, y, victim] = users;
    const rooms = [];
    for (let i = 0; i < 3; i++) rooms.push(await createRoom(srv, x, [victim]));
    for (let i = 0; i < 2; i++) rooms.push(await createRoom(srv, y, [victim]));
    const r = await api(srv, y).post('/v1/rooms', { name: 'sixth', members: [victim.id] });
    expectError(assert, r, 409, 'quota_exceeded');
    assert.match(r.body.error.message, /--max-rooms-per-user/);
    const spare = await createRoom(srv, y); // y: 3 owned now
    expectError(assert, await api(srv, y).post(`/v1/rooms/${spare.id}/members`, { user_id: victim.id }), 409, 'quota_exceeded');
    // direct chats do not count
    assert.equal((await api(srv, x).post('/v1/dms', { user_id: victim.id })).status, 201);
    assert.equal((await api(srv, victim).get('/v1/rooms')).body.rooms.length, 6);
    assert.equal((await api(srv, victim).del(`/v1/rooms/${rooms[0].id}/members/${victim.id}`)).status, 204);
    assert.equal((await api(srv, y).post(`/v1/rooms/${spare.id}/members`, { user_id: victim.id })).status, 200);
  });

  it('--max-new-dms 2: a third new direct chat within the hour is 429 with Retry-After; existing ones still open', T, async () => {
    const [a, b, c, d] = await Promise.all(Array.from({ length: 4 }, () => newUser(srv, 'qd')));
    assert.equal((await api(srv, a).post('/v1/dms', { user_id: b.id })).status, 201);
    assert.equal((await api(srv, a).post('/v1/dms', { user_id: c.id })).status, 201);
    const r = await api(srv, a).post('/v1/dms', { user_id: d.id });
    assertRetry(r);
    assert.match(r.body.error.message, /\d+ ?ms/);
    assert.ok(Number(r.headers['retry-after']) > 60, `an hourly quota: Retry-After ${r.headers['retry-after']}`);
    assert.equal((await api(srv, a).post('/v1/dms', { user_id: b.id })).status, 200, 'an existing chat is free');
    // the other side may still open it (d's own quota)
    assert.equal((await api(srv, d).post('/v1/dms', { user_id: a.id })).status, 201);
    assert.equal((await api(srv, a).get('/v1/rooms')).body.rooms.length, 3);
  });
});

describe('GET /v1/rooms pages', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'rate-limits': 'off', 'max-owned-rooms': 0 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('limit/after/next walk every room once in id order; without parameters the first 100 (has_more)', T, async () => {
    const a = await newUser(srv, 'pg');
    const ids = [];
    for (let i = 0; i < 103; i++) ids.push((await createRoom(srv, a)).id);
    const num = (id) => Number(id.slice(2));
    ids.sort((x, y) => num(x) - num(y));

    const first = (await api(srv, a).get('/v1/rooms')).body;
    assert.equal(first.rooms.length, 100, 'default page');
    assert.equal(first.has_more, true);
    assert.equal(first.next, ids[99]);

    const seen = [];
    let after = null;
    for (let guard = 0; guard < 50; guard++) {
      const r = await api(srv, a).get(`/v1/rooms?limit=7${after ? `&after=${after}` : ''}`);
      assert.equal(r.status, 200, r.text);
      seen.push(...r.body.rooms.map((x) => x.id));
      assert.ok(r.body.rooms.length <= 7);
      if (!r.body.has_more) {
        assert.equal(r.body.next, null);
        break;
      }
      assert.equal(r.body.next, r.body.rooms[r.body.rooms.length - 1].id);
      after = r.body.next;
    }
    assert.deepEqual(seen, ids);
    const last = (await api(srv, a).get(`/v1/rooms?limit=500&after=${ids[100]}`)).body;
    assert.deepEqual(last.rooms.map((x) => x.id), ids.slice(101));
    assert.equal(last.has_more, false);

    expectError(assert, await api(srv, a).get('/v1/rooms?limit=0'), 400, 'invalid_field');
    expectError(assert, await api(srv, a).get('/v1/rooms?limit=501'), 400, 'invalid_field');
    expectError(assert, await api(srv, a).get('/v1/rooms?limit=x'), 400, 'invalid_field');
    expectError(assert, await api(srv, a).get('/v1/rooms?after=u_1'), 400, 'invalid_field');
    // over-long or repeated: refused, not read as "no after"
    expectError(assert, await api(srv, a).get(`/v1/rooms?after=r_${'1'.repeat(40)}`), 400, 'invalid_field');
    expectError(assert, await api(srv, a).get(`/v1/rooms?after=${ids[1]}&after=${ids[2]}`), 400, 'invalid_field');
  });
});
