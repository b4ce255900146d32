'use strict';
// WebSocket authentication: the access token in the Authorization header or ?access_token=,
// HTTP 401 before any upgrade for a missing / bad / expired token or an ended session, 426 / 400
// for bad upgrades, and close 4001 for open connections of a session that logs out.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { get, post, registerUser, expectError, rawConnect, parseResponses } = require('./lib/http');
const { wsConnect, wsConnectHello } = require('./lib/ws');
const jwt = require('./lib/jwt');

const T = { timeout: 20000 };
const KEY = jwt.makeKey('wk');

async function expectRefused(url, opts, status, code) {
  await assert.rejects(wsConnect(url, opts), (err) => {
    assert.equal(err.statusCode, status, `expected HTTP ${status}, got ${err.statusCode} ${err.text || err.message}`);
    assert.ok(err.body && err.body.error, `error body expected: ${err.text}`);
    assert.equal(err.body.error.code, code);
    return true;
  });
}

/** Send a raw request and return the parsed response(s) once the server closed or answered. */
async function rawRequest(srv, text) {
  const c = await rawConnect(srv.port);
  c.write(text);
  await c.waitFor((b) => parseResponses(b).length >= 1, 5000);
  c.destroy();
  return parseResponses(c.data)[0];
}

describe('WebSocket authentication', () => {
  let srv;
  let user;
  before(async () => {
    srv = await startServer({ args: { 'jwt-keys': KEY.spec } });
    user = await registerUser(srv);
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('upgrades with Authorization: Bearer; the first message is hello for that user', T, async () => {
    const { client, hello } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    try {
      assert.equal(client.messages[0], hello, 'hello must be the first message');
      assert.equal(hello.type, 'hello');
      assert.equal(hello.user, user.user.id);
      assert.match(hello.server, /^chatd \d+\.\d+\.\d+/);
      assert.equal(hello.limits.max_message, 65536);
      assert.equal(hello.limits.idle_timeout, 60);
    } finally {
      client.terminate();
    }
  });

  it("logout closes the session's WebSockets with 4001 and refuses its token at upgrade; other sessions stay", T, async () => {
    const u = await registerUser(srv);
    const second = await post(srv, '/v1/auth/login', { username: u.username, password: u.password });
    assert.equal(second.status, 200, second.text);
    const a1 = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    const a2 = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    const b = await wsConnectHello(srv.wsUrl, { token: second.body.access_token });
    try {
      const out = await post(srv, '/v1/auth/logout', { refresh_token: u.refresh_token });
      assert.equal(out.status, 204, out.text);
      for (const c of [a1.client, a2.client]) {
        const info = await c.closed(5000);
        assert.equal(info.code, 4001);
        assert.equal(info.reason, 'session ended');
      }
      await expectRefused(srv.wsUrl, { token: u.access_token }, 401, 'unauthorized');
      b.client.send({ type: 'ping', id: 'still' });
      const pong = await b.client.next((m) => m.type === 'pong');
      assert.equal(pong.id, 'still');
      assert.equal(b.client.closeInfo, null);
    } finally {
      for (const c of [a1.client, a2.client, b.client]) c.terminate();
    }
  });

  it('upgrades with ?access_token= (browsers)', T, async () => {
    const url = `${srv.wsUrl}?access_token=${encodeURIComponent(user.access_token)}`;
    const { client, hello } = await wsConnectHello(url);
    try {
      assert.equal(hello.user, user.user.id);
    } finally {
      client.terminate();
    }
  });

  it('two users get their own ids in hello', T, async () => {
    const other = await registerUser(srv);
    const a = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    const b = await wsConnectHello(srv.wsUrl, { token: other.access_token });
    try {
      assert.equal(a.hello.user, user.user.id);
      assert.equal(b.hello.user, other.user.id);
      assert.notEqual(a.hello.user, b.hello.user);
    } finally {
      a.client.terminate();
      b.client.terminate();
    }
  });

  it('a missing token is HTTP 401 unauthorized before any upgrade', T, async () => {
    await expectRefused(srv.wsUrl, {}, 401, 'unauthorized');
  });

  it('a garbage token is 401 unauthorized', T, async () => {
    await expectRefused(srv.wsUrl, { token: 'garbage.garbage.garbage' }, 401, 'unauthorized');
  });

  it('a garbage ?access_token= is 401 unauthorized', T, async () => {
    await expectRefused(`${srv.wsUrl}?access_token=abc`, {}, 401, 'unauthorized');
  });

  it('a token with a flipped signature is 401 unauthorized', T, async () => {
    const t = user.access_token;
    const bad = t.slice(0, -3) + (t.slice(-3, -2) === 'A' ? 'B' : 'A') + t.slice(-2);
    await expectRefused(srv.wsUrl, { token: bad }, 401, 'unauthorized');
  });

  it('an expired token is 401 token_expired', T, async () => {
    const now = Math.floor(Date.now() / 1000);
    const sub = jwt.decode(user.access_token).payload.sub;
    const tok = jwt.forge({ alg: 'HS256', typ: 'JWT', kid: 'wk' }, jwt.claims(sub, { iat: now - 900, exp: now - 120 }), KEY.hex);
    await expectRefused(srv.wsUrl, { token: tok }, 401, 'token_expired');
  });

  it('an alg "none" token is 401 unauthorized', T, async () => {
    const sub = jwt.decode(user.access_token).payload.sub;
    const tok = jwt.forge({ alg: 'none', typ: 'JWT', kid: 'wk' }, jwt.claims(sub), KEY.hex);
    await expectRefused(srv.wsUrl, { token: tok }, 401, 'unauthorized');
  });

  it('a plain GET /v1/ws with a valid token is 426 with Sec-WebSocket-Version: 13', T, async () => {
    const r = await get(srv, '/v1/ws', { token: user.access_token });
    expectError(assert, r, 426, 'upgrade_required');
    assert.equal(r.headers['sec-websocket-version'], '13');
  });

  it('an upgrade with Sec-WebSocket-Version 8 is 426', T, async () => {
    const r = await rawRequest(
      srv,
      `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n` +
        `Authorization: Bearer ${user.access_token}\r\n\r\n`,
    );
    assert.ok(r, 'no response');
    assert.equal(r.status, 426, r.body);
    assert.equal(r.json.error.code, 'upgrade_required');
    assert.equal(r.headers['sec-websocket-version'], '13');
  });

  it('an upgrade without Sec-WebSocket-Key is 400', T, async () => {
    const r = await rawRequest(
      srv,
      `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Version: 13\r\nAuthorization: Bearer ${user.access_token}\r\n\r\n`,
    );
    assert.ok(r, 'no response');
    assert.equal(r.status, 400, r.body);
    assert.equal(r.json.error.code, 'bad_request');
  });

  it('the 101 response carries the RFC 6455 accept key for the sample nonce', T, async () => {
    const c = await rawConnect(srv.port);
    try {
      c.write(
        `GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n` +
          `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n` +
          `Authorization: Bearer ${user.access_token}\r\n\r\n`,
      );
      assert.ok(await c.waitFor((b) => b.indexOf('\r\n\r\n') >= 0, 5000));
      const head = c.data.toString('latin1');
      assert.match(head, /^HTTP\/1\.1 101 /);
      assert.match(head, /\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK\+xOo=\r\n/i);
      assert.match(head, /\r\nUpgrade: websocket\r\n/i);
    } finally {
      c.destroy();
    }
  });
});
