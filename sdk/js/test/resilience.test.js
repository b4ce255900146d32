// The promises of the SDK under failure, against the real chatd: kill -9 and restart while
// messages flow, a lost ack (resend with the same client_msg_id), sync paging, token expiry.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ChatdClient, memoryStorage } from '../src/index.js';
import { startChatd, newUser, client, until, sleep, tcpProxy, contiguous } from './helpers.js';

/** Assert that client c got exactly `bodies` from `sender` in room, each once, in seq order. */
function assertExactlyOnce(c, room, sender, bodies) {
  const got = c.seen.message.filter((m) => m.room === room && m.sender === sender);
  const seqs = got.map((m) => m.seq);
  assert.equal(new Set(seqs).size, seqs.length, 'a seq delivered twice');
  assert.deepEqual([...seqs].sort((x, y) => x - y), seqs, 'out of order');
  assert.deepEqual(got.map((m) => m.body).sort(), [...bodies].sort(), 'bodies lost or doubled');
}

async function storedBodies(c, room) {
  const out = [];
  let after = 0;
  for (;;) {
    const p = await c.history(room, { after, limit: 200 });
    out.push(...p.messages);
    if (!p.has_more) return out;
    after = p.messages[p.messages.length - 1].seq;
  }
}

test('kill -9 and restart while messages flow: nothing lost or doubled', async () => {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-sdk-'));
  let srv = await startChatd({}, { dataDir });
  const port = srv.port;
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = client(srv.base, a);
  const cb = client(srv.base, b);
  try {
    await Promise.all([ca.connect(), cb.connect()]);
    const room = await ca.createRoom({ name: 'crash', members: [b.id] });
    const N = 300;
    const bodies = Array.from({ length: N }, (_, i) => `msg ${i}`);
    const acks = [];
    let acked = 0;
    // Up to 20 sends in flight, as a busy app would have.
    const sender = (async () => {
      const inflight = new Set();
      for (const body of bodies) {
        const p = ca.send(room.id, body).then((ack) => {
          acks.push(ack);
          acked++;
          inflight.delete(p);
        });
        inflight.add(p);
        if (inflight.size >= 20) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    })();
    await until(() => acked >= 100, 20000, '100 acks');
    srv.proc.kill('SIGKILL'); // our own child, by PID
    await srv.exited;
    await until(() => ca.state === 'offline' && cb.state === 'offline', 10000, 'both offline');
    await sleep(300);
    srv = await startChatd({}, { dataDir, port });
    await sender;
    await until(() => cb.seen.message.filter((m) => m.room === room.id).length >= N, 20000, `b gets ${N}`);
    await sleep(300);
    assert.equal(acks.length, N);
    assert.equal(new Set(acks.map((x) => x.seq)).size, N, 'two sends share a seq');
    assertExactlyOnce(cb, room.id, a.id, bodies);
    // The whole stream b saw (joins and messages) is gap-free.
    const all = [...cb.seen.member, ...cb.seen.message].filter((m) => m.room === room.id).map((m) => m.seq);
    all.sort((x, y) => x - y);
    assert.ok(contiguous(all), 'gap in what b saw');
    // Storage holds every message once.
    const stored = (await storedBodies(cb, room.id)).filter((m) => m.type === 'message');
    assert.deepEqual(stored.map((m) => m.body).sort(), [...bodies].sort());
    assert.ok(ca.seen.state.some((s) => s.state === 'offline'), 'a went offline');
    assert.ok(cb.seen.synced.length >= 2, 'b resumed with sync');
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  }
});

test('offline sends are queued and resent with the same client_msg_id (lost ack)', async () => {
  const srv = await startChatd();
  const proxy = await tcpProxy(srv.port);
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = client(proxy.url, a);
  const cb = client(srv.base, b);
  try {
    await Promise.all([ca.connect(), cb.connect()]);
    const room = await ca.createRoom({ name: 'lossy', members: [b.id] });
    await ca.send(room.id, 'before');

    // A lost ack: the send reaches the server (stored) but its answer never comes back.
    proxy.blackhole = true;
    const lost = ca.send(room.id, 'ack lost');
    await until(() => cb.seen.message.some((m) => m.body === 'ack lost'), 5000, 'stored');
    assert.equal(ca.pending().length, 1);
    const cmid = ca.pending()[0].client_msg_id;

    // Offline: the connection is cut and new connections refused; sends wait in the queue.
    proxy.refuse = true;
    proxy.cut();
    proxy.blackhole = false;
    await until(() => ca.state === 'offline', 5000, 'offline');
    const queued = [ca.send(room.id, 'offline 1'), ca.send(room.id, 'offline 2')];
    assert.equal(ca.pending().length, 3);
    await sleep(300);
    proxy.refuse = false;

    const ack = await lost;
    assert.equal(ack.duplicate, true, 'the resend got the original ack');
    assert.equal(ack.client_msg_id, cmid);
    const [q1, q2] = await Promise.all(queued);
    assert.equal(q2.seq, q1.seq + 1);
    await until(() => cb.seen.message.length === 4, 5000, 'b gets 4');
    await sleep(200);
    assertExactlyOnce(cb, room.id, a.id, ['before', 'ack lost', 'offline 1', 'offline 2']);
    const stored = (await storedBodies(cb, room.id)).filter((m) => m.type === 'message');
    assert.deepEqual(stored.map((m) => m.body), ['before', 'ack lost', 'offline 1', 'offline 2']);
    // a's own message events: the lost one once, reported by the resend's (duplicate) ack.
    assert.equal(ca.seen.message.filter((m) => m.body === 'ack lost').length, 1);
  } finally {
    ca.close();
    cb.close();
    await proxy.close();
    await srv.stop();
  }
});

test('sync pages with a small --sync-max; positions persist through a storage adapter', async () => {
  const srv = await startChatd({ 'sync-max': 5 });
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  const ca = client(srv.base, a);
  const storage = memoryStorage();
  const cb1 = client(srv.base, b, { storage });
  let cb2;
  try {
    await Promise.all([ca.connect(), cb1.connect()]);
    const room = await ca.createRoom({ name: 'paging', members: [b.id] });
    await ca.send(room.id, 'seen');
    await until(() => cb1.seen.message.length === 1, 5000, 'first message');
    cb1.close(); // saves b's position (seq 3)
    const bodies = Array.from({ length: 23 }, (_, i) => `missed ${i}`);
    for (const body of bodies) await ca.send(room.id, body);

    cb2 = client(srv.base, b, { storage });
    await cb2.connect();
    assert.deepEqual(cb2.seen.message.map((m) => m.body), bodies);
    assert.deepEqual(cb2.seen.message.map((m) => m.seq), bodies.map((_, i) => 4 + i));
    assert.ok(cb2.seen.synced.length >= 5, `paged: ${cb2.seen.synced.length} synced`);
    assert.equal(cb2.seen.synced[0].rooms[room.id].has_more, true);
    assert.equal(cb2.seen.synced.at(-1).rooms[room.id].has_more, false);
    // Live delivery goes on after the paging.
    await ca.send(room.id, 'live');
    await until(() => cb2.seen.message.some((m) => m.body === 'live'), 5000, 'live after paging');
    assert.equal(cb2.lastSeq(room.id), 27);
  } finally {
    ca.close();
    cb1.close();
    if (cb2) cb2.close();
    await srv.stop();
  }
});

test('token expiry mid-session: the client keeps working and loses nothing', async () => {
  // Access tokens live 2 s: the SDK refreshes them (the refresh operation where the server has
  // it, else a reconnect with the new token) many times during the test.
  const srv = await startChatd({ 'access-ttl': 2 });
  const a = await newUser(srv.base, 'a');
  const b = await newUser(srv.base, 'b');
  let refreshes = 0;
  const countingFetch = (url, init) => {
    if (String(url).endsWith('/v1/auth/refresh')) refreshes++;
    return fetch(url, init);
  };
  a.auth.fetch = countingFetch;
  b.auth.fetch = countingFetch;
  const ca = client(srv.base, a);
  const cb = client(srv.base, b);
  try {
    await Promise.all([ca.connect(), cb.connect()]);
    const room = await ca.createRoom({ name: 'ttl', members: [b.id] });
    const bodies = [];
    const t0 = Date.now();
    for (let i = 0; Date.now() - t0 < 9000; i++) {
      const body = `tick ${i}`;
      bodies.push(body);
      await ca.send(room.id, body);
      await sleep(50);
    }
    await until(() => cb.seen.message.length >= bodies.length, 10000, 'b gets everything');
    await sleep(200);
    assertExactlyOnce(cb, room.id, a.id, bodies);
    assert.ok(refreshes >= 4, `tokens were refreshed (${refreshes})`);
    // A server with the refresh operation kept the sockets open (no reconnect at all); one
    // without it answered unknown_type once and the client reconnected with each new token.
    for (const c of [ca, cb]) {
      const reconnects = c.seen.state.filter((s) => s.state === 'offline').length;
      if (c.refreshOp) assert.equal(reconnects, 0, 'refreshed in place, no reconnect');
      else assert.ok(reconnects >= 2, `reconnected with new tokens (${reconnects})`);
    }
    // Whatever the server supports, the clients are still online and in sync.
    assert.equal(ca.state, 'online');
    assert.equal(cb.state, 'online');
    const r = await cb.read(room.id, cb.lastSeq(room.id));
    assert.equal(r.unread, 0);
  } finally {
    ca.close();
    cb.close();
    await srv.stop();
  }
});
