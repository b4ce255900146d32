'use strict';
// The JetStream relay (docs/INTEGRATIONS.md, "JetStream"): a node with --nats-url publishes every
// outbox event into the stream CHATD_EVENTS, which it creates with 3 replicas on the 3-server
// JetStream cluster; each message carries Nats-Msg-Id = the event id. A relay made to publish
// everything again (its saved position reset while the node is down) adds nothing: the stream
// suppresses the duplicates. Read back with build-test/js_dump (Debian has no nats CLI).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { newUser, api, createRoom } = require('../e2e/lib/chat');
const { pgDatabase, natsCluster, jwtKeys, startNode, stopAll } = require('./lib/engines');
const { waitDump } = require('./lib/jetstream');

const T = { timeout: 180000 };

describe('cluster: relay to JetStream', () => {
  let nats, storeUrl, keys, A;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(3, { jetstream: true });
    keys = jwtKeys();
  });
  after(async () => {
    await stopAll(A, nats);
  });

  it('publishes every event once, in per-room order, with 3 replicas; a replay is deduplicated', T, async () => {
    A = await startNode({ storeUrl, keys, id: 'R', natsUrl: nats.urls, args: { 'msg-rate': 100000, 'msg-burst': 100000 } });
    const u = await newUser(A, 'rl');
    const rooms = [await createRoom(A, u), await createRoom(A, u)];
    const sent = [];
    for (let i = 0; i < 40; i++) {
      const room = rooms[i % 2].id;
      const r = await api(A, u).post(`/v1/rooms/${room}/messages`, { body: `j${i}`, client_msg_id: `j${i}` });
      assert.equal(r.status, 201, r.text);
      sent.push(r.body.msg_id);
    }
    const has = (d) => sent.every((id) => d.msgs.some((m) => m.msg_id === id));
    let d = await waitDump(nats.urls, has, 90000, 'every message');
    assert.equal(d.info.replicas, 3);
    for (const m of d.msgs) {
      assert.equal(m.msg_id, m.data.id, 'Nats-Msg-Id is the event id');
      assert.ok(m.subject.startsWith('chatd.events.'), m.subject);
    }
    const ids = d.msgs.map((m) => m.msg_id);
    assert.equal(new Set(ids).size, ids.length, 'no duplicates');
    for (const room of rooms) {
      const seqs = d.msgs.filter((m) => m.data.room === room.id && m.data.data.seq !== undefined).map((m) => m.data.data.seq);
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${room.id} in seq order`);
    }
    const count = d.info.messages;

    // Publish everything again: stop, reset the relay's position, start.
    await A.stop();
    execFileSync('psql', ['-X', '-q', storeUrl, '-c', "UPDATE outbox_consumers SET pos = 0 WHERE name = 'relay'"]);
    A = await startNode({ storeUrl, keys, id: 'R', natsUrl: nats.urls });
    // The relay is done once its position is back at the head: a new event shows it.
    const extra = await api(A, u).post(`/v1/rooms/${rooms[0].id}/messages`, { body: 'after', client_msg_id: 'after' });
    d = await waitDump(nats.urls, (x) => x.msgs.some((m) => m.msg_id === extra.body.msg_id), 90000, 'the new message');
    assert.equal(d.info.messages, count + 1, 'the republished events were all suppressed as duplicates');
    const republished = A.logs().filter((l) => l.msg === 'outbox consumer started' && l.consumer === 'relay');
    assert.equal(republished[0].after, 0, 'the relay did start from the beginning again');
  });
});
