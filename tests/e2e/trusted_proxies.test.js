'use strict';
// --trusted-proxies: X-Forwarded-For / Forwarded name the client only when the TCP peer is a
// trusted proxy; the rate limits per client IP and the access log then use that address, and a
// client talking to chatd directly cannot pose as another.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { request } = require('./lib/http');

const login = (srv, headers) =>
  request(srv, 'POST', '/v1/auth/login', { json: { username: 'nobody', password: 'wrong password' }, headers });

/** Logins until one is refused (429); returns how many were answered before. */
async function untilLimited(srv, headers, max = 40) {
  for (let i = 0; i < max; i++) {
    const r = await login(srv, headers);
    if (r.status === 429) return i;
  }
  return max;
}

test('behind a trusted proxy the forwarded client is rate-limited and logged', async () => {
  const srv = await startServer({ args: { 'trusted-proxies': '127.0.0.1/32', 'auth-rate': 1 } });
  try {
    const n = await untilLimited(srv, { 'X-Forwarded-For': '203.0.113.1' });
    assert.ok(n < 40, 'the first client is limited');
    // Another client behind the same proxy has its own budget.
    const other = await login(srv, { 'X-Forwarded-For': '203.0.113.2' });
    assert.notEqual(other.status, 429);
    // Forwarded (RFC 7239) works the same; the right-most untrusted hop counts.
    const fwd = await login(srv, { Forwarded: 'for="[2001:db8::7]:4711"' });
    assert.notEqual(fwd.status, 429);
    const chained = await login(srv, { 'X-Forwarded-For': '198.51.100.9, 203.0.113.1' });
    assert.equal(chained.status, 429, 'a spoofed left-most entry does not escape the limit');
    await sleep(150);
    const lines = srv.logs().filter((l) => l.msg === 'http' && l.path === '/v1/auth/login');
    const byRid = (r) => lines.find((l) => l.request_id === r.headers['x-request-id']);
    assert.equal(byRid(other).client, '203.0.113.2');
    assert.equal(byRid(fwd).client, '2001:db8::7');
    assert.equal(byRid(chained).client, '203.0.113.1');
  } finally {
    await srv.stop();
  }
});

test('without trusted proxies the headers are ignored: the peer is the client', async () => {
  const srv = await startServer({ args: { 'auth-rate': 1 } });
  try {
    const n = await untilLimited(srv, { 'X-Forwarded-For': '203.0.113.1' });
    assert.ok(n < 40);
    const other = await login(srv, { 'X-Forwarded-For': '203.0.113.2' });
    assert.equal(other.status, 429, 'a forged header does not buy a new budget');
    await sleep(150);
    const line = srv.logs().find((l) => l.msg === 'http' && l.request_id === other.headers['x-request-id']);
    assert.equal(line.client, '127.0.0.1');
  } finally {
    await srv.stop();
  }
  // A proxy list that trusts someone else: the same.
  const srv2 = await startServer({ args: { 'trusted-proxies': '10.0.0.0/8', 'auth-rate': 1 } });
  try {
    await untilLimited(srv2, { 'X-Forwarded-For': '203.0.113.1' });
    assert.equal((await login(srv2, { 'X-Forwarded-For': '203.0.113.3' })).status, 429);
  } finally {
    await srv2.stop();
  }
  await assert.rejects(startServer({ args: { 'trusted-proxies': '10.0.0.0/33' }, readyTimeoutMs: 3000 }));
});
