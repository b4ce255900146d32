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
