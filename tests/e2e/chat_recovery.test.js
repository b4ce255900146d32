'use strict';
// Durability and recovery (docs/PROTOCOL.md, "Durability", "Start of live delivery", "sync",
// "Sync paging"): kill -9 right after the acks, restart, nothing acked is lost; a client that was
// away replays what it missed with sync, merged with the live stream without a gap or a duplicate,
// also while messages keep coming; large gaps are paged with has_more; membership changes made
// while offline are replayed.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  startChat,
  newUser,
  api,
  createRoom,
  fullHistory,
  connect,
  expectNothing,
  assertContiguous,
  withClients,
  pump,
  isLog,
  sleep,
} = require('./lib/chat');
const jwt = require('./lib/jwt');

const FAST_MSGS = { 'msg-rate': 1000000, 'msg-burst': 1000000 };

describe('chat recovery', () => {
  describe('durability', () => {
    let dir;
    let srv;
    before(() => {
      dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-dur-'));
    });
    after(async () => {
      if (srv) await srv.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    });

    it('kill -9 right after the last ack: after a restart every acked message is in history, resends stay duplicates', { timeout: 90000 }, async () => {
      const key = jwt.makeKey('dur');
      const args = { ...FAST_MSGS, 'jwt-keys': key.spec };
      srv = await startChat(args, { dataDir: dir });
      const [a, b, c] = await Promise.all([newUser(srv, 'dur'), newUser(srv, 'dur'), newUser(srv, 'dur')]);
      const room = await createRoom(srv, a, [b, c]);
      const senders = [await connect(srv, a), await connect(srv, b), await connect(srv, c)];
      const N = 300;
      const PER = N / senders.length;
      const acked = new Map(); // client_msg_id -> {seq, body, sender}
      let done = 0;
      // three senders fire 100 messages each without waiting; the kill follows the 300th ack
      const collectors = senders.map((s) => s.collect((m) => m.type === 'ack' || m.type === 'error'));
      for (let k = 0; k < PER; k++) {
        for (const [i, s] of senders.entries()) {
          s.send({ type: 'send', id: `d${i}-${k}`, room: room.id, body: `durable ${i}/${k} ✓`, client_msg_id: `dur-${i}-${k}` });
        }
      }
      await new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${done}/${N} acks`)), 60000);
        for (const [i, s] of senders.entries()) {
          s.waitFor(() => collectors[i].update().length >= PER, 60000, 'acks').then(() => {
            done += PER;
            if (done === N) {
              srv.proc.kill('SIGKILL'); // our own child, right after the last ack
              clearTimeout(timer);
              resolve();
            }
          }, reject);
        }
      });
      const info = await srv.exited;
      assert.equal(info.signal, 'SIGKILL');
      for (const [i, col] of collectors.entries()) {
        for (const m of col.items) {
          assert.equal(m.type, 'ack', JSON.stringify(m));
          const k = m.client_msg_id.split('-')[2];
          acked.set(m.client_msg_id, { seq: m.seq, body: `durable ${i}/${k} ✓`, sender: senders[i].user.id });
        }
      }
      for (const s of senders) s.terminate();
      assert.equal(acked.size, N);

      srv = await startChat(args, { dataDir: dir });
      const h = await fullHistory(srv, b, room.id);
      const bySeq = new Map(h.map((m) => [m.seq, m]));
      for (const [cmid, want] of acked) {
        const m = bySeq.get(want.seq);
        assert.ok(m, `acked seq ${want.seq} (${cmid}) lost after kill -9`);
        assert.equal(m.type, 'message');
        assert.equal(m.client_msg_id, cmid);
        assert.equal(m.body, want.body);
        assert.equal(m.sender, want.sender);
      }
      assertContiguous(h.map((m) => m.seq), 1, 'history after restart');
      assert.equal(h.length, 3 + N);
      const g = await api(srv, a).get(`/v1/rooms/${room.id}`);
      assert.equal(g.body.room.last_seq, 3 + N);
      // idempotency survives the crash
      const [cmid, want] = [...acked].find(([, v]) => v.sender === a.id);
      const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'again', client_msg_id: cmid });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.duplicate, true);
      assert.equal(r.body.seq, want.seq);
      // and new messages continue the sequence
      const ca = await connect(srv, a);
      await withClients([ca], async () => {
        const ack = await ca.sendMsg(room.id, 'after restart');
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        assert.equal(ack.seq, 3 + N + 1);
      });
      await srv.stop();
      srv = null;
    });
  });

  describe('sync', () => {
    let srv;
    before(async () => {
      srv = await startChat(FAST_MSGS);
    });
    after(async () => {
      if (srv) await srv.stop();
    });

    it('a client that missed 5,000 messages gets exactly those, in order, then synced with has_more false, then live', { timeout: 120000 }, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'sy'), newUser(srv, 'sy')]);
      const room = await createRoom(srv, a, [b]);
      const ca = await connect(srv, a);
      const cb = await connect(srv, b);
      let lastSeen;
      await withClients([ca, cb], async () => {
        const ack = await ca.sendMsg(room.id, 'before you go');
        const m = await cb.next((x) => x.type === 'message' && x.seq === ack.seq);
        lastSeen = m.seq;
        await cb.close();
        const N = 5000;
        const acks = await pump(ca, room.id, N, { window: 500, prefix: 'miss', timeoutMs: 90000 });
        assert.equal(acks.length, N);
        const want = new Map(acks.map((x) => [x.seq, x.client_msg_id]));

        const cb2 = await connect(srv, b, { sync: { [room.id]: lastSeen }, timeoutMs: 60000 });
        await withClients([cb2], async () => {
          const synced = cb2.synced;
          assert.deepEqual(synced.rooms, { [room.id]: { last_seq: lastSeen + N, has_more: false } });
          const idx = cb2.messages.indexOf(synced);
          const replay = cb2.messages.slice(0, idx).filter(isLog);
          assert.equal(replay.length, N, `replayed ${replay.length}, want ${N}`);
          assertContiguous(replay.map((x) => x.seq), lastSeen + 1, 'replay');
          for (const x of replay) {
            assert.equal(x.type, 'message');
            assert.equal(x.client_msg_id, want.get(x.seq));
            assert.equal(x.body, `miss ${x.client_msg_id.split('-')[1]}`);
            assert.equal(x.sender, a.id);
          }
          // live delivery continues right after
          const live = await ca.sendMsg(room.id, 'welcome back');
          assert.equal(live.seq, lastSeen + N + 1);
          await cb2.next((x) => x.type === 'message' && x.seq === live.seq);
          await expectNothing(cb2, () => false, 200);
          assertContiguous(cb2.entries(room.id).map((x) => x.seq), lastSeen + 1, 'replay + live');
        });
      });
    });

    it('sync while a sender keeps sending: the reconnected streams are contiguous with no duplicate up to the last message', { timeout: 120000 }, async () => {
      const [a, b, c] = await Promise.all([newUser(srv, 'sc'), newUser(srv, 'sc'), newUser(srv, 'sc')]);
      const room = await createRoom(srv, a, [b, c]);
      const ca = await connect(srv, a);
      const cb = await connect(srv, b);
      const clients = [ca, cb];
      await withClients(clients, async () => {
        const N = 3000;
        let acked = 0;
        const sending = pump(ca, room.id, N, { window: 40, prefix: 'flow', timeoutMs: 90000, onAck: (n) => (acked = n) });
        const lastOf = (cl) => {
          const e = cl.entries(room.id);
          return e.length ? e[e.length - 1].seq : 0;
        };
        // b drops twice in the middle of the flow and comes back with sync from what it saw;
        // c joins the flow with a full replay from 0.
        const streams = [];
        let cur = cb;
        for (const dropAt of [400, 1400]) {
          await cur.waitFor(() => lastOf(cur) >= dropAt, 60000, `seq ${dropAt}`);
          cur.terminate(); // abrupt: no close handshake
          const seen = lastOf(cur);
          const target = acked + (dropAt === 400 ? 150 : 700); // the second gap spans several storage pages
          await ca.waitFor(() => acked >= target || acked >= N, 60000, 'more acks while b is away');
          if (streams.length) streams[streams.length - 1].dropped = true;
          cur = await connect(srv, b, { sync: { [room.id]: seen }, timeoutMs: 60000 });
          clients.push(cur);
          streams.push({ client: cur, from: seen + 1 });
        }
        const cc = await connect(srv, c, { sync: { [room.id]: 0 }, timeoutMs: 60000 });
        clients.push(cc);
        streams.push({ client: cc, from: 1 });

        const acks = await sending;
        const last = Math.max(...acks.map((x) => x.seq));
        assert.equal(last, 3 + N);
        for (const [i, { client, dropped }] of streams.entries()) {
          if (!dropped) await client.waitFor(() => lastOf(client) >= last, 60000, `seq ${last} on stream ${i}`);
        }
        await sleep(300); // anything doubled after the last one would show now
        for (const [i, { client, from, dropped }] of streams.entries()) {
          const seqs = client.entries(room.id).map((x) => x.seq);
          assertContiguous(seqs, from, `stream ${i}`);
          // a stream cut by the next drop ends wherever it was; the others reach the last message
          if (!dropped) assert.equal(seqs.length, last - from + 1, `stream ${i}: count`);
          else assert.ok(seqs.length > 0, `stream ${i} received nothing`);
          const s = client.synced;
          assert.equal(s.type, 'synced');
          assert.equal(s.rooms[room.id].has_more, false);
          assert.ok(s.rooms[room.id].last_seq >= from - 1);
        }
      });
    });

    it('events committed between the hello and the first request are held, not lost', { timeout: 30000 }, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'hd'), newUser(srv, 'hd')]);
      const room = await createRoom(srv, a, [b]);
      for (const first of ['sync', 'ping']) {
        const cb = await connect(srv, b, { sync: false });
        await withClients([cb], async () => {
          const seqs = [];
          for (let i = 0; i < 3; i++) {
            const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: `held ${i}`, client_msg_id: `held-${first}-${i}` });
            assert.equal(r.status, 201, r.text);
            seqs.push(r.body.seq);
          }
          await expectNothing(cb, isLog, 200, 'entry before the first request');
          const reply = first === 'sync' ? await cb.req({ type: 'sync', rooms: {} }) : await cb.req({ type: 'ping' });
          assert.equal(reply.type, first === 'sync' ? 'synced' : 'pong');
          await cb.waitFor(() => cb.entries(room.id).length >= 3, 5000, 'the held entries');
          await sleep(200);
          assert.deepEqual(cb.entries(room.id).map((m) => m.seq), seqs);
        });
      }
    });

    it('membership and room changes made while offline are replayed by sync; a room left offline answers not_member', { timeout: 30000 }, async () => {
      const [a, b, c, d] = await Promise.all([newUser(srv, 'mb'), newUser(srv, 'mb'), newUser(srv, 'mb'), newUser(srv, 'mb')]);
      const room = await createRoom(srv, a, [b, c]);
      const gone = await createRoom(srv, a, [b]);
      const cb = await connect(srv, b, { sync: { [room.id]: 0 } });
      const seen = cb.entries(room.id).map((m) => m.seq);
      assert.deepEqual(seen, [1, 2, 3]);
      await cb.close();

      const x = api(srv, a);
      assert.equal((await x.post(`/v1/rooms/${room.id}/members`, { user_id: d.id })).status, 200);
      assert.equal((await x.patch(`/v1/rooms/${room.id}`, { name: 'while you were out' })).status, 200);
      assert.equal((await x.del(`/v1/rooms/${room.id}/members/${c.id}`)).status, 204);
      assert.equal((await x.post(`/v1/rooms/${room.id}/messages`, { body: 'news', client_msg_id: 'mb-1' })).status, 201);
      assert.equal((await x.del(`/v1/rooms/${gone.id}/members/${b.id}`)).status, 204);
      const added = await createRoom(srv, a, [b], { name: 'new while offline' });

      const cb2 = await connect(srv, b, { sync: { [room.id]: 3, [gone.id]: 2, [added.id]: 0 } });
      await withClients([cb2], async () => {
        assert.equal(cb2.hello.rooms, 2);
        const r = cb2.entries(room.id);
        assert.deepEqual(r.map((m) => m.seq), [4, 5, 6, 7]);
        assert.deepEqual([r[0].type, r[0].action, r[0].user, r[0].by], ['member', 'join', d.id, a.id]);
        assert.deepEqual([r[1].type, r[1].name], ['room', 'while you were out']);
        assert.deepEqual([r[2].type, r[2].action, r[2].user, r[2].member_count], ['member', 'kick', c.id, 3]);
        assert.deepEqual([r[3].type, r[3].body, r[3].sender], ['message', 'news', a.id]);
        assert.deepEqual(cb2.entries(added.id).map((m) => [m.seq, m.action, m.user]), [[1, 'join', a.id], [2, 'join', b.id]]);
        assert.deepEqual(cb2.entries(gone.id), []);
        assert.deepEqual(cb2.synced.rooms, {
          [room.id]: { last_seq: 7, has_more: false },
          [gone.id]: { error: 'not_member' },
          [added.id]: { last_seq: 2, has_more: false },
        });
      });
    });

    it('sync edge cases: a last seq past the end replays nothing; a bad value answers invalid_field', { timeout: 30000 }, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'se'), newUser(srv, 'se')]);
      const room = await createRoom(srv, a, [b]);
      const cb = await connect(srv, b, { sync: { [room.id]: 1000000 } });
      await withClients([cb], async () => {
        assert.deepEqual(cb.synced.rooms, { [room.id]: { last_seq: 2, has_more: false } });
        assert.deepEqual(cb.entries(room.id), []);
        const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'live', client_msg_id: 'se-1' });
        const m = await cb.next((x) => x.type === 'message');
        assert.equal(m.seq, r.body.seq);
        const bad = await cb.req({ type: 'sync', rooms: { [room.id]: 'x' } });
        assert.deepEqual(bad.rooms, { [room.id]: { error: 'invalid_field' } });
        const bad2 = await cb.req({ type: 'sync', rooms: [] });
        assert.equal(bad2.type, 'error');
        assert.equal(bad2.code, 'invalid_field');
        // a second sync from an older seq replays again (clients de-duplicate by seq)
        const again = await cb.req({ type: 'sync', rooms: { [room.id]: 1 } });
        assert.deepEqual(again.rooms, { [room.id]: { last_seq: 3, has_more: false } });
        assert.deepEqual(cb.entries(room.id).map((x) => x.seq), [3, 2, 3]);
      });
    });
  });

  describe('requests racing a replay', () => {
    let srv;
    before(async () => {
      srv = await startChat(FAST_MSGS);
    });
    after(async () => {
      if (srv) await srv.stop();
    });

    // A room with 3,000 entries, and a connection that replays it from 0 (several storage pages).
    async function bigRoomAndReplay() {
      const [a, b] = await Promise.all([newUser(srv, 'rr'), newUser(srv, 'rr')]);
      const room = await createRoom(srv, a, [b]);
      const ca = await connect(srv, a);
      await pump(ca, room.id, 3000, { window: 500, prefix: 'fill', timeoutMs: 60000 });
      const cb = await connect(srv, b, { sync: false });
      cb.send({ type: 'sync', id: 'replay', rooms: { [room.id]: 0 } });
      return { a, b, room, ca, cb };
    }

    // The origin connection's ack waits for its place in the stream while the subscription
    // replays, and replaces its own message there.
    it('a send during the connection\'s own replay: the ack takes the message\'s place in seq order, no echo', {
      timeout: 90000,
    }, async () => {
      const { room, ca, cb } = await bigRoomAndReplay();
      await withClients([ca, cb], async () => {
        cb.send({ type: 'send', id: 'mine', room: room.id, body: 'during replay', client_msg_id: 'dr-1' });
        const ack = await cb.next((m) => m.id === 'mine', 30000);
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        await cb.waitFor(() => cb.entries(room.id).some((m) => m.seq === ack.seq - 1), 30000, `seq ${ack.seq - 1}`);
        await sleep(300);
        const stream = cb.messages.filter((m) => m.type === 'ack' || (isLog(m) && m.room === room.id));
        assertContiguous(stream.map((m) => m.seq), 1, 'replay with the ack in its place');
        assert.ok(!cb.messages.some((m) => m.type === 'message' && m.client_msg_id === 'dr-1'), 'own message echoed besides the ack');
      });
    });

    // A kick during a replay: the connection gets everything up to and including the kick
    // entry, then the subscription ends.
    it('a member kicked while its connection replays gets the replay up to the kick entry (and learns of the kick)', {
      timeout: 90000,
    }, async () => {
      const { a, b, room, ca, cb } = await bigRoomAndReplay();
      await withClients([ca, cb], async () => {
        const k = await api(srv, a).del(`/v1/rooms/${room.id}/members/${b.id}`);
        assert.equal(k.status, 204, k.text);
        const h = await api(srv, a).get(`/v1/rooms/${room.id}/messages?limit=1`);
        const kickSeq = h.body.messages[0].seq;
        const synced = await cb.next((m) => m.type === 'synced', 30000);
        await sleep(500);
        const es = cb.entries(room.id);
        const r = synced.rooms[room.id];
        // The replay may finish before the kick commits (synced then says caught up below it, and
        // the kick follows live); once the kick entry came first, synced must account for it.
        const kickIdx = cb.messages.findIndex((m) => isLog(m) && m.room === room.id && m.seq === kickSeq);
        const syncedIdx = cb.messages.indexOf(synced);
        if (kickIdx >= 0 && kickIdx < syncedIdx)
          assert.ok(!(r && r.has_more === false && r.last_seq < kickSeq), `synced after the kick entry says caught up at ${JSON.stringify(r)}; the room ends at ${kickSeq}`);
        const last = es[es.length - 1];
        assert.ok(last && last.type === 'member' && last.action === 'kick' && last.user === b.id, `last entry: ${JSON.stringify(last)}`);
        assertContiguous(es.map((m) => m.seq), 1, 'replay up to the kick');
      });
    });
  });

  describe('sync paging (--sync-max 100)', () => {
    let srv;
    before(async () => {
      srv = await startChat({ ...FAST_MSGS, 'sync-max': 100 });
    });
    after(async () => {
      if (srv) await srv.stop();
    });

    it('250 missed: has_more true at 100 and 200 (no live events of the room meanwhile), then false; nothing missed or doubled', { timeout: 60000 }, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'pg'), newUser(srv, 'pg')]);
      const room = await createRoom(srv, a, [b]);
      const ca = await connect(srv, a);
      await withClients([ca], async () => {
        const L = 2; // b saw the two member entries
        await pump(ca, room.id, 250, { window: 250, prefix: 'page' });
        const cb = await connect(srv, b, { sync: { [room.id]: L } });
        await withClients([cb], async () => {
          assert.deepEqual(cb.synced.rooms, { [room.id]: { last_seq: L + 100, has_more: true } });
          assert.equal(cb.entries(room.id).length, 100);
          // a live message now is not pushed while the room is paged
          const live1 = await ca.sendMsg(room.id, 'during paging');
          assert.equal(live1.seq, L + 251);
          await expectNothing(cb, (m) => m.room === room.id, 400, 'live entry of a paged room');
          const s2 = await cb.req({ type: 'sync', rooms: { [room.id]: L + 100 } });
          assert.deepEqual(s2.rooms, { [room.id]: { last_seq: L + 200, has_more: true } });
          assert.equal(cb.entries(room.id).length, 200);
          const s3 = await cb.req({ type: 'sync', rooms: { [room.id]: L + 200 } });
          assert.deepEqual(s3.rooms, { [room.id]: { last_seq: L + 251, has_more: false } });
          // now live again
          const live2 = await ca.sendMsg(room.id, 'after paging');
          await cb.next((m) => m.type === 'message' && m.seq === live2.seq);
          await sleep(200);
          const seqs = cb.entries(room.id).map((m) => m.seq);
          assertContiguous(seqs, L + 1, 'paged replay + live');
          assert.equal(seqs.length, 252);
        });
      });
    });
  });
});
