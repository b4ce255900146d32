'use strict';
// Message operations across nodes: an edit and a reaction made on node A are log entries that
// reach a client of node B live, in seq order with the messages around them, and B's history and
// replay show the message's current state (docs/PROTOCOL.md, "Edits, deletes, reactions...").
// Search across nodes: both nodes run the indexer (one at a time, on the shared position); what
// either node stored is found through either, a delete never is.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { newUser, api, createRoom, connect, fullHistory, assertContiguous } = require('../e2e/lib/chat');
const { pgDatabase, natsCluster, jwtKeys, startNode, stopAll } = require('./lib/engines');

const T = { timeout: 120000 };

describe('cluster: message operations cross nodes', () => {
  let nats, storeUrl, keys, A, B;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(1);
    keys = jwtKeys();
    const args = { 'search-index-ms': 20, 'search-rate': 1000 };
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: nats.servers[0].url, args });
    B = await startNode({ storeUrl, keys, id: 'B', natsUrl: nats.servers[0].url, args });
  });
  after(async () => {
    await stopAll(A, B, nats);
  });

  it('an edit and a reaction made on A arrive on B in seq order; B serves the current state', T, async () => {
    const a = await newUser(A, 'ca');
    const b = await newUser(A, 'cb');
    const room = (await createRoom(A, a, [b])).id;
    const cb = await connect(B, b, { sync: { [room]: 0 } });
    const ca = await connect(A, a);
    try {
      const m = await ca.sendMsg(room, 'first version');
      const e = await ca.req({ type: 'edit', room, seq: m.seq, body: 'second version' });
      assert.equal(e.type, 'ack', JSON.stringify(e));
      const after1 = await ca.sendMsg(room, 'in between');
      const r = await ca.req({ type: 'react', room, seq: m.seq, emoji: '🚀', on: true });
      assert.equal(r.type, 'ack', JSON.stringify(r));
      assert.ok(e.seq > m.seq && after1.seq > e.seq && r.seq > after1.seq);

      await cb.waitFor((c) => c.entries(room).some((x) => x.seq === r.seq), 20000, 'the reaction on B');
      const got = cb.entries(room);
      assertContiguous(got.map((x) => x.seq), got[0].seq, 'B');
      const edit = got.find((x) => x.seq === e.seq);
      assert.deepEqual([edit.type, edit.target, edit.body], ['edit', m.seq, 'second version']);
      const react = got.find((x) => x.seq === r.seq);
      assert.deepEqual([react.type, react.target, react.emoji, react.user, react.on], ['reaction', m.seq, '🚀', a.id, true]);

      const h = await fullHistory(B, b, room);
      const msg = h.find((x) => x.seq === m.seq);
      assert.equal(msg.body, 'second version');
      assert.deepEqual(msg.reactions, [{ emoji: '🚀', count: 1, me: false }]);
      assert.equal(msg.state_seq, r.seq);
      const ha = await api(A, a).get(`/v1/rooms/${room}/messages`);
      assert.deepEqual(ha.body.messages.find((x) => x.seq === m.seq).reactions, [{ emoji: '🚀', count: 1, me: true }]);
    } finally {
      await ca.close();
      await cb.close();
    }
  });

  it('messages stored through either node are found through both; a delete through B never', T, async () => {
    const a = await newUser(A, 'sa');
    const b = await newUser(B, 'sb');
    const room = (await createRoom(A, a, [b])).id;
    const w = `zq${Date.now().toString(36)}`;
    const sent = [];
    for (let i = 0; i < 20; i++) {
      const [node, u] = i % 2 ? [B, b] : [A, a];
      const r = await api(node, u).post(`/v1/rooms/${room}/messages`, { body: `${w} number ${i}`, client_msg_id: `s${i}` });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      sent.push(r.body.seq);
    }
    const deleted = sent[9]; // b's own message, deleted through B
    const d = await api(B, b).del(`/v1/rooms/${room}/messages/${deleted}`);
    assert.equal(d.status, 200, d.text);
    const want = sent.filter((s) => s !== deleted).sort((x, y) => y - x);
    for (const [node, u] of [[A, a], [B, b]]) {
      let seqs = [];
      for (let t = 0; t < 200; t++) {
        const r = await api(node, u).get(`/v1/search?q=${w}&limit=50`);
        assert.equal(r.status, 200, JSON.stringify(r.body));
        seqs = r.body.messages.map((m) => m.seq);
        if (seqs.length >= want.length) break;
        await new Promise((res) => setTimeout(res, 50));
      }
      assert.deepEqual(seqs, want, 'newest first, every message once, the deleted one never');
    }
  });
});
