'use strict';
// The outbox and the event stream (GET /v1/server/events): every committed log entry, user
// and room creation becomes an event in the same transaction, at a global position in commit
// order, with a stable id; a consumer that keeps its own position pages through it with no gap
// and resumes after chatd is killed with SIGKILL right after acknowledging messages (whatever
// was acknowledged is in the stream exactly once); the long-poll answers when an event commits.

const { describe, it } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startChat, newUser, api, createRoom, connect, pump, fullHistory, withClients, nextId } = require('./lib/chat');
const { createKey, serverApi } = require('./lib/server_api');

const T = { timeout: 60000 };
const FAST_MSGS = { 'msg-rate': 1000000, 'msg-burst': 1000000 };

/** Read every event after `after` in pages of `limit`: {events, next}. */
async function drain(sapi, after, limit = 50) {
  const events = [];
  for (let guard = 0; guard < 100000; guard++) {
    const r = await sapi.get(`/v1/server/events?after=${after}&limit=${limit}`);
    assert.equal(r.status, 200, r.text);
    events.push(...r.body.events);
    if (r.body.events.length === 0) {
      assert.equal(r.body.next, after, 'an empty page keeps the position');
      return { events, next: after };
    }
    assert.equal(r.body.next, r.body.events[r.body.events.length - 1].pos);
    after = r.body.next;
  }
  throw new Error('the stream did not end');
}

/** Positions first, first + 1, ...: no gap, no repeat. */
function assertNoGap(events, first) {
  events.forEach((e, i) => {
    if (e.pos !== first + i) assert.fail(`expected pos ${first + i} at ${i}, got ${e.pos}`);
  });
}

describe('outbox: the event stream', () => {
  it('users, rooms, members, room changes and messages, in commit order, with stable ids and the entries\' JSON', T, async () => {
    const srv = await startChat();
    try {
      const sapi = serverApi(srv, createKey(srv, 'stream').key);
      const start = (await drain(sapi, 0)).next;
      const alice = await newUser(srv, 'oa');
      const bob = await newUser(srv, 'ob');
      const room = await createRoom(srv, alice, [bob], { name: 'streamed' });
      assert.equal((await api(srv, alice).patch(`/v1/rooms/${room.id}`, { topic: 'new topic' })).status, 200);
      const c = await connect(srv, alice);
      const acks = await pump(c, room.id, 20, { prefix: 'ob' });
      await c.close();

      const { events } = await drain(sapi, start, 7);
      assertNoGap(events, start + 1);
      assert.equal(new Set(events.map((e) => e.id)).size, events.length, 'ids are unique');
      const types = events.map((e) => e.type);
      assert.deepEqual(types.slice(0, 5), ['user.created', 'user.created', 'room.created', 'member', 'member']);
      assert.equal(types[5], 'room');
      assert.deepEqual(types.slice(6), Array(20).fill('message'));
      assert.equal(events[0].data.user, alice.id);
      assert.equal(events[0].data.username, alice.username);
      assert.equal(events[0].room, null);
      assert.equal(events[2].id, `rc_${room.id.slice(2)}`);
      assert.equal(events[2].data.name, 'streamed');
      assert.equal(events[5].data.topic, 'new topic');
      // Log entries carry exactly what history shows, under the id m_/e_<room>_<seq>.
      const hist = await fullHistory(srv, alice, room.id);
      const logEvents = events.filter((e) => ['message', 'member', 'room'].includes(e.type));
      assert.deepEqual(logEvents.map((e) => e.data), hist);
      for (const e of logEvents) {
        assert.equal(e.room, room.id);
        assert.equal(e.id, `${e.type === 'message' ? 'm' : 'e'}_${room.id.slice(2)}_${e.data.seq}`);
        assert.equal(e.ts, e.data.ts);
      }
      assert.deepEqual(logEvents.filter((e) => e.type === 'message').map((e) => e.data.seq), acks.map((a) => a.seq));
    } finally {
      await srv.stop();
    }
  });

  it('the long-poll answers when an event commits, and answers empty after wait= seconds', T, async () => {
    const srv = await startChat();
    try {
      const sapi = serverApi(srv, createKey(srv, 'poll').key);
      const alice = await newUser(srv, 'op');
      const room = await createRoom(srv, alice);
      const { next } = await drain(sapi, 0);
      const poll = sapi.get(`/v1/server/events?after=${next}&wait=20`, { timeoutMs: 30000 });
      const sent = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'wake up', client_msg_id: 'w1' });
      assert.equal(sent.status, 201, sent.text);
      const r = await poll;
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.events.length, 1);
      assert.equal(r.body.events[0].pos, next + 1);
      assert.equal(r.body.events[0].data.body, 'wake up');
      const empty = await sapi.get(`/v1/server/events?after=${next + 1}&wait=1`);
      assert.equal(empty.status, 200);
      assert.deepEqual(empty.body, { events: [], next: next + 1 });
      for (const q of ['limit=0', 'limit=1001', 'after=-1', 'wait=x', 'after=1&after=2']) {
        const bad = await sapi.get(`/v1/server/events?${q}`);
        assert.equal(bad.status, 400, `${q}: ${bad.text}`);
      }
    } finally {
      await srv.stop();
    }
  });

  it('kill -9 right after acks: a consumer resumes from its saved position with no gap, every acked message once', T, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-outbox-'));
    let srv = await startChat(FAST_MSGS, { dataDir: dir });
    try {
      const key = createKey(srv, 'consumer').key;
      let sapi = serverApi(srv, key);
      const alice = await newUser(srv, 'ok');
      const room = await createRoom(srv, alice);
      // The consumer takes part of the stream and saves its position (here: a variable).
      const first = await drain(sapi, 0);
      let saved = first.next;
      const seen = [...first.events];

      const c = await connect(srv, alice);
      const acks = await pump(c, room.id, 200, { prefix: 'k9', window: 50 });
      // Half of them consumed, position saved; then SIGKILL with the rest unread by anyone.
      const part = await sapi.get(`/v1/server/events?after=${saved}&limit=100`);
      seen.push(...part.body.events);
      saved = part.body.next;
      c.ws.terminate();
      srv.proc.kill('SIGKILL'); // our own child, by PID
      const info = await srv.exited;
      assert.equal(info.signal, 'SIGKILL');
      srv.assertNoSanitizerReport();

      srv = await startChat(FAST_MSGS, { dataDir: dir });
      sapi = serverApi(srv, key);
      const rest = await drain(sapi, saved, 37);
      assertNoGap(rest.events, saved + 1);
      seen.push(...rest.events);
      assertNoGap(seen, 1);
      const msgIds = seen.filter((e) => e.type === 'message').map((e) => e.id);
      assert.equal(new Set(msgIds).size, msgIds.length, 'no event twice');
      for (const a of acks) assert.ok(msgIds.includes(`m_${room.id.slice(2)}_${a.seq}`), `acked seq ${a.seq} missing from the stream`);
      // A consumer starting over reads the same stream.
      const again = await drain(sapi, 0, 100);
      assert.deepEqual(again.events.map((e) => e.id), seen.map((e) => e.id));
    } finally {
      await srv.stop({ removeDataDir: false });
      srv.removeDataDir(); // the directory, and on PostgreSQL its schema
    }
  });

  it('edits, deletes, reactions, thread replies and attachments: each event is the frame WebSocket members got', T, async () => {
    const srv = await startChat({ 'upload-rate': 1000 });
    try {
      const sapi = serverApi(srv, createKey(srv, 'ops').key);
      const alice = await newUser(srv, 'oo');
      const bob = await newUser(srv, 'oo');
      const carol = await newUser(srv, 'oo'); // only listens: senders get acks, not their own frames
      const room = (await createRoom(srv, alice, [bob, carol])).id;
      const start = (await drain(sapi, 0)).next;
      const up = await fetch(`http://127.0.0.1:${srv.port}/v1/uploads?name=a.txt`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${alice.token}`, 'Content-Type': 'text/plain' },
        body: 'attached bytes\n',
      });
      assert.equal(up.status, 201);
      const att = (await up.json()).attachment;
      const ca = await connect(srv, alice);
      const cb = await connect(srv, bob);
      const cc = await connect(srv, carol);
      await withClients([ca, cb, cc], async () => {
        const ok = (m) => assert.equal(m.type, 'ack', JSON.stringify(m));
        const root = await ca.req({ type: 'send', room, body: 'root', client_msg_id: nextId('o'), attachments: [att.id] });
        ok(root);
        ok(await cb.req({ type: 'send', room, body: 'in thread', client_msg_id: nextId('o'), thread: root.seq, reply_to: root.seq }));
        ok(await ca.req({ type: 'edit', room, seq: root.seq, body: 'root, edited' }));
        ok(await cb.req({ type: 'react', room, seq: root.seq, emoji: '👍', on: true }));
        const gone = await cb.sendMsg(room, 'to be deleted');
        ok(gone);
        ok(await cb.req({ type: 'delete', room, seq: gone.seq }));
        const frames = await cc.waitFor((c) => {
          const e = c.entries(room).filter((m) => m.seq > root.seq - 1);
          return e.length >= 6 && e;
        }, 10000, 'six entries');
        const { events } = await drain(sapi, start);
        const logged = events.filter((e) => e.room === room && e.data.seq >= root.seq);
        assert.deepEqual(logged.map((e) => e.type), ['message', 'message', 'edit', 'reaction', 'message', 'delete']);
        // The stream reads the log when it is read: a message edited or deleted since carries its
        // current text, as history does (the edit and delete entries carry the change itself).
        const expected = frames.slice(0, 6).map((f) => ({ ...f }));
        expected[0].body = 'root, edited';
        expected[4].body = '';
        assert.deepEqual(logged.map((e) => e.data), expected);
        assert.equal(logged[0].data.attachments[0].id, att.id);
        assert.equal(logged[1].data.thread, root.seq);
        assert.equal(logged[1].data.reply_to, root.seq);
        assert.equal(logged[2].id, `e_${room.slice(2)}_${root.seq + 2}`);
      });
    } finally {
      await srv.stop();
    }
  });
});
