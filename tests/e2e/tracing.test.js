'use strict';
// Tracing: chatd exports OpenTelemetry spans over OTLP/HTTP JSON to the receiver this test starts
// (POST /v1/traces on 127.0.0.1), with the request's W3C traceparent as parent, the group
// commit's span under the first sampled request it serves and linked to all of them, the fanout
// under the commit; OTEL_TRACES_SAMPLER is honoured; every log line of a traced request carries
// its trace id, and the access log line is there.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startServer, sleep } = require('./lib/server');
const { request } = require('./lib/http');
const { startChat, newUser, createRoom, connect } = require('./lib/chat');
const { startReceiver } = require('./lib/otlp');

const hex = (n) => crypto.randomBytes(n).toString('hex');

function otelEnv(recv, extra = {}) {
  return { OTEL_EXPORTER_OTLP_ENDPOINT: recv.url, OTEL_SERVICE_NAME: 'chatd-e2e', OTEL_BSP_SCHEDULE_DELAY: '100', ...extra };
}

const logLines = (srv) => srv.jsonLines();

test('HTTP requests: a span per request, child of the traceparent, with route and status', async () => {
  const recv = await startReceiver();
  const srv = await startChat({}, { env: otelEnv(recv) });
  try {
    const u = await newUser(srv, 'tr');
    const tid = hex(16);
    const parent = hex(8);
    const r = await request(srv, 'GET', '/v1/me', { token: u.token, headers: { traceparent: `00-${tid}-${parent}-01` } });
    assert.equal(r.status, 200);
    const s = await recv.waitFor((x) => x.traceId === tid, 'for the traced request');
    await sleep(100); // the log lines reach our pipe
    assert.equal(s.parentSpanId, parent);
    assert.equal(s.name, 'GET /v1/me');
    assert.equal(s.kind, 2);
    assert.match(s.spanId, /^[0-9a-f]{16}$/);
    assert.equal(s.attrs['http.route'], '/v1/me');
    assert.equal(s.attrs['http.request.method'], 'GET');
    assert.equal(s.attrs['http.response.status_code'], 200);
    assert.equal(s.attrs['chatd.request_id'], r.headers['x-request-id']);
    assert.ok(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano));
    assert.equal(s.resource['service.name'], 'chatd-e2e');
    assert.ok(recv.posts.every((p) => p.url === '/v1/traces' && p.contentType === 'application/json'));

    // The request's log lines (the access line included) carry its trace id and request id.
    const lines = logLines(srv).filter((l) => l.request_id === r.headers['x-request-id']);
    assert.ok(lines.length >= 1);
    assert.ok(lines.every((l) => l.trace_id === tid), JSON.stringify(lines));
    const access = lines.find((l) => l.msg === 'http');
    assert.ok(access, 'access log line');
    assert.equal(access.level, 'info');
    assert.equal(access.status, 200);
    assert.equal(access.path, '/v1/me');

    // Without a traceparent: a new trace, a root span, still logged with its id.
    const r2 = await request(srv, 'GET', '/v1/rooms', { token: u.token });
    const s2 = await recv.waitFor((x) => x.attrs['chatd.request_id'] === r2.headers['x-request-id'], 'for a root request');
    assert.equal(s2.parentSpanId || '', '');
    assert.notEqual(s2.traceId, tid);
    assert.equal(s2.name, 'GET /v1/rooms');
    const l2 = logLines(srv).find((l) => l.request_id === r2.headers['x-request-id'] && l.msg === 'http');
    assert.equal(l2.trace_id, s2.traceId);

    // A malformed traceparent is ignored (new trace), never an error.
    const r3 = await request(srv, 'GET', '/v1/me', { token: u.token, headers: { traceparent: '00-zz-yy-01' } });
    assert.equal(r3.status, 200);
    const s3 = await recv.waitFor((x) => x.attrs['chatd.request_id'] === r3.headers['x-request-id'], 'for a bad traceparent');
    assert.equal(s3.parentSpanId || '', '');
  } finally {
    await srv.stop();
    await recv.close();
  }
});

test('a message: request span, group commit span (child, linked) and fanout span (child of the commit)', async () => {
  const recv = await startReceiver();
  const srv = await startChat({}, { env: otelEnv(recv) });
  try {
    const a = await newUser(srv, 'tra');
    const b = await newUser(srv, 'trb');
    const room = await createRoom(srv, a, [b]);
    const tid = hex(16);
    const r = await request(srv, 'POST', `/v1/rooms/${room.id}/messages`, {
      token: a.token,
      json: { body: 'traced', client_msg_id: 'tr-1' },
      headers: { traceparent: `00-${tid}-${hex(8)}-01` },
    });
    assert.equal(r.status, 201, r.text);
    const req = await recv.waitFor((x) => x.traceId === tid && x.kind === 2, 'request');
    assert.equal(req.name, 'POST /v1/rooms/{id}/messages');
    const commit = await recv.waitFor((x) => x.name === 'store.commit' && (x.links || []).some((l) => l.spanId === req.spanId), 'commit linked to the request');
    assert.equal(commit.traceId, tid);
    assert.equal(commit.parentSpanId, req.spanId);
    assert.ok(commit.attrs['chatd.jobs'] >= 1);
    assert.match(commit.attrs['db.system'], /^(sqlite|postgresql)$/);
    const fan = await recv.waitFor((x) => x.name === 'chat.fanout' && x.parentSpanId === commit.spanId, 'fanout under the commit');
    assert.equal(fan.traceId, tid);
    assert.ok(fan.attrs['chatd.events'] >= 1);

    // A WebSocket send: its own trace, the commit linked to it.
    const c = await connect(srv, a);
    try {
      const ack = await c.sendMsg(room.id, 'over ws');
      assert.equal(ack.type, 'ack');
      const ws = await recv.waitFor((x) => x.name === 'ws send', 'ws send');
      assert.equal(ws.attrs['chatd.room'], room.id);
      assert.equal(ws.attrs['enduser.id'], a.id);
      const wc = await recv.waitFor((x) => x.name === 'store.commit' && (x.links || []).some((l) => l.spanId === ws.spanId), 'commit of the ws send');
      assert.equal(wc.traceId, ws.traceId);
    } finally {
      await c.close();
    }
  } finally {
    await srv.stop();
    await recv.close();
  }
});

test('samplers: always_off sends nothing; parent-based follows the unsampled flag; logs keep the trace id', async () => {
  const recv = await startReceiver();
  const srv = await startServer({ env: otelEnv(recv, { OTEL_TRACES_SAMPLER: 'always_off' }) });
  try {
    for (let i = 0; i < 5; i++) assert.equal((await request(srv, 'GET', '/healthz')).status, 200);
    await sleep(800); // eight export periods
    assert.equal(recv.spans.length, 0);
    assert.equal(recv.posts.length, 0);
  } finally {
    await srv.stop();
  }
  const srv2 = await startServer({ env: otelEnv(recv) }); // default: parentbased_always_on
  try {
    const tid = hex(16);
    const r = await request(srv2, 'GET', '/healthz', { headers: { traceparent: `00-${tid}-${hex(8)}-00` } });
    const r2 = await request(srv2, 'GET', '/readyz');
    await recv.waitFor((x) => x.attrs['chatd.request_id'] === r2.headers['x-request-id'], 'the sampled request');
    await sleep(300);
    assert.equal(recv.spans.filter((x) => x.traceId === tid).length, 0);
    const line = logLines(srv2).find((l) => l.request_id === r.headers['x-request-id'] && l.msg === 'http');
    assert.equal(line.trace_id, tid);
  } finally {
    await srv2.stop();
    await recv.close();
  }
});

test('traceidratio 0 samples nothing; a bad sampler refuses to start; no endpoint: no trace ids', async () => {
  const recv = await startReceiver();
  const srv = await startServer({ env: otelEnv(recv, { OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' }) });
  try {
    for (let i = 0; i < 5; i++) await request(srv, 'GET', '/healthz');
    await sleep(500);
    assert.equal(recv.spans.length, 0);
  } finally {
    await srv.stop();
    await recv.close();
  }
  await assert.rejects(startServer({ env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9', OTEL_TRACES_SAMPLER: 'sometimes' }, readyTimeoutMs: 3000 }));
  const plain = await startServer();
  try {
    const r = await request(plain, 'GET', '/healthz');
    await sleep(200); // the access line reaches our pipe
    const lines = logLines(plain);
    assert.ok(lines.some((l) => l.request_id === r.headers['x-request-id']));
    assert.ok(lines.every((l) => !('trace_id' in l)));
  } finally {
    await plain.stop();
  }
});

test('an unreachable endpoint costs nothing to the requests and is logged once', async () => {
  const srv = await startServer({ env: { OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:9/v1/traces', OTEL_BSP_SCHEDULE_DELAY: '50' } });
  try {
    for (let i = 0; i < 20; i++) assert.equal((await request(srv, 'GET', '/healthz')).status, 200);
    await sleep(500);
    const fails = logLines(srv).filter((l) => l.msg === 'trace export failed');
    assert.equal(fails.length, 1);
  } finally {
    await srv.stop();
  }
});
