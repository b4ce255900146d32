'use strict';
// Several chatd nodes on one PostgreSQL database and a NATS cluster: every promise of the single
// node holds across nodes. Engines are started once for the file (lib/engines.js); the tests
// use fresh users and rooms.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { sleep } = require('../e2e/lib/server');
const { newUser, api, createRoom, connect, fullHistory, assertContiguous, pump } = require('../e2e/lib/chat');
const { request } = require('../e2e/lib/http');
const { pgDatabase, natsCluster, redisServer, jwtKeys, startNode, stopAll } = require('./lib/engines');

const T = { timeout: 120000 };

function logSeqs(msgs, room) {
  return msgs.filter((m) => m.room === room && typeof m.seq === 'number' && m.type !== 'ack').map((m) => m.seq);
}

describe('cluster: two nodes, PostgreSQL + NATS + Redis', () => {
  let nats, redis, storeUrl, keys, A, B;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(3);
    redis = await redisServer();
    keys = jwtKeys();
    // Each node talks to a different NATS server first: messages cross the NATS cluster too.
    const [n0, n1, n2] = nats.servers.map((s) => s.url);
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: [n0, n1, n2].join(','), redisUrl: redis.url });
    B = await startNode({ storeUrl, keys, id: 'B', natsUrl: [n1, n2, n0].join(','), redisUrl: redis.url });
  });
  after(async () => {
    await stopAll(A, B, nats, redis);
  });

  const presenceOf = (c, user, status) => (m) => m.type === 'presence' && m.user === user.id && (!status || m.status === status);

  it('presence: a user on two nodes stays online while one connection closes; offline after the last', T, async () => {
    const watcher = await newUser(A, 'pw');
    const u = await newUser(A, 'pu');
    await createRoom(A, watcher, [u]);
    const cw = await connect(A, watcher);
    try {
      const ua = await connect(A, u);
      const ub = await connect(B, u);
      await cw.waitFor((c) => c.messages.some(presenceOf(c, u, 'online')), 15000, 'online');
      const mark = cw.messages.length;
      await ua.close();
      await sleep(1500);
      assert.deepEqual(cw.since(mark, presenceOf(cw, u, 'offline')), [], 'offline while still on B');
      const r = await api(A, watcher).get(`/v1/users/${u.id}`);
      assert.equal(r.body.user.status, 'online', 'REST on A sees the connection on B');
      await ub.close();
      await cw.waitFor((c) => c.since(mark, presenceOf(c, u, 'offline')).length > 0, 15000, 'offline');
    } finally {
      await cw.close();
    }
  });

  it('presence: a user whose only node is killed goes offline; one also on a live node stays online', T, async () => {
    const K = await startNode({ storeUrl, keys, id: 'K', natsUrl: nats.servers[1].url, redisUrl: redis.url });
    const watcher = await newUser(A, 'kw');
    const only = await newUser(A, 'ko');
    const both = await newUser(A, 'kb');
    await createRoom(A, watcher, [only, both]);
    const cw = await connect(A, watcher);
    const cb = await connect(B, both);
    try {
      await connect(K, only);
      await connect(K, both);
      await cw.waitFor((c) => c.messages.some(presenceOf(c, only, 'online')), 15000, 'online');
      const mark = cw.messages.length;
      await K.kill(); // SIGKILL: nothing said goodbye
      await cw.waitFor((c) => c.since(mark, presenceOf(c, only, 'offline')).length > 0, 20000, 'offline after the crash');
      assert.deepEqual(cw.since(mark, presenceOf(cw, both, 'offline')), [], 'a user on a live node stays online');
      const r = await api(A, watcher).get(`/v1/users/${both.id}`);
      assert.equal(r.body.user.status, 'online');
    } finally {
      await cw.close();
      await cb.close();
    }
  });

  it('a message sent on A reaches a member on B, in order, and history is the same on both', T, async () => {
    const alice = await newUser(A, 'al');
    const bob = await newUser(B, 'bo');
    const room = await createRoom(A, alice, [bob]);
    const cb = await connect(B, bob);
    const ca = await connect(A, alice);
    try {
      const acks = [];
      for (let i = 0; i < 20; i++) acks.push(await ca.sendMsg(room.id, `hello ${i}`));
      const last = acks[acks.length - 1].seq;
      await cb.waitFor((c) => c.entries(room.id).some((m) => m.seq === last), 15000, 'last message on B');
      const seqs = cb.entries(room.id).map((m) => m.seq);
      assertContiguous(seqs, seqs[0], 'B stream');
      const ha = await fullHistory(A, alice, room.id);
      const hb = await fullHistory(B, bob, room.id);
      assert.deepEqual(hb, ha);
      assert.deepEqual(ha.map((m) => m.seq), ha.map((_, i) => i + 1));
    } finally {
      await ca.close();
      await cb.close();
    }
  });

  it('8 senders on two nodes into one room: one gap-free order, the same on every node', T, async () => {
    const owner = await newUser(A, 'ow');
    const senders = [];
    for (let i = 0; i < 8; i++) senders.push(await newUser(i % 2 ? B : A, 's'));
    const watchA = await newUser(A, 'wa');
    const watchB = await newUser(B, 'wb');
    const room = await createRoom(A, owner, [...senders, watchA, watchB]);
    const ra = await connect(A, watchA);
    const rb = await connect(B, watchB);
    const conns = [];
    try {
      for (let i = 0; i < 8; i++) conns.push(await connect(i % 2 ? B : A, senders[i]));
      const per = 50;
      const results = await Promise.all(conns.map((c, i) => pump(c, room.id, per, { window: 10, prefix: `s${i}x` })));
      const acked = results.flat().map((a) => a.seq);
      assert.equal(new Set(acked).size, 8 * per, 'every ack has its own seq');
      const top = Math.max(...acked);
      for (const r of [ra, rb]) {
        await r.waitFor((c) => c.entries(room.id).some((m) => m.seq === top), 30000, `seq ${top}`);
        const seqs = r.entries(room.id).map((m) => m.seq);
        assertContiguous(seqs, seqs[0], 'receiver');
      }
      const h = await fullHistory(B, owner, room.id);
      assert.deepEqual(h.map((m) => m.seq), h.map((_, i) => i + 1));
      assert.equal(h.filter((m) => m.type === 'message').length, 8 * per);
    } finally {
      for (const c of [...conns, ra, rb]) await c.close();
    }
  });

  it('REST and WebSocket sends on two nodes into one room, REST resends racing their originals: one gap-free order, each client_msg_id once', T, async () => {
    // REST sends share the optimistic group commits of WebSocket sends (two round trips): a
    // resend racing its original makes PostgreSQL roll the batch back and run it again, and
    // every job of it must come out as if it had run once.
    const owner = await newUser(A, 'rw');
    const restA = await newUser(A, 'ra');
    const restB = await newUser(B, 'rb');
    const wsA = await newUser(A, 'wa');
    const room = await createRoom(A, owner, [restA, restB, wsA]);
    const cw = await connect(A, wsA);
    try {
      const per = 40;
      const rest = (srv, u, k) =>
        Promise.all(
          Array.from({ length: per }, async (_, i) => {
            const cmid = `${k}-${i}`;
            const body = { body: `${k} ${i}`, client_msg_id: cmid };
            // the original and its resend, at once, to both nodes
            const [x, y] = await Promise.all([api(srv, u).post(`/v1/rooms/${room.id}/messages`, body), api(srv === A ? B : A, u).post(`/v1/rooms/${room.id}/messages`, body)]);
            assert.ok([200, 201].includes(x.status) && [200, 201].includes(y.status), `${x.status} ${x.text} / ${y.status} ${y.text}`);
            assert.equal(x.body.seq, y.body.seq, `${cmid}: one seq for the original and the resend`);
            assert.equal([x.body.duplicate, y.body.duplicate].filter(Boolean).length, 1, `${cmid}: exactly one duplicate`);
            return x.body.seq;
          }),
        );
      const [sa, sb, sw] = await Promise.all([rest(A, restA, 'ra'), rest(B, restB, 'rb'), pump(cw, room.id, per, { window: 8, prefix: 'wsx' })]);
      const seqs = [...sa, ...sb, ...sw.map((a) => a.seq)];
      assert.equal(new Set(seqs).size, 3 * per, 'every message has its own seq');
      const h = await fullHistory(B, owner, room.id);
      assert.deepEqual(h.map((m) => m.seq), h.map((_, i) => i + 1), 'history is gap-free');
      const cmids = h.filter((m) => m.type === 'message').map((m) => m.client_msg_id);
      assert.equal(cmids.length, 3 * per);
      assert.equal(new Set(cmids).size, 3 * per, 'each client_msg_id stored once');
    } finally {
      await cw.close();
    }
  });

  it('a resend of the same client_msg_id to the other node returns the original ack', T, async () => {
    const u = await newUser(A, 'id');
    const room = await createRoom(A, u, []);
    const ca = await connect(A, u);
    const cb = await connect(B, u);
    try {
      const first = await ca.sendMsg(room.id, 'once', 'same-cmid');
      const again = await cb.sendMsg(room.id, 'once', 'same-cmid');
      assert.equal(again.type, 'ack');
      assert.equal(again.seq, first.seq);
      assert.equal(again.msg_id, first.msg_id);
      assert.equal(again.duplicate, true);
      const h = await fullHistory(B, u, room.id);
      assert.equal(h.filter((m) => m.client_msg_id === 'same-cmid').length, 1);
    } finally {
      await ca.close();
      await cb.close();
    }
  });

  it('sync on B replays what was sent on A while the client was away', T, async () => {
    const alice = await newUser(A, 'sa');
    const bob = await newUser(A, 'sb');
    const room = await createRoom(A, alice, [bob]);
    const ca = await connect(A, alice);
    const acks = [];
    for (let i = 0; i < 30; i++) acks.push(await ca.sendMsg(room.id, `while away ${i}`));
    await ca.close();
    const cb = await connect(B, bob, { sync: { [room.id]: 2 } });
    try {
      const seqs = cb.entries(room.id).map((m) => m.seq);
      assert.deepEqual(seqs, Array.from({ length: acks[acks.length - 1].seq - 2 }, (_, i) => i + 3));
    } finally {
      await cb.close();
    }
  });

  it('a kick on A takes effect on B; a logout on A closes the session on B with 4001', T, async () => {
    const alice = await newUser(A, 'ka');
    const bob = await newUser(B, 'kb');
    const room = await createRoom(A, alice, [bob]);
    const cb = await connect(B, bob);
    const ca = await connect(A, alice);
    try {
      await ca.sendMsg(room.id, 'before');
      await cb.waitFor((c) => c.entries(room.id).some((m) => m.body === 'before'), 15000, 'before');
      // bob sends through B: B's writer now knows (caches) his membership
      const sent = await api(B, bob).post(`/v1/rooms/${room.id}/messages`, { body: 'mine', client_msg_id: 'kb-1' });
      assert.equal(sent.status, 201, sent.text);
      const r = await api(A, alice).del(`/v1/rooms/${room.id}/members/${bob.id}`);
      assert.equal(r.status, 204, r.text);
      await cb.waitFor((c) => c.messages.some((m) => m.type === 'member' && m.action === 'kick'), 15000, 'kick');
      // the kick came over the bus: B's writer forgot the membership before bob's socket saw it
      const refused = await api(B, bob).post(`/v1/rooms/${room.id}/messages`, { body: 'after kick', client_msg_id: 'kb-2' });
      assert.equal(refused.status, 403, refused.text);
      assert.equal(refused.body.error.code, 'not_member');
      const mark = cb.messages.length;
      await ca.sendMsg(room.id, 'after');
      await sleep(1500);
      assert.deepEqual(cb.since(mark, (m) => m.room === room.id && m.type === 'message'), []);
      // logout of bob's session on A: his socket on B closes
      const out = await request(A, 'POST', '/v1/auth/logout', { token: bob.token, json: { refresh_token: bob.refresh } });
      assert.ok(out.status === 204 || out.status === 200, out.text);
      const info = await cb.closed(15000);
      assert.equal(info.code, 4001);
      const me = await request(B, 'GET', '/v1/me', { token: bob.token });
      assert.equal(me.status, 401);
    } finally {
      await ca.close();
      await cb.close();
    }
  });

  it('a block made on A hides presence from the blocked user on B', T, async () => {
    const a = await newUser(A, 'ba');
    const b = await newUser(B, 'bb');
    const c = await newUser(B, 'bc');
    await createRoom(A, c, [a, b]);
    assert.equal((await api(A, a).post('/v1/me/blocks', { user_id: b.id })).status, 200);
    const cb = await connect(B, b);
    const cc = await connect(B, c);
    try {
      const markB = cb.messages.length;
      const ca = await connect(A, a);
      try {
        // c on B sees a come online: the presence event crossed; b on B must not
        await cc.waitFor((x) => x.ofType('presence', (p) => p.user === a.id && p.status === 'online').length, 15000, 'a online (c)');
        await sleep(500);
        assert.deepEqual(cb.since(markB, (m) => m.type === 'presence' && m.user === a.id), []);
      } finally {
        await ca.close();
      }
    } finally {
      await cb.close();
      await cc.close();
    }
  });

  it('typing and read markers cross nodes', T, async () => {
    const alice = await newUser(A, 'ta');
    const bob = await newUser(B, 'tb');
    const room = await createRoom(A, alice, [bob]);
    const ca = await connect(A, alice);
    const cb = await connect(B, bob);
    const cb2 = await connect(A, bob); // bob's second device, on the other node
    try {
      ca.send({ type: 'typing', id: 'ty', room: room.id });
      const t = await cb.next((m) => m.type === 'typing' && m.room === room.id, 10000);
      assert.equal(t.user, alice.id);
      assert.equal(t.typing, true);
      const ack = await ca.sendMsg(room.id, 'read me');
      await cb.waitFor((c) => c.entries(room.id).some((m) => m.seq === ack.seq), 10000, 'message');
      const r = await cb.req({ type: 'read', room: room.id, seq: ack.seq });
      assert.equal(r.type, 'read');
      const other = await cb2.next((m) => m.type === 'read' && m.room === room.id, 10000);
      assert.equal(other.seq, ack.seq, "the read marker reaches the user's device on the other node");
    } finally {
      for (const c of [ca, cb, cb2]) await c.close();
    }
  });

  it('Redis gone: presence degrades to each node and comes back', T, async () => {
    const watcher = await newUser(A, 'rw');
    const u = await newUser(A, 'ru');
    await createRoom(A, watcher, [u]);
    const cw = await connect(A, watcher);
    try {
      await redis.kill();
      const cu = await connect(B, u);
      await cw.waitFor((c) => c.messages.some(presenceOf(c, u, 'online')), 15000, 'online without Redis');
      const mark = cw.messages.length;
      await cu.close(); // the only connection: offline, told by node B's own view
      await cw.waitFor((c) => c.since(mark, presenceOf(c, u, 'offline')).length > 0, 15000, 'offline without Redis');
      const ok = await request(A, 'GET', '/v1/rooms', { token: watcher.token });
      assert.equal(ok.status, 200, 'chat goes on without Redis');
    } finally {
      await cw.close();
      redis = await redisServer(redis.port); // back on the same port: nodes reconnect
    }
    // after the restart a user on two nodes is again one presence
    await sleep(2500);
    const u2 = await newUser(A, 'rv');
    const w2 = await newUser(A, 'rx');
    await createRoom(A, w2, [u2]);
    const cw2 = await connect(A, w2);
    try {
      const ua = await connect(A, u2);
      const ub = await connect(B, u2);
      await cw2.waitFor((c) => c.messages.some(presenceOf(c, u2, 'online')), 15000, 'online');
      const mark = cw2.messages.length;
      await ua.close();
      await sleep(1500);
      assert.deepEqual(cw2.since(mark, presenceOf(cw2, u2, 'offline')), [], 'offline while still on B (Redis back)');
      await ub.close();
    } finally {
      await cw2.close();
    }
  });

  it('one NATS server killed: delivery across nodes goes on', T, async () => {
    const alice = await newUser(A, 'na');
    const bob = await newUser(B, 'nb');
    const room = await createRoom(A, alice, [bob]);
    const cb = await connect(B, bob);
    const ca = await connect(A, alice);
    try {
      await nats.servers[0].kill(); // A's first server
      for (let i = 0; i < 10; i++) await ca.sendMsg(room.id, `after kill ${i}`);
      await cb.waitFor((c) => c.entries(room.id).filter((m) => m.type === 'message').length >= 10, 20000, 'messages after the kill');
      const seqs = cb.entries(room.id).map((m) => m.seq);
      assertContiguous(seqs, seqs[0], 'B stream');
    } finally {
      await ca.close();
      await cb.close();
    }
  });
});

describe('cluster: a node without its bus is healed from storage', () => {
  let nats, storeUrl, keys, A, C;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(1);
    keys = jwtKeys();
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: nats.urls });
    // C's NATS never answers: every bus message to C is lost. Only reconciliation reaches it.
    C = await startNode({ storeUrl, keys, id: 'C', natsUrl: 'nats://127.0.0.1:1', args: { 'reconcile-ms': 300 } });
  });
  after(async () => {
    await stopAll(A, C, nats);
  });

  it('the last message of a quiet room reaches a member on C within the reconcile bound', T, async () => {
    const alice = await newUser(A, 'la');
    const bob = await newUser(C, 'lb');
    const room = await createRoom(A, alice, [bob]);
    const cc = await connect(C, bob);
    const ca = await connect(A, alice);
    try {
      const ack = await ca.sendMsg(room.id, 'only one');
      await cc.waitFor((c) => c.entries(room.id).some((m) => m.seq === ack.seq), 10000, 'the lost message');
      const seqs = cc.entries(room.id).map((m) => m.seq);
      assertContiguous(seqs, seqs[0], 'C stream');
    } finally {
      await ca.close();
      await cc.close();
    }
  });

  it('a logout on A closes the session on C even though its bus message is lost', T, async () => {
    const bob = await newUser(A, 'lo');
    const cc = await connect(C, bob);
    try {
      const out = await request(A, 'POST', '/v1/auth/logout', { token: bob.token, json: { refresh_token: bob.refresh } });
      assert.ok(out.status === 204 || out.status === 200, out.text);
      const info = await cc.closed(10000);
      assert.equal(info.code, 4001);
      const me = await request(C, 'GET', '/v1/me', { token: bob.token });
      assert.equal(me.status, 401);
    } finally {
      await cc.close();
    }
  });
});

describe('cluster: the message rate of a user holds across nodes (Redis)', () => {
  let nats, redis, storeUrl, keys, A, B;
  const RATE = 1;
  const BURST = 10;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(1);
    redis = await redisServer();
    keys = jwtKeys();
    const args = { 'msg-rate': RATE, 'msg-burst': BURST };
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: nats.urls, redisUrl: redis.url, args });
    B = await startNode({ storeUrl, keys, id: 'B', natsUrl: nats.urls, redisUrl: redis.url, args });
  });
  after(async () => {
    await stopAll(A, B, nats, redis);
  });

  it('a user sending through two nodes gets one budget, not one per node', T, async () => {
    const u = await newUser(A, 'rl');
    const room = await createRoom(A, u, []);
    const ca = await connect(A, u);
    const cb = await connect(B, u);
    const SECONDS = 6;
    let acked = 0;
    let limited = 0;
    try {
      const end = Date.now() + SECONDS * 1000;
      await Promise.all(
        [ca, cb].map(async (c) => {
          while (Date.now() < end) {
            const r = await c.sendMsg(room.id, 'x');
            if (r.type === 'ack') acked++;
            else if (r.code === 'rate_limited') {
              limited++;
              await sleep(50);
            } else throw new Error(JSON.stringify(r));
          }
        }),
      );
    } finally {
      await ca.close();
      await cb.close();
    }
    // One node alone admits BURST + RATE * SECONDS; two nodes without a shared bucket twice that
    // (32). Shared: the burst once per node before the first report, then nothing until the
    // shared bucket refills (about 11 s).
    const perNode = BURST + RATE * SECONDS;
    assert.ok(limited > 0);
    assert.ok(acked <= 2 * BURST + 4, `acked ${acked}: more than one shared budget (per node: ${perNode}, two nodes: ${2 * perNode})`);
  });
});
