// Close codes and the refresh operation against a scripted WebSocket server (the `ws` package),
// for behaviour a real chatd cannot be made to show on demand: 4002 (token expired) reconnects
// with a fresh token, 4001 (session ended) ends the client, `refreshed` keeps the socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocketServer } from 'ws';
import { ChatdClient } from '../src/index.js';
import { until, sleep } from './helpers.js';

function jwt(exp, iat = Math.floor(Date.now() / 1000)) {
  const b = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  return `${b({ alg: 'HS256', typ: 'JWT' })}.${b({ sub: '1', iat, exp })}.sig`;
}

/** A fake chatd: hello, answers sync/ping/refresh; script(conn, n) decides the rest. */
async function fakeServer(script) {
  const server = http.createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end('{"user":{"id":"u_1"}}');
  });
  const wss = new WebSocketServer({ server });
  const conns = [];
  wss.on('connection', (ws, req) => {
    const c = { ws, token: req.headers.authorization, got: [] };
    conns.push(c);
    ws.send(JSON.stringify({ type: 'hello', user: 'u_1', rooms: 0 }));
    ws.on('message', (d) => {
      const m = JSON.parse(String(d));
      c.got.push(m);
      if (m.type === 'sync') ws.send(JSON.stringify({ type: 'synced', id: m.id, rooms: {} }));
      else if (m.type === 'ping') ws.send(JSON.stringify({ type: 'pong', id: m.id }));
      script(c, conns.length, m);
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${server.address().port}`,
    conns,
    close: () => {
      for (const c of conns) c.ws.terminate();
      return new Promise((r) => server.close(r));
    },
  };
}

test('4002 token expired: reconnect at once with a fresh token', async () => {
  const srv = await fakeServer((c, n, m) => {
    if (n === 1 && m.type === 'sync') setTimeout(() => c.ws.close(4002, 'token expired'), 50);
  });
  const calls = [];
  let k = 0;
  const c = new ChatdClient({
    url: srv.url,
    getToken: ({ force }) => {
      calls.push(force);
      return jwt(Math.floor(Date.now() / 1000) + 900) + ++k;
    },
  });
  try {
    await c.connect();
    await until(() => srv.conns.length === 2 && c.state === 'online', 5000, 'reconnected');
    assert.deepEqual(calls, [false, true]);
    assert.notEqual(srv.conns[0].token, srv.conns[1].token);
  } finally {
    c.close();
    await srv.close();
  }
});

test('4001 session ended: state ended, no reconnect, queued sends rejected', async () => {
  const srv = await fakeServer((c, n, m) => {
    if (m.type === 'sync') setTimeout(() => c.ws.close(4001, 'session ended'), 50);
  });
  const c = new ChatdClient({ url: srv.url, getToken: () => jwt(Math.floor(Date.now() / 1000) + 900) });
  const states = [];
  c.on('state', (s) => states.push(s.state));
  try {
    await c.connect();
    const rejected = assert.rejects(c.send('r_1', 'hi'), (e) => e.code === 'session_ended');
    await until(() => c.state === 'ended', 5000, 'ended');
    await rejected;
    await sleep(400);
    assert.equal(srv.conns.length, 1);
    assert.deepEqual(states, ['connecting', 'syncing', 'online', 'ended']);
  } finally {
    c.close();
    await srv.close();
  }
});

test('the refresh operation hands a new token to the open socket', async () => {
  const srv = await fakeServer((c, n, m) => {
    if (m.type === 'refresh')
      c.ws.send(JSON.stringify({ type: 'refreshed', id: m.id, exp: 0 }));
  });
  let k = 0;
  const c = new ChatdClient({
    url: srv.url,
    // Tokens of 4 s: refreshed 1 s before expiry.
    getToken: () => jwt(Math.floor(Date.now() / 1000) + 4) + ++k,
  });
  try {
    await c.connect();
    await until(() => srv.conns[0].got.filter((m) => m.type === 'refresh').length >= 2, 10000, 'two refreshes');
    assert.equal(srv.conns.length, 1, 'no reconnect');
    const r = srv.conns[0].got.filter((m) => m.type === 'refresh');
    assert.notEqual(r[0].access_token, r[1].access_token);
    assert.equal(c.state, 'online');
  } finally {
    c.close();
    await srv.close();
  }
});

test('a server without the refresh operation (unknown_type): reconnect with the new token', async () => {
  const srv = await fakeServer((c, n, m) => {
    if (m.type === 'refresh')
      c.ws.send(JSON.stringify({ type: 'error', id: m.id, code: 'unknown_type', message: 'unknown type' }));
  });
  let k = 0;
  const c = new ChatdClient({ url: srv.url, getToken: () => jwt(Math.floor(Date.now() / 1000) + 4) + ++k });
  try {
    await c.connect();
    await until(() => srv.conns.length >= 3, 12000, 'reconnects');
    // One refresh attempt; afterwards it reconnects directly.
    const tried = srv.conns.flatMap((x) => x.got).filter((m) => m.type === 'refresh');
    assert.equal(tried.length, 1);
    assert.equal(new Set(srv.conns.map((x) => x.token)).size, srv.conns.length);
  } finally {
    c.close();
    await srv.close();
  }
});
