'use strict';
// Login/register rate limits (--auth-rate): per client IP (burst 4x) and failed logins per
// (username, IP) (burst 1x); abuse_limits.test.js has the lock-out test across IPs.

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { post, uniqueName, expectError, metrics, metricSum } = require('./lib/http');

const T = { timeout: 20000 };

function login(srv, username) {
  return post(srv, '/v1/auth/login', { username, password: 'wrong password' });
}

function assertRateLimited(r) {
  expectError(assert, r, 429, 'rate_limited');
  const ra = r.headers['retry-after'];
  assert.ok(ra !== undefined, 'Retry-After header missing');
  assert.match(ra, /^\d+$/, `Retry-After must be whole seconds, got ${ra}`);
  assert.ok(Number(ra) >= 1, `Retry-After ${ra} < 1`);
  assert.match(r.body.error.message, /\d+ ?ms/, 'message says milliseconds');
}

describe('auth rate limit', () => {
  let srv;
  afterEach(async () => {
    if (srv) await srv.stop();
    srv = null;
  });

  it('per IP: hammering login with distinct usernames ends in 429 rate_limited with Retry-After', T, async () => {
    srv = await startServer({ args: { 'auth-rate': 1 } }); // burst: 4 per IP, 1 failure per (username, IP)
    const before = metricSum((await metrics(srv)).values, 'chatd_rate_limited_total');
    assert.equal(before, 0);
    let limited = null;
    let attempts = 0;
    for (; attempts < 30 && !limited; attempts++) {
      const r = await login(srv, uniqueName('rl'));
      if (r.status === 429) limited = r;
      else expectError(assert, r, 401, 'invalid_credentials');
    }
    assert.ok(limited, 'no 429 after 30 logins at --auth-rate 1');
    assert.ok(attempts >= 5, `limited after ${attempts} attempts, before the burst of 4 was used`);
    assertRateLimited(limited);

    // Registration from the same IP shares the bucket.
    const reg = await post(srv, '/v1/auth/register', { username: uniqueName('rl'), password: 'password123' });
    assertRateLimited(reg);

    const m = (await metrics(srv)).values;
    assert.ok(metricSum(m, 'chatd_rate_limited_total') >= 2);

    // After the advertised wait, the IP may try again.
    await sleep(Number(limited.headers['retry-after']) * 1000 + 100);
    const again = await login(srv, uniqueName('rl'));
    expectError(assert, again, 401, 'invalid_credentials');
  });

  it('per (username, IP): failures for one account are limited before the IP is', T, async () => {
    srv = await startServer({ args: { 'auth-rate': 1 } });
    const victim = uniqueName('victim');
    let limited = null;
    for (let i = 0; i < 10 && !limited; i++) {
      const r = await login(srv, victim);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'no 429 for repeated logins to one username');
    assertRateLimited(limited);
    // The IP bucket (burst 4) still has room: another username from the same IP is not limited.
    const other = await login(srv, uniqueName('other'));
    expectError(assert, other, 401, 'invalid_credentials');
  });

  it('with the default rate a handful of logins is not limited', T, async () => {
    srv = await startServer({ args: { 'auth-rate': null } }); // default: 5/s, burst 20 per IP
    for (let i = 0; i < 4; i++) {
      const r = await login(srv, uniqueName('ok'));
      expectError(assert, r, 401, 'invalid_credentials');
    }
  });
});
