'use strict';
// Operations endpoints: /healthz, /readyz, and /metrics in the Prometheus text format with every
// documented series, counters that move by exactly what the test did, and --max-conns refusals.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { get, post, request, registerUser, expectError, metrics, metricSum, rawConnect, parseResponses } = require('./lib/http');
const { wsConnectHello } = require('./lib/ws');

const T = { timeout: 20000 };

const DOCUMENTED = [
  ['chatd_connections_open', 'gauge'],
  ['chatd_websockets_open', 'gauge'],
  ['chatd_connections_total', 'counter'],
  ['chatd_connections_refused_total', 'counter'],
  ['chatd_ws_frames_in_total', 'counter'],
  ['chatd_ws_frames_out_total', 'counter'],
  ['chatd_bytes_in_total', 'counter'],
  ['chatd_bytes_out_total', 'counter'],
  ['chatd_ws_slow_consumer_closed_total', 'counter'],
  ['chatd_store_commits_total', 'counter'],
  ['chatd_store_jobs_total', 'counter'],
  ['chatd_store_failed_commits_total', 'counter'],
  ['chatd_store_queued_jobs', 'gauge'],
  ['chatd_http_requests_total', 'counter'],
  ['chatd_http_request_duration_seconds', 'histogram'],
  ['chatd_auth_failures_total', 'counter'],
  ['chatd_rate_limited_total', 'counter'],
];

describe('operations endpoints', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const m = async () => (await metrics(srv)).values;
  const v = (vals, name, labels) => metricSum(vals, name, labels) ?? 0;

  it('/healthz is 200 {"status":"ok"}', T, async () => {
    const r = await get(srv, '/healthz');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^application\/json/);
    assert.deepEqual(r.body, { status: 'ok' });
  });

  it('/readyz is 200 {"status":"ready"}', T, async () => {
    const r = await get(srv, '/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { status: 'ready' });
  });

  it('/metrics is Prometheus text with HELP/TYPE for every documented metric', T, async () => {
    await get(srv, '/healthz'); // so that at least one route has requests and latencies
    const { text, headers } = await metrics(srv);
    assert.match(headers['content-type'], /^text\/plain; version=0\.0\.4/);
    assert.ok(text.endsWith('\n'));
    for (const [name, type] of DOCUMENTED) {
      assert.ok(text.includes(`# HELP ${name} `), `no HELP for ${name}`);
      assert.ok(text.includes(`# TYPE ${name} ${type}\n`), `no TYPE ${type} for ${name}`);
    }
    // Every sample line is well formed: name{label="value",...} number.
    const sample = /^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*"(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\]*")*\})? (-?[0-9.e+]+|\+Inf|NaN)$/;
    for (const line of text.split('\n')) {
      if (line === '' || line.startsWith('# HELP ') || line.startsWith('# TYPE ')) continue;
      assert.match(line, sample, `malformed sample line: ${line}`);
    }
    assert.match(text, /^chatd_http_requests_total\{route="healthz",status="200"\} \d+$/m);
    assert.match(text, /^chatd_http_request_duration_seconds_bucket\{route="healthz",le="[0-9.e+-]+"\} \d+$/m);
    assert.match(text, /^chatd_http_request_duration_seconds_bucket\{route="healthz",le="\+Inf"\} \d+$/m);
    assert.match(text, /^chatd_http_request_duration_seconds_sum\{route="healthz"\} [0-9.]+$/m);
    assert.match(text, /^chatd_http_request_duration_seconds_count\{route="healthz"\} \d+$/m);
    for (const reason of ['token', 'credentials', 'refresh_token'])
      assert.match(text, new RegExp(`^chatd_auth_failures_total\\{reason="${reason}"\\} \\d+$`, 'm'));
  });

  it('histogram buckets are cumulative and +Inf equals _count', T, async () => {
    for (let i = 0; i < 5; i++) await get(srv, '/readyz');
    const { text } = await metrics(srv);
    const buckets = [...text.matchAll(/^chatd_http_request_duration_seconds_bucket\{route="readyz",le="([^"]+)"\} (\d+)$/gm)];
    assert.ok(buckets.length >= 2);
    let prevLe = -Infinity;
    let prev = 0;
    for (const [, le, n] of buckets) {
      const bound = le === '+Inf' ? Infinity : Number(le);
      assert.ok(bound > prevLe, 'bucket bounds must increase');
      assert.ok(Number(n) >= prev, 'bucket counts must be cumulative');
      prevLe = bound;
      prev = Number(n);
    }
    assert.equal(buckets.at(-1)[1], '+Inf');
    const count = Number(/^chatd_http_request_duration_seconds_count\{route="readyz"\} (\d+)$/m.exec(text)[1]);
    assert.equal(prev, count);
    assert.ok(count >= 5);
  });

  it('chatd_http_requests_total counts by route and status, exactly', T, async () => {
    const before = await m();
    for (let i = 0; i < 3; i++) await get(srv, '/healthz');
    await get(srv, '/no/such/path');
    await request(srv, 'DELETE', '/healthz');
    const after = await m();
    const d = (labels) => v(after, 'chatd_http_requests_total', labels) - v(before, 'chatd_http_requests_total', labels);
    assert.equal(d({ route: 'healthz', status: '200' }), 3);
    assert.equal(d({ route: 'unmatched', status: '404' }), 1);
    assert.equal(d({ route: 'unmatched', status: '405' }) + d({ route: 'healthz', status: '405' }), 1);
    assert.equal(d({ route: 'metrics', status: '200' }), 1, 'the first /metrics scrape itself');
  });

  it('a failed login moves chatd_auth_failures_total{reason="credentials"} by exactly 1', T, async () => {
    const before = await m();
    const r = await post(srv, '/v1/auth/login', { username: 'nobody_here', password: 'wrong password' });
    expectError(assert, r, 401, 'invalid_credentials');
    const after = await m();
    const key = { reason: 'credentials' };
    assert.equal(v(after, 'chatd_auth_failures_total', key) - v(before, 'chatd_auth_failures_total', key), 1);
    const st = { route: 'auth_login', status: '401' };
    assert.equal(v(after, 'chatd_http_requests_total', st) - v(before, 'chatd_http_requests_total', st), 1);
  });

  it('one request with a bad token is one auth failure (reason="token")', T, async () => {
    const key = { reason: 'token' };
    let before = await m();
    await get(srv, '/v1/me', { headers: { Authorization: 'Bearer x.y.z' } });
    let after = await m();
    assert.equal(v(after, 'chatd_auth_failures_total', key) - v(before, 'chatd_auth_failures_total', key), 1, 'bad token');
    before = after;
    await get(srv, '/v1/me');
    after = await m();
    assert.equal(v(after, 'chatd_auth_failures_total', key) - v(before, 'chatd_auth_failures_total', key), 1, 'missing token');
    before = after;
    await get(srv, '/v1/ws', { headers: { Authorization: 'Bearer x.y.z' } });
    after = await m();
    assert.equal(v(after, 'chatd_auth_failures_total', key) - v(before, 'chatd_auth_failures_total', key), 1, 'bad token on /v1/ws');
  });

  it('a bad refresh token moves reason="refresh_token" by exactly 1', T, async () => {
    const key = { reason: 'refresh_token' };
    const before = await m();
    const r = await post(srv, '/v1/auth/refresh', { refresh_token: 'B'.repeat(43) });
    expectError(assert, r, 401, 'invalid_refresh_token');
    const after = await m();
    assert.equal(v(after, 'chatd_auth_failures_total', key) - v(before, 'chatd_auth_failures_total', key), 1);
  });

  it('registering moves the store counters', T, async () => {
    const before = await m();
    await registerUser(srv);
    const after = await m();
    assert.ok(v(after, 'chatd_store_commits_total') > v(before, 'chatd_store_commits_total'));
    assert.ok(v(after, 'chatd_store_jobs_total') > v(before, 'chatd_store_jobs_total'));
    assert.equal(v(after, 'chatd_store_failed_commits_total'), 0);
  });

  it('WebSocket traffic moves frames, bytes and the open gauges', T, async () => {
    const u = await registerUser(srv);
    const before = await m();
    const { client } = await wsConnectHello(srv.wsUrl, { token: u.access_token });
    const during = await m();
    assert.equal(v(during, 'chatd_websockets_open') - v(before, 'chatd_websockets_open'), 1);
    // connections_open moves with every HTTP connection too (the registration's may still be
    // closing when `before` is read): the precise check is the raw TCP test below.
    assert.ok(v(during, 'chatd_connections_open') >= 1);
    assert.ok(v(during, 'chatd_connections_total') >= v(before, 'chatd_connections_total') + 2);
    const pad = 'z'.repeat(1000);
    for (let i = 0; i < 10; i++) client.send({ type: 'ping', id: i, pad });
    for (let i = 0; i < 10; i++) await client.next((x) => x.type === 'pong');
    const after = await m();
    assert.ok(v(after, 'chatd_ws_frames_in_total') - v(during, 'chatd_ws_frames_in_total') >= 10);
    assert.ok(v(after, 'chatd_ws_frames_out_total') - v(during, 'chatd_ws_frames_out_total') >= 10);
    assert.ok(v(after, 'chatd_bytes_in_total') - v(during, 'chatd_bytes_in_total') >= 10 * 1000);
    assert.ok(v(after, 'chatd_bytes_out_total') > v(during, 'chatd_bytes_out_total'));
    client.ws.close(1000);
    await client.closed(5000);
    let closed;
    for (let i = 0; i < 20; i++) {
      closed = await m();
      if (v(closed, 'chatd_websockets_open') === v(before, 'chatd_websockets_open')) break;
      await sleep(100);
    }
    assert.equal(v(closed, 'chatd_websockets_open'), v(before, 'chatd_websockets_open'), 'websockets_open did not go back down');
  });

  it('chatd_connections_open follows raw TCP connections', T, async () => {
    const base = v(await m(), 'chatd_connections_open');
    const conns = [];
    for (let i = 0; i < 3; i++) conns.push(await rawConnect(srv.port));
    let during;
    for (let i = 0; i < 20; i++) {
      during = v(await m(), 'chatd_connections_open');
      if (during >= base + 3) break;
      await sleep(50);
    }
    assert.equal(during, base + 3);
    conns.forEach((c) => c.destroy());
    let after;
    for (let i = 0; i < 20; i++) {
      after = v(await m(), 'chatd_connections_open');
      if (after === base) break;
      await sleep(100);
    }
    assert.equal(after, base);
  });
});

describe('--max-conns', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: { 'max-conns': 3 } });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('connections over the limit are closed at accept and counted as refused', T, async () => {
    // Two held connections + one more is the limit; the fourth is refused.
    const held = [await rawConnect(srv.port), await rawConnect(srv.port)];
    const third = await rawConnect(srv.port);
    await sleep(200); // accepted (and counted) by the server
    const fourth = await rawConnect(srv.port);
    fourth.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await fourth.waitClose(5000), 'the connection over --max-conns was not closed');
    assert.equal(parseResponses(fourth.data).length, 0, 'a refused connection got an answer');
    third.destroy();
    await sleep(200);
    // Now there is room again: the metrics scrape works and shows the refusal.
    const vals = (await metrics(srv)).values;
    assert.ok(metricSum(vals, 'chatd_connections_refused_total') >= 1);
    held.forEach((c) => c.destroy());
  });
});
