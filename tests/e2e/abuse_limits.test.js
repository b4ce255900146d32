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
