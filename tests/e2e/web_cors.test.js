'use strict';
// The web client's static files (--web, --web-dir), CORS for the REST API and the Origin check
// of the WebSocket upgrade (--allowed-origins).
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer, runOnce } = require('./lib/server');
const { request, rawConnect, registerUser, expectError } = require('./lib/http');
const { wsConnect } = require('./lib/ws');

/** One raw request; resolves {status, head, body} of the first response. */
async function raw(srv, text) {
  const c = await rawConnect(srv.port);
  c.write(text);
  await c.waitFor((b) => {
    const s = b.toString('latin1');
    const i = s.indexOf('\r\n\r\n');
    if (i < 0) return false;
    const m = /content-length: (\d+)/i.exec(s.slice(0, i));
    return /^HTTP\/1\.1 (304|204)/.test(s) || /^HEAD /.test(text) || b.length >= i + 4 + (m ? Number(m[1]) : 0);
  }, 5000);
  c.destroy();
  const s = c.data.toString('latin1');
  const i = s.indexOf('\r\n\r\n');
  return { status: Number(s.slice(9, 12)), head: s.slice(0, i), body: s.slice(i + 4) };
}

describe('static files (embedded)', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(() => srv.stop());

  test('GET / is the web client, with its security headers', async () => {
    const r = await request(srv, 'GET', '/');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/html; charset=utf-8$/);
    assert.match(r.text, /<script type="module" src="app.js">/);
    assert.equal(r.headers['x-content-type-options'], 'nosniff');
    assert.match(r.headers['content-security-policy'], /default-src 'self'/);
    assert.equal(r.headers['cache-control'], 'no-cache');
    assert.match(r.headers.etag, /^"[0-9a-f]{16}"$/);
    const idx = await request(srv, 'GET', '/index.html');
    assert.equal(idx.text, r.text);
  });

  test('scripts, styles and the SDK have their content types', async () => {
    for (const [p, type] of [
      ['/app.js', 'text/javascript; charset=utf-8'],
      ['/style.css', 'text/css; charset=utf-8'],
      ['/sdk/index.js', 'text/javascript; charset=utf-8'],
      ['/sdk/client.js', 'text/javascript; charset=utf-8'],
      ['/favicon.svg', 'image/svg+xml'],
    ]) {
      const r = await request(srv, 'GET', p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers['content-type'], type, p);
      assert.equal(r.headers['x-content-type-options'], 'nosniff', p);
      assert.ok(r.text.length > 0);
    }
    const sdk = await request(srv, 'GET', '/sdk/client.js');
    assert.equal(sdk.text, fs.readFileSync(path.join(__dirname, '../../sdk/js/src/client.js'), 'utf8'));
  });

  test('HEAD has the headers and no body; If-None-Match gets 304', async () => {
    const get = await request(srv, 'GET', '/app.js');
    const h = await raw(srv, 'HEAD /app.js HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(h.status, 200);
    assert.match(h.head, new RegExp(`content-length: ${Buffer.byteLength(get.text)}`, 'i'));
    assert.equal(h.body, '');
    const nm = await request(srv, 'GET', '/app.js', { headers: { 'If-None-Match': get.headers.etag } });
    assert.equal(nm.status, 304);
    assert.equal(nm.text, '');
    const other = await request(srv, 'GET', '/app.js', { headers: { 'If-None-Match': '"0000000000000000"' } });
    assert.equal(other.status, 200);
  });

  test('only GET and HEAD', async () => {
    const r = await request(srv, 'POST', '/app.js', { json: {} });
    expectError(assert, r, 405, 'method_not_allowed');
    assert.equal(r.headers.allow, 'GET, HEAD');
    const d = await request(srv, 'DELETE', '/');
    expectError(assert, d, 405, 'method_not_allowed');
  });

  test('nothing outside the fixed set: traversal, encodings, unknown files are 404', async () => {
    for (const p of ['/../CMakeLists.txt', '/sdk/../index.html', '/%2e%2e/CMakeLists.txt', '/app.js/', '//app.js',
      '/sdk', '/sdk/', '/web/app.js', '/index.html%00', '/APP.JS', '/.gitignore', '/sdk/../../src/main.c']) {
      const r = await raw(srv, `GET ${p} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
      assert.equal(r.status, 404, `${p}: ${r.head}`);
    }
  });

  test('API routes are not shadowed', async () => {
    const r = await request(srv, 'GET', '/healthz');
    assert.equal(r.status, 200);
    assert.equal(r.headers['cache-control'], 'no-store');
  });
});

test('--web off: no static files', async () => {
  const srv = await startServer({ args: { web: 'off' } });
  try {
    expectError(assert, await request(srv, 'GET', '/'), 404, 'not_found');
    expectError(assert, await request(srv, 'GET', '/app.js'), 404, 'not_found');
  } finally {
    await srv.stop();
  }
});

test('--web-dir serves a directory read at start (dot-files and unknown types left out)', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-webdir-'));
  fs.writeFileSync(path.join(dir, 'index.html'), '<!doctype html><p>custom</p>');
  fs.mkdirSync(path.join(dir, 'js'));
  fs.writeFileSync(path.join(dir, 'js', 'a.js'), 'export const a = 1;\n');
  fs.writeFileSync(path.join(dir, '.secret.js'), 'no');
  fs.writeFileSync(path.join(dir, 'notes.bin'), 'no');
  const srv = await startServer({ args: { 'web-dir': dir } });
  try {
    const r = await request(srv, 'GET', '/');
    assert.equal(r.status, 200);
    assert.equal(r.text, '<!doctype html><p>custom</p>');
    const a = await request(srv, 'GET', '/js/a.js');
    assert.equal(a.headers['content-type'], 'text/javascript; charset=utf-8');
    // Read once at start: later changes need a restart.
    fs.writeFileSync(path.join(dir, 'late.js'), 'x');
    for (const p of ['/.secret.js', '/notes.bin', '/late.js', '/app.js'])
      expectError(assert, await request(srv, 'GET', p), 404, 'not_found');
  } finally {
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  const bad = await runOnce(['--web-dir', path.join(dir, 'missing'), '--data-dir', os.tmpdir() + '/chatd-nodir']);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /cannot read --web-dir/);
});

test('--allowed-origins is validated at start', async () => {
  for (const v of ['example.com', 'http://a.example/path', 'ftp://a.example', 'http://a b']) {
    const r = await runOnce(['--allowed-origins', v, '--data-dir', os.tmpdir() + '/chatd-noorig']);
    assert.equal(r.code, 2, v);
    assert.match(r.stderr, /invalid --allowed-origins/);
  }
});

describe('CORS and the WebSocket Origin check', () => {
  let srv;
  let user;
  const OK = 'https://app.example.com';
  before(async () => {
    srv = await startServer({ args: { 'allowed-origins': `${OK}, http://localhost:3000/` } });
    user = await registerUser(srv);
  });
  after(() => srv.stop());

  test('preflight from a listed origin', async () => {
    const r = await request(srv, 'OPTIONS', '/v1/rooms', {
      headers: { Origin: OK, 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'authorization, content-type' },
    });
    assert.equal(r.status, 204);
    assert.equal(r.headers['access-control-allow-origin'], OK);
    assert.match(r.headers['access-control-allow-methods'], /POST/);
    assert.match(r.headers['access-control-allow-headers'], /Authorization/);
    assert.match(r.headers['access-control-allow-headers'], /Content-Type/);
    assert.equal(r.headers.vary, 'Origin');
    const r2 = await request(srv, 'OPTIONS', '/v1/rooms/r_1/messages', { headers: { Origin: 'http://localhost:3000', 'Access-Control-Request-Method': 'GET' } });
    assert.equal(r2.status, 204);
    assert.equal(r2.headers['access-control-allow-origin'], 'http://localhost:3000');
  });

  test('preflight from another origin is refused', async () => {
    const r = await request(srv, 'OPTIONS', '/v1/rooms', { headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    expectError(assert, r, 403, 'forbidden');
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    const unknown = await request(srv, 'OPTIONS', '/v1/nothing', { headers: { Origin: OK } });
    expectError(assert, unknown, 404, 'not_found');
  });

  test('responses to a listed origin carry Access-Control-Allow-Origin (errors too)', async () => {
    const r = await request(srv, 'GET', '/v1/me', { token: user.access_token, headers: { Origin: OK } });
    assert.equal(r.status, 200);
    assert.equal(r.headers['access-control-allow-origin'], OK);
    assert.match(r.headers['access-control-expose-headers'], /Retry-After/);
    const e = await request(srv, 'GET', '/v1/me', { headers: { Origin: OK } });
    assert.equal(e.status, 401);
    assert.equal(e.headers['access-control-allow-origin'], OK);
    const evil = await request(srv, 'GET', '/v1/me', { token: user.access_token, headers: { Origin: 'https://evil.example' } });
    assert.equal(evil.headers['access-control-allow-origin'], undefined);
    assert.equal(evil.headers.vary, 'Origin');
    const none = await request(srv, 'GET', '/v1/me', { token: user.access_token });
    assert.equal(none.headers['access-control-allow-origin'], undefined);
  });

  test('WebSocket: no Origin, same origin and listed origins connect; others get 403', async () => {
    const ok = [undefined, `http://127.0.0.1:${srv.port}`, OK, 'http://localhost:3000'];
    for (const origin of ok) {
      const headers = origin ? { Origin: origin } : {};
      const c = await wsConnect(srv.wsUrl, { token: user.access_token, headers });
      const hello = await c.next((m) => m.type === 'hello');
      assert.equal(hello.type, 'hello');
      c.ws.close();
    }
    for (const origin of ['https://evil.example', `http://127.0.0.1:${srv.port + 1}`, 'null', `https://127.0.0.1:${srv.port}x`]) {
      await assert.rejects(wsConnect(srv.wsUrl, { token: user.access_token, headers: { Origin: origin } }), (e) => {
        assert.equal(e.statusCode, 403, origin);
        assert.equal(e.body.error.code, 'forbidden');
        return true;
      });
    }
  });
});

test('without --allowed-origins only the same origin may open a WebSocket', async () => {
  const srv = await startServer();
  try {
    const u = await registerUser(srv);
    const same = await wsConnect(srv.wsUrl, { token: u.access_token, headers: { Origin: `http://127.0.0.1:${srv.port}` } });
    await same.next((m) => m.type === 'hello');
    same.ws.close();
    await assert.rejects(wsConnect(srv.wsUrl, { token: u.access_token, headers: { Origin: 'http://localhost:3000' } }), (e) => e.statusCode === 403);
    const r = await request(srv, 'GET', '/v1/me', { token: u.access_token, headers: { Origin: 'http://localhost:3000' } });
    assert.equal(r.headers['access-control-allow-origin'], undefined);
    assert.equal(r.headers.vary, undefined);
  } finally {
    await srv.stop();
  }
});
