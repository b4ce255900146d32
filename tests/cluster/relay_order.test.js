'use strict';
// The relay keeps per-room order across a message the stream refuses mid-batch
// (docs/INTEGRATIONS.md, "JetStream"). The stream is made before the relay starts with a 1,000-byte
// message limit (js_dump --max-msg-size); 20 rooms get 10 messages each, one of them (room 5,
// round 3) 1,500 bytes long. The stream refuses it: without the Nats-Expected-Last-Sequence chain
// the relay's later messages of the same batch are stored anyway and the refused one lands after
// them once the limit is lifted (the batch is published again, the others deduplicated); with the
// chain nothing after the refused message is stored, the relay keeps the acknowledged prefix and
// goes on from the refused event. Once every later message was written and the relay failed
// again, the limit is lifted; then the stream, read with build-test/js_dump, holds every event
// once and each room in seq order. /metrics shows the relay's failures and its consumer caught up.
//
// Then every NATS server is paused (SIGSTOP) past the relay's acknowledgement timeout while
// messages are written: the relay gives its batch up (the messages stay in the servers' socket
// buffers) and publishes it again; once resumed the servers process the old and the new copies
// alike (whether the given-up copies get stored depends on the JetStream cluster's leader
// election after the pause: the test prints the duplicates acknowledged; some runs had none,
// others 10, i.e. messages given up on that the stream stored after all). Either way the chain
// stays whole: every event once, in outbox order.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { sleep } = require('../e2e/lib/server');
const { newUser, api, createRoom } = require('../e2e/lib/chat');
const { metrics, metricSum } = require('../e2e/lib/http');
const { pgDatabase, natsCluster, jwtKeys, startNode, stopAll } = require('./lib/engines');
const { JS_DUMP, waitDump } = require('./lib/jetstream');

const T = { timeout: 240000 };
const ROOMS = 20;
const ROUNDS = 10;

function failures(node) {
  return node.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('relay: publish not acknowledged')).length;
}

function checkStream(d, rooms, perRoom) {
  const ids = d.msgs.map((m) => m.msg_id);
  assert.equal(new Set(ids).size, ids.length, 'every event once');
  for (const room of rooms) {
    const seqs = d.msgs.filter((m) => m.data.room === room && m.data.type === 'message').map((m) => m.data.data.seq);
    assert.equal(seqs.length, perRoom, `${room}: every message`);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${room}: seq order at ${i} (${seqs[i - 1]} then ${seqs[i]})`);
  }
  // The stream holds the outbox in order overall: positions only go up.
  const pos = d.msgs.map((m) => m.data.pos);
  for (let i = 1; i < pos.length; i++) assert.ok(pos[i] > pos[i - 1], `outbox order at stream seq ${d.msgs[i].seq}`);
}

async function until(pred, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`${what} not seen in ${ms} ms`);
    await sleep(250);
  }
}

describe('cluster: relay order across a refused message', () => {
  let nats, storeUrl, keys, A;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(3, { jetstream: true });
    keys = jwtKeys();
  });
  after(async () => {
    await stopAll(A, nats);
  });

  it('stores every room in seq order with nothing missing when one message is refused mid-batch', T, async () => {
    execFileSync(JS_DUMP, [nats.urls, 'CHATD_EVENTS', '--max-msg-size', '1000'], { timeout: 60000 });
    A = await startNode({ storeUrl, keys, id: 'O', natsUrl: nats.urls, args: { 'msg-rate': 100000, 'msg-burst': 100000 } });
    const u = await newUser(A, 'ro');
    const rooms = [];
    for (let i = 0; i < ROOMS; i++) rooms.push((await createRoom(A, u)).id);
    const sent = [];
    for (let r = 0; r < ROUNDS; r++) {
      await Promise.all(
        rooms.map(async (room, i) => {
          const body = r === 3 && i === 5 ? 'x'.repeat(1500) : `m${r}`;
          const res = await api(A, u).post(`/v1/rooms/${room}/messages`, { body, client_msg_id: `o${i}-${r}` });
          assert.equal(res.status, 201, res.text);
          sent.push(res.body.msg_id);
        }),
      );
      if (r === 3) await until(() => failures(A) > 0, 60000, 'the refusal');
    }
    // Everything is written: one more failed attempt (it covers the later messages), then lift.
    const seen = failures(A);
    await until(() => failures(A) > seen, 60000, 'a retry after the last message');
    execFileSync(JS_DUMP, [nats.urls, 'CHATD_EVENTS', '--max-msg-size', '-1'], { timeout: 60000 });

    const has = (d) => sent.every((id) => d.msgs.some((m) => m.msg_id === id));
    checkStream(await waitDump(nats.urls, has, 120000, 'every message'), rooms, ROUNDS);

    let v;
    await until(async () => {
      v = (await metrics(A)).values;
      return metricSum(v, 'chatd_outbox_consumer_lag_events', { consumer: 'relay' }) === 0;
    }, 60000, 'relay lag 0');
    assert.ok(metricSum(v, 'chatd_relay_publish_failures_total') >= 1, 'failures counted');
    assert.ok(metricSum(v, 'chatd_relay_events_published_total') >= sent.length, 'published counted');
    assert.ok(metricSum(v, 'chatd_outbox_batches_refused_total', { consumer: 'relay' }) >= 2);
    assert.equal(
      metricSum(v, 'chatd_outbox_consumer_position', { consumer: 'relay' }),
      metricSum(v, 'chatd_outbox_head_position', { consumer: 'relay' }),
    );
  });

  it('keeps the chain when every NATS server pauses past the acknowledgement timeout', T, async () => {
    const u = await newUser(A, 'rp');
    const rooms = [];
    for (let i = 0; i < 10; i++) rooms.push((await createRoom(A, u)).id);
    const sent = [];
    const round = async (r) => {
      await Promise.all(
        rooms.map(async (room, i) => {
          const res = await api(A, u).post(`/v1/rooms/${room}/messages`, { body: `p${r}`, client_msg_id: `p${i}-${r}` });
          assert.equal(res.status, 201, res.text);
          sent.push(res.body.msg_id);
        }),
      );
    };
    await round(0);
    const seen = failures(A);
    for (const s of nats.servers) s.proc.kill('SIGSTOP'); // our own children, by PID
    try {
      for (let r = 1; r < 4; r++) await round(r);
      await until(() => failures(A) > seen, 60000, 'a batch given up (no acknowledgement)');
      await round(4);
    } finally {
      for (const s of nats.servers) s.proc.kill('SIGCONT');
    }
    await round(5);
    const has = (d) => sent.every((id) => d.msgs.some((m) => m.msg_id === id));
    checkStream(await waitDump(nats.urls, has, 120000, 'every message'), rooms, 6);
    let v;
    await until(async () => {
      v = (await metrics(A)).values;
      return metricSum(v, 'chatd_outbox_consumer_lag_events', { consumer: 'relay' }) === 0;
    }, 60000, 'relay lag 0');
    const gaveUp = A.logs().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('relay: publish not acknowledged'));
    console.log(
      `relay after the pause: ${metricSum(v, 'chatd_relay_events_duplicate_total')} duplicates acknowledged; ` +
        JSON.stringify(gaveUp.slice(-3).map((l) => [l.events, l.taken, l.error])),
    );
  });
});
