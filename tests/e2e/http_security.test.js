'use strict';
// Response headers every client gets, the one Authorization parser shared by REST and the
// WebSocket upgrade, and query parameters that are refused (400) instead of ignored.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { request, registerUser, expectError, rawConnect } = require('./lib/http');
const { wsConnect } = require('./lib/ws');
const { api, createRoom } = require('./lib/chat');

const T = { timeout: 60000 };

describe('HTTP hardening', () => {
  let srv;
  let user;
  before(async () => {
    srv = await startServer({ args: { 'auth-rate': 1000 } });
    user = await registerUser(srv);
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('every response says nosniff; auth responses are not cached', T, async () => {
    const rs = [
      await request(srv, 'GET', '/healthz'),
      await request(srv, 'GET', '/nope'),
      await request(srv, 'GET', '/metrics'),
      await request(srv, 'GET', '/v1/me'),
      await request(srv, 'POST', '/v1/auth/login', { json: { username: user.username, password: user.password } }),
      await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: 'nope' } }),
    ];
    for (const r of rs) {
      assert.equal(r.headers['x-content-type-options'], 'nosniff', `${r.status} ${r.text}`);
      assert.equal(r.headers['cache-control'], 'no-store', `${r.status} ${r.text}`);
    }
    assert.equal(rs[4].status, 200);
    // A response written by the network layer itself (a malformed request) too.
    const c = await rawConnect(srv.port);
    c.write('GARBAGE\r\n\r\n');
    await c.waitClose();
    const text = c.data.toString('latin1');
    assert.match(text, /^HTTP\/1\.1 400/);
    assert.match(text, /\r\nX-Content-Type-Options: nosniff\r\n/i);
  });

  const accepted = (t) => [`Bearer ${t}`, `Bearer   ${t}`, `bearer\t${t}`, `BEARER \t ${t}  `];
  const refused = (t) => [`Bearer${t}`, 'Bearer', 'Bearer   ', `Basic ${t}`, `Bearer ${t.slice(0, 20)} ${t.slice(20)}`];

  it('Authorization: Bearer with extra spaces or tabs: the same answer on REST and the upgrade', T, async () => {
    const t = user.access_token;
    for (const h of accepted(t)) {
      const r = await request(srv, 'GET', '/v1/me', { headers: { Authorization: h } });
      assert.equal(r.status, 200, `REST ${JSON.stringify(h)}: ${r.status} ${r.text}`);
      const ws = await wsConnect(srv.wsUrl, { headers: { Authorization: h } });
      ws.ws.close();
    }
    for (const h of refused(t)) {
      const r = await request(srv, 'GET', '/v1/me', { headers: { Authorization: h } });
      expectError(assert, r, 401, 'unauthorized');
      await assert.rejects(wsConnect(srv.wsUrl, { headers: { Authorization: h } }), (e) => {
        assert.equal(e.statusCode, 401, `upgrade ${JSON.stringify(h)}`);
        return true;
      });
    }
  });

  it('limit, before, after: over-long, repeated, signed or non-numeric values are 400', T, async () => {
    const room = await createRoom(srv, { id: user.user.id, token: user.access_token });
    const get = (q) => api(srv, { token: user.access_token }).get(`/v1/rooms/${room.id}/messages${q}`);
    for (const q of ['?limit=5', '?limit=%35', '?after=0&limit=200', '?before=999999999999999999']) {
      const r = await get(q);
      assert.equal(r.status, 200, `${q}: ${r.status} ${r.text}`);
    }
    const bad = [
      `?limit=${'0'.repeat(40)}5`, // used to be ignored (did not fit the buffer)
      '?limit=99999999999999999999', // used to overflow strtoll to INT64_MAX
      '?before=1234567890123456789',
      '?limit=5&limit=500', // the second used to be ignored
      '?after=1&after=2',
      '?limit=+5',
      '?limit=%205',
      '?limit=',
      '?limit',
      '?before=1e3',
      '?after=-1',
    ];
    for (const q of bad) expectError(assert, await get(q), 400, 'invalid_field');
  });
});
