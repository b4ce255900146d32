'use strict';
// Tracing across nodes: a message posted on node A with a traceparent is one trace from the
// request to the delivery on node B: request -> store.commit -> chat.fanout -> bus publish (A)
// -> bus receive (B), the context crossing NATS in the bus record. Both nodes export to the OTLP
// receiver this test starts; service.instance.id tells them apart.

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { request } = require('../e2e/lib/http');
const { newUser, createRoom, connect } = require('../e2e/lib/chat');
const { startReceiver } = require('../e2e/lib/otlp');
const { pgDatabase, natsCluster, jwtKeys, startNode, stopAll } = require('./lib/engines');

test('a message is one trace across two nodes', { timeout: 120000 }, async () => {
  const recv = await startReceiver();
  const storeUrl = pgDatabase();
  const nats = await natsCluster(1);
  const keys = jwtKeys();
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: recv.url, OTEL_BSP_SCHEDULE_DELAY: '100' };
  let A, B;
  try {
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: nats.servers[0].url, env });
    B = await startNode({ storeUrl, keys, id: 'B', natsUrl: nats.servers[0].url, env });
    const a = await newUser(A, 'xa');
    const b = await newUser(A, 'xb');
    const room = await createRoom(A, a, [b]);
    const cb = await connect(B, b); // B subscribes to the room's channel
    try {
      const tid = crypto.randomBytes(16).toString('hex');
      let r;
      // NATS interest of B may take a moment: post until B's client has a message of this trace.
      for (let i = 0; i < 20; i++) {
        r = await request(A, 'POST', `/v1/rooms/${room.id}/messages`, {
          token: a.token,
          json: { body: `over the bus ${i}`, client_msg_id: `x${i}` },
          headers: { traceparent: `00-${tid}-${crypto.randomBytes(8).toString('hex')}-01` },
        });
        assert.equal(r.status, 201, r.text);
        try {
          await cb.waitFor((c) => c.entries(room.id).some((m) => m.body === `over the bus ${i}`), 2000, 'the message on B');
          break;
        } catch {
          /* not yet */
        }
      }
      const recvSpan = await recv.waitFor((s) => s.name === 'bus receive' && s.traceId === tid, 'bus receive on B', 15000);
      assert.equal(recvSpan.resource['service.instance.id'], 'B');
      assert.equal(recvSpan.kind, 5);
      const pub = await recv.waitFor((s) => s.spanId === recvSpan.parentSpanId, 'its parent');
      assert.equal(pub.name, 'bus publish');
      assert.equal(pub.kind, 4);
      assert.equal(pub.resource['service.instance.id'], 'A');
      assert.match(pub.attrs['messaging.system'], /nats/);
      const fan = await recv.waitFor((s) => s.spanId === pub.parentSpanId, 'the fanout');
      assert.equal(fan.name, 'chat.fanout');
      const commit = await recv.waitFor((s) => s.spanId === fan.parentSpanId, 'the commit');
      assert.equal(commit.name, 'store.commit');
      assert.equal(commit.attrs['db.system'], 'postgresql');
      const req = await recv.waitFor((s) => s.spanId === commit.parentSpanId, 'the request');
      assert.equal(req.name, 'POST /v1/rooms/{id}/messages');
      for (const s of [pub, fan, commit, req]) assert.equal(s.traceId, tid);
    } finally {
      await cb.close();
    }
  } finally {
    await stopAll(A, B, nats);
    await recv.close();
  }
});
