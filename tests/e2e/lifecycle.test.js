'use strict';
// Process lifecycle: SIGTERM drain (close 1001 to WebSockets, idle keep-alive connections
// closed, in-flight requests answered, exit 0), persistence across a restart (accounts, keys),
// and failures at start (port taken, data directory in use, bad keys).

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startServer, runOnce, freePort, sleep } = require('./lib/server');
const { get, post, registerUser, rawConnect, parseResponses, expectError } = require('./lib/http');
const { wsConnectHello } = require('./lib/ws');

const T = { timeout: 20000 };
function connectRefused(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.once('error', (e) => resolve(e.code === 'ECONNREFUSED'));
  });
}

describe('lifecycle', () => {
  const servers = [];
  const dirs = [];
  afterEach(async () => {
    // Leftovers of a failed test: our own children only, by PID.
    for (const s of servers.splice(0)) await s.kill();
    for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
  });

  async function start(opts) {
    const s = await startServer(opts);
    servers.push(s);
    return s;
  }

  it('SIGTERM exits with code 0 within a few seconds (no connections)', T, async () => {
    const srv = await start();
    srv.proc.kill('SIGTERM');
    const info = await srv.waitExit(5000);
    assert.deepEqual(info, { code: 0, signal: null });
    srv.assertNoSanitizerReport();
    assert.ok(srv.logs().some((l) => l.msg === 'draining'), 'no draining log line');
  });

  it('SIGTERM with an open WebSocket: the client gets close 1001', T, async () => {
    const srv = await start();
    const u = await registerUser(srv);
    const { client } = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    srv.proc.kill('SIGTERM');
    const info = await client.closed(5000);
    assert.equal(info.code, 1001);
    assert.match(info.reason, /shutting down/);
    // The listener is closed while draining: new connections are refused.
    let refused = false;
    for (let i = 0; i < 20 && !refused; i++) {
      refused = await connectRefused(srv.port);
      if (!refused) await sleep(100);
    }
    assert.ok(refused, 'new connections still accepted after SIGTERM');
  });

  it('SIGTERM with an open WebSocket: the process then exits 0', T, async () => {
    const srv = await start();
    const u = await registerUser(srv);
    const { client } = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    srv.proc.kill('SIGTERM');
    assert.equal((await client.closed(5000)).code, 1001);
    const info = await srv.waitExit(5000);
    assert.deepEqual(info, { code: 0, signal: null });
    srv.assertNoSanitizerReport();
  });

  it('SIGTERM closes an idle keep-alive HTTP connection', T, async () => {
    const srv = await start();
    const c = await rawConnect(srv.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1));
    assert.equal(parseResponses(c.data)[0].headers.connection, 'keep-alive');
    srv.proc.kill('SIGTERM');
    assert.ok(await c.waitClose(5000), 'keep-alive connection still open after SIGTERM');
    assert.equal(parseResponses(c.data).length, 1);
  });

  it('SIGTERM during an in-flight request: it is still answered, with Connection: close', T, async () => {
    // Slow hashing (production cost) so the login is surely in flight when the signal lands.
    const srv = await start({ args: { 'pwhash-ops': 3, 'pwhash-mem-kib': 65536 } });
    const u = await registerUser(srv);
    const body = JSON.stringify({ username: u.username, password: u.password });
    const c = await rawConnect(srv.port);
    c.write(
      `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    await sleep(30);
    srv.proc.kill('SIGTERM');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1, 8000), 'in-flight login not answered');
    const r = parseResponses(c.data)[0];
    assert.equal(r.status, 200, r.body);
    assert.equal(r.json.user.id, u.user.id);
    assert.equal(r.headers.connection, 'close');
    assert.ok(await c.waitClose(5000));
  });

  it('data survives a restart: login works, old access and refresh tokens are accepted', T, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-restart-'));
    dirs.push(dataDir);
    const a = await start({ dataDir });
    const u = await registerUser(a);
    const keyFile = path.join(dataDir, 'jwt.keys');
    assert.ok(fs.existsSync(keyFile), 'no jwt.keys in the data dir');
    assert.equal(fs.statSync(keyFile).mode & 0o077, 0, 'jwt.keys must not be readable by others');
    await a.stop();

    const b = await start({ dataDir });
    const login = await post(b, '/v1/auth/login', { username: u.username, password: u.password });
    assert.equal(login.status, 200, login.text);
    assert.equal(login.body.user.id, u.user.id);
    const me = await get(b, '/v1/me', { token: u.access_token });
    assert.equal(me.status, 200, `old access token refused after restart: ${me.text}`);
    assert.equal(me.body.user.username, u.username);
    const refresh = await post(b, '/v1/auth/refresh', { refresh_token: u.refresh_token });
    assert.equal(refresh.status, 200, refresh.text);
    const dup = await post(b, '/v1/auth/register', { username: u.username, password: 'another password' });
    expectError(assert, dup, 409, 'username_taken');
    // A new user gets a new id (ids are not reused after a restart).
    const v = await registerUser(b);
    assert.notEqual(v.user.id, u.user.id);
    await b.stop();
  });

  it('a restart with a different data dir does not know the old tokens', T, async () => {
    const a = await start();
    const u = await registerUser(a);
    await a.stop();
    const b = await start();
    const me = await get(b, '/v1/me', { token: u.access_token });
    expectError(assert, me, 401, 'unauthorized');
    await b.stop();
  });

  it('starting on a port another process holds fails with a non-zero exit', T, async () => {
    const blocker = net.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    const { port } = blocker.address();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-busy-'));
    dirs.push(dataDir);
    try {
      const r = await runOnce(['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { timeoutMs: 10000 });
      assert.notEqual(r.code, 0, `chatd started on a taken port: ${r.stderr}`);
      assert.match(r.stderr, /cannot listen/);
    } finally {
      blocker.close();
    }
  });

  it('a second chatd on the port of a running one fails instead of sharing it', T, async () => {
    const srv = await start();
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-second-'));
    dirs.push(dataDir);
    const r = await runOnce(['--listen', `127.0.0.1:${srv.port}`, '--data-dir', dataDir], { timeoutMs: 10000 });
    assert.notEqual(r.code, 0, 'a second chatd started on a port in use (SO_REUSEPORT sharing)');
    assert.match(r.stderr, /cannot listen/);
    assert.equal((await get(srv, '/healthz')).status, 200);
    await srv.stop();
  });

  it('the access tokens of a session ended before a restart stay refused after it', T, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-ended-'));
    dirs.push(dataDir);
    const a = await start({ dataDir });
    const ended = await registerUser(a);
    const kept = await post(a, '/v1/auth/login', { username: ended.username, password: ended.password });
    assert.equal(kept.status, 200, kept.text);
    assert.equal((await post(a, '/v1/auth/logout', { refresh_token: ended.refresh_token })).status, 204);
    await a.stop();

    const b = await start({ dataDir });
    expectError(assert, await get(b, '/v1/me', { token: ended.access_token }), 401, 'unauthorized');
    assert.equal((await get(b, '/v1/me', { token: kept.body.access_token })).status, 200);
    await b.stop();
  });

  it('a second chatd on the data directory of a running one exits instead of sharing it', T, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-locked-'));
    dirs.push(dataDir);
    const srv = await start({ dataDir });
    const port = await freePort();
    const r = await runOnce(['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir], { timeoutMs: 10000 });
    assert.equal(r.code, 1, `a second chatd started on a data directory in use: ${r.stderr}`);
    assert.match(r.stderr, /data directory in use by another chatd/);
    assert.equal(await connectRefused(port), true);
    assert.equal((await get(srv, '/healthz')).status, 200);
    await srv.stop();
    // The lock goes with the process: the same directory starts again once the first is gone.
    const again = await start({ dataDir });
    assert.equal((await get(again, '/healthz')).status, 200);
    await again.stop();
  });

  it('SIGINT drains like SIGTERM and exits 0', T, async () => {
    const srv = await start();
    const u = await registerUser(srv);
    const { client } = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    srv.proc.kill('SIGINT');
    assert.equal((await client.closed(5000)).code, 1001);
    assert.deepEqual(await srv.waitExit(5000), { code: 0, signal: null });
    srv.assertNoSanitizerReport();
  });

  it('an invalid --jwt-keys fails at start with a non-zero exit', T, async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-keys-'));
    dirs.push(dataDir);
    const port = await freePort();
    for (const keys of ['k1:abcd', 'nokid', 'k1:' + 'z'.repeat(64)]) {
      const r = await runOnce(['--listen', `127.0.0.1:${port}`, '--data-dir', dataDir, '--jwt-keys', keys], { timeoutMs: 10000 });
      assert.notEqual(r.code, 0, `accepted --jwt-keys ${keys}`);
      assert.match(r.stderr, /jwt-keys/);
    }
  });

  it('a data dir that cannot be created fails at start with a non-zero exit', T, async () => {
    const port = await freePort();
    const file = path.join(os.tmpdir(), `chatd-e2e-notadir-${process.pid}`);
    fs.writeFileSync(file, 'x');
    try {
      const r = await runOnce(['--listen', `127.0.0.1:${port}`, '--data-dir', path.join(file, 'sub')], { timeoutMs: 10000 });
      assert.notEqual(r.code, 0);
    } finally {
      fs.rmSync(file, { force: true });
    }
  });
});
