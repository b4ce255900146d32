'use strict';
// Chaos (issue 11, "Keep it proven"; docs/PROTOCOL.md "Durability", "Idempotency"): senders on
// many WebSockets (and two bots on REST) write into several rooms while chatd is killed with
// SIGKILL at random moments several times and restarted on the same data directory. Clients
// behave as real ones: they come back after the crash and resend every message that was not
// acknowledged, with the SAME client_msg_id. At the end, REST history and a sync from seq 0 are
// audited:
//   - every acknowledged (room, seq, client_msg_id) is in its room exactly once, at the acked seq
//     (an ack repeated after a resend carries the same seq);
//   - every room's seqs are gap-free 1..last_seq;
//   - no client_msg_id appears twice, and every message sent was eventually acknowledged.
// Everything random (kill moments, rooms, pauses) comes from one seed: CHAOS_SEED=<n> replays a
// schedule (the moments a kill lands between two frames still vary from run to run), and every
// failure message names the seed. No timing thresholds: kills follow acks, every wait has a
// generous bound. The whole file takes seconds (about 20 s with the sanitizer build on a busy
// 2-core machine).

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const WebSocket = require('ws');
const { startChat, newUser, api, createRoom, fullHistory, assertContiguous, sleep } = require('./lib/chat');
const { request } = require('./lib/http');
const jwt = require('./lib/jwt');

const SEED = Number(process.env.CHAOS_SEED || 20261202) >>> 0;
const CONNS = 16; // WebSockets sending at once
const USERS = 8; // two connections per user
const ROOMS = 5;
const KILLS = 5;
const PER_CONN = 150; // messages each connection sends in all
const REST_SENDERS = 2; // and bots posting over REST, one request at a time, same rules
const PER_REST = 60;
const TOTAL = CONNS * PER_CONN + REST_SENDERS * PER_REST;
const WINDOW = 8; // unacknowledged messages per connection at most
const MIN_GAP = 20; // acks between two kills at least (each restart must see progress)

/** xorshift32: the only source of randomness of the schedule. */
function rng(seed) {
  let s = seed || 1;
  const next = () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
  return { int: (n) => next() % n, range: (a, b) => a + (next() % (b - a + 1)) };
}

const tag = `[CHAOS_SEED=${SEED}]`;
const fail = (msg) => assert.fail(`${tag} ${msg}`);

/**
 * One sending client. It (re)connects to whatever server is current, waits for the hello, resends
 * everything unacknowledged with the same client_msg_id, then keeps at most WINDOW messages in
 * flight until it has sent PER_CONN. A lost connection (the kill) is simply reopened.
 */
class Sender {
  constructor(ctx, index, user, random) {
    this.ctx = ctx;
    this.index = index;
    this.user = user;
    this.random = random;
    this.next = 0; // next message number
    this.pending = new Map(); // client_msg_id -> {room, body}; sent, not acknowledged
    this.ws = null;
    this.open = false;
    this.reqNo = 0;
    this.connects = 0;
  }

  cmid(n) {
    return `chaos-${this.index}-${n}`;
  }

  done() {
    return this.next >= PER_CONN && this.pending.size === 0;
  }

  async run(deadline) {
    while (!this.done()) {
      if (Date.now() > deadline) fail(`sender ${this.index} not done before the deadline (${this.next}/${PER_CONN} sent, ${this.pending.size} unacknowledged)`);
      const srv = this.ctx.srv;
      if (!srv) {
        await sleep(20); // the server is being restarted
        continue;
      }
      try {
        await this.session(srv, deadline);
      } catch (e) {
        if (e.fatal) throw e;
      }
      if (!this.done()) await sleep(this.random.range(10, 60));
    }
  }

  /** One connection, until it closes or everything is acknowledged. */
  session(srv, deadline) {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(srv.wsUrl, { headers: { Authorization: `Bearer ${this.user.token}` }, handshakeTimeout: 10000 });
      this.ws = ws;
      let settled = false;
      const finish = (err) => {
        if (settled) return;
        settled = true;
        clearInterval(guard);
        this.open = false;
        if (err) reject(err);
        else resolve();
      };
      const guard = setInterval(() => {
        if (Date.now() > deadline) {
          ws.terminate();
          finish(Object.assign(new Error(`${tag} sender ${this.index}: deadline`), { fatal: true }));
        }
      }, 500);
      ws.on('error', () => {}); // a refused connect or a reset by the kill: 'close' follows
      ws.on('close', () => finish());
      ws.on('message', (data) => {
        let m;
        try {
          m = JSON.parse(data.toString());
        } catch {
          ws.terminate();
          finish(Object.assign(new Error(`${tag} sender ${this.index}: a frame that is not JSON`), { fatal: true }));
          return;
        }
        if (m.type === 'hello') {
          this.open = true;
          this.connects++;
          // A real client after a reconnect: everything not acknowledged goes again, same ids.
          for (const [cmid, p] of this.pending) this.sendOne(cmid, p);
          this.fill();
        } else if (m.type === 'ack') {
          try {
            this.onAck(m);
          } catch (e) {
            ws.terminate();
            finish(Object.assign(e, { fatal: true })); // a broken promise of the server
            return;
          }
          if (this.done()) ws.close(1000);
          else this.fill();
        } else if (m.type === 'error' && typeof m.id === 'string' && m.id.startsWith('r')) {
          if (m.code === 'rate_limited' || m.code === 'unavailable') {
            // Retryable: the message stays pending and goes again on the next connection.
            ws.terminate();
            return;
          }
          ws.terminate();
          finish(Object.assign(new Error(`${tag} sender ${this.index}: error reply ${JSON.stringify(m)}`), { fatal: true }));
        }
      });
    });
  }

  sendOne(cmid, p) {
    this.ws.send(JSON.stringify({ type: 'send', id: `r${++this.reqNo}`, room: p.room, client_msg_id: cmid, body: p.body }));
  }

  fill() {
    while (this.open && this.next < PER_CONN && this.pending.size < WINDOW) {
      const n = this.next++;
      const room = this.ctx.rooms[this.random.int(this.ctx.rooms.length)].id;
      const p = { room, body: `chaos ${this.index}/${n} seed ${SEED}` };
      const cmid = this.cmid(n);
      this.pending.set(cmid, p);
      this.ctx.sent.set(cmid, p);
      this.sendOne(cmid, p);
    }
  }

  onAck(m) {
    recordAck(this.ctx, m, this.user);
    this.pending.delete(m.client_msg_id);
  }
}

/** Check an ack (a WebSocket ack or a REST 200/201 body) against what was sent and record it. */
function recordAck(ctx, m, user) {
  const sent = ctx.sent.get(m.client_msg_id);
  if (!sent) fail(`an ack for a client_msg_id never sent: ${JSON.stringify(m)}`);
  if (m.room !== sent.room) fail(`ack in room ${m.room} for a message sent to ${sent.room}: ${JSON.stringify(m)}`);
  if (!Number.isInteger(m.seq) || m.seq < 1) fail(`ack without a valid seq: ${JSON.stringify(m)}`);
  const prev = ctx.acked.get(m.client_msg_id);
  if (prev) {
    // A resend of an acknowledged message (its ack raced the kill, or both acks arrived).
    if (prev.seq !== m.seq) fail(`${m.client_msg_id} acknowledged twice with different seqs: ${prev.seq} then ${m.seq} (duplicate=${m.duplicate})`);
    ctx.repeatAcks++;
  } else {
    ctx.acked.set(m.client_msg_id, { room: m.room, seq: m.seq, body: sent.body, sender: user.id });
    if (m.duplicate === true) ctx.dupFirst++; // stored before the kill, its ack was lost
    ctx.ackCount++;
    if (ctx.onAck) ctx.onAck();
  }
}

/**
 * A bot posting over REST (POST /v1/rooms/{id}/messages), one request at a time. A request that
 * fails without an answer (refused, reset by the kill, timed out) is retried with the same
 * client_msg_id until it is answered: 201, or 200 with duplicate:true when it had been stored.
 */
class RestSender {
  constructor(ctx, index, user, random) {
    Object.assign(this, { ctx, index, user, random, next: 0, requests: 0 });
  }

  async run(deadline) {
    for (; this.next < PER_REST; this.next++) {
      const cmid = `chaos-rest-${this.index}-${this.next}`;
      const p = { room: this.ctx.rooms[this.random.int(this.ctx.rooms.length)].id, body: `chaos rest ${this.index}/${this.next} seed ${SEED}` };
      this.ctx.sent.set(cmid, p);
      for (;;) {
        if (Date.now() > deadline) fail(`REST sender ${this.index} not done before the deadline (${this.next}/${PER_REST})`);
        const srv = this.ctx.srv;
        if (!srv) {
          await sleep(20);
          continue;
        }
        let r;
        try {
          this.requests++;
          r = await request(srv, 'POST', `/v1/rooms/${p.room}/messages`, { token: this.user.token, json: { body: p.body, client_msg_id: cmid }, timeoutMs: 10000 });
        } catch {
          await sleep(this.random.range(10, 60)); // no answer: the server is gone, ask again
          continue;
        }
        if (r.status === 201 || r.status === 200) {
          if ((r.status === 200) !== (r.body && r.body.duplicate === true)) fail(`REST ${cmid}: status ${r.status} with ${r.text}`);
          recordAck(this.ctx, r.body, this.user);
          break;
        }
        if (r.status === 429 || r.status === 503) {
          await sleep(this.random.range(10, 60));
          continue;
        }
        fail(`REST ${cmid}: HTTP ${r.status} ${r.text}`);
      }
    }
  }
}

/** Connect once, sync every room from seq 0, and return the entries by room (up to `synced`). */
function syncAll(srv, user, roomIds) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(srv.wsUrl, { headers: { Authorization: `Bearer ${user.token}` } });
    const byRoom = new Map(roomIds.map((r) => [r, []]));
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`${tag} sync audit: no synced within 60 s`));
    }, 60000);
    ws.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    ws.on('message', (data) => {
      const m = JSON.parse(data.toString());
      if (m.type === 'hello') {
        ws.send(JSON.stringify({ type: 'sync', id: 'audit', rooms: Object.fromEntries(roomIds.map((r) => [r, 0])) }));
      } else if (m.type === 'synced' && m.id === 'audit') {
        clearTimeout(timer);
        ws.close(1000);
        resolve({ byRoom, synced: m });
      } else if (m.room && byRoom.has(m.room) && Number.isInteger(m.seq)) {
        byRoom.get(m.room).push(m);
      }
    });
  });
}

describe('chaos: kill -9 at random moments under load', () => {
  const cleanups = [];
  after(async () => {
    for (const f of cleanups) await f();
  });

  // The default (synchronous=FULL) and the one the benchmarks use (NORMAL: a process crash loses
  // nothing either, only a power loss could). Each case takes seconds; 55 s is its bound.
  for (const sqliteSync of ['full', 'normal']) {
    it(`--sqlite-sync ${sqliteSync}: ${CONNS} WebSockets + ${REST_SENDERS} REST senders, ${ROOMS} rooms, ${KILLS} kills: every ack exactly once, every room gap-free`, { timeout: 60000 }, async (t) => {
      await chaos(t, sqliteSync, cleanups);
    });
  }
});

async function chaos(t, sqliteSync, cleanups) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-chaos-'));
  const ctx = { srv: null, rooms: [], sent: new Map(), acked: new Map(), ackCount: 0, repeatAcks: 0, dupFirst: 0 };
  cleanups.push(async () => {
    if (ctx.srv) await ctx.srv.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  });
  t.diagnostic(`CHAOS_SEED=${SEED} (set it to replay this schedule)`);
  const random = rng(SEED);
  const key = jwt.makeKey('chaos');
  // Rate limits stay on, raised for messages only (like the other durability tests).
  const args = { 'msg-rate': 1000000, 'msg-burst': 1000000, 'jwt-keys': key.spec, 'sqlite-sync': sqliteSync };
  const deadline = Date.now() + 55000;
  ctx.srv = await startChat(args, { dataDir: dir });
  const users = [];
  for (let i = 0; i < USERS; i++) users.push(await newUser(ctx.srv, 'chaos'));
  for (let r = 0; r < ROOMS; r++) ctx.rooms.push(await createRoom(ctx.srv, users[0], users.slice(1)));
  const baseSeq = new Map();
  for (const room of ctx.rooms) {
    const g = await api(ctx.srv, users[0]).get(`/v1/rooms/${room.id}`);
    assert.equal(g.status, 200, g.text);
    baseSeq.set(room.id, g.body.room.last_seq); // the membership entries before any message
  }

  const senders = [];
  for (let i = 0; i < CONNS; i++) senders.push(new Sender(ctx, i, users[i % USERS], rng((SEED ^ (0x9e3779b9 * (i + 1))) >>> 0)));
  const bots = [];
  for (let i = 0; i < REST_SENDERS; i++) bots.push(new RestSender(ctx, i, users[(i + 1) % USERS], rng((SEED ^ (0x85ebca6b * (i + 1))) >>> 0)));
  const running = Promise.all([...senders, ...bots].map((s) => s.run(deadline)));
  let failed = null;
  running.catch((e) => {
    failed = e;
    if (ctx.onAck) ctx.onAck(); // wake the killer
  });

  // The killer. Kill points are ack counts drawn from the seed, spread over 3-90 % of all the
  // messages (MIN_GAP apart); at each, after a random pause of 0-15 ms, SIGKILL.
  const total = TOTAL;
  const points = [];
  while (points.length < KILLS) {
    const p = Math.floor(total * 0.03) + random.int(Math.floor(total * 0.87));
    if (points.every((q) => Math.abs(q - p) >= MIN_GAP)) points.push(p);
  }
  points.sort((a, b) => a - b);
  const kills = [];
  for (let k = 0; k < KILLS; k++) {
    await new Promise((resolve) => {
      const check = () => {
        if (ctx.ackCount >= Math.min(points[k], total) || failed) {
          ctx.onAck = null;
          resolve();
        }
      };
      ctx.onAck = check;
      check();
    });
    if (failed) throw failed;
    await sleep(random.int(16)); // a random moment within the stream of acks (or the resends)
    const srv = ctx.srv;
    ctx.srv = null; // clients wait for the new server
    const inFlight = senders.reduce((n, s) => n + s.pending.size, 0);
    srv.proc.kill('SIGKILL'); // our own child, by PID
    const info = await srv.exited;
    assert.equal(info.signal, 'SIGKILL', `${tag} chatd exited by itself before kill ${k + 1}: ${JSON.stringify(info)}\n${srv.tail()}`);
    srv.assertNoSanitizerReport();
    kills.push({ point: points[k], acks: ctx.ackCount, inFlight });
    await sleep(random.int(200)); // clients meet a closed port for a while
    ctx.srv = await startChat(args, { dataDir: dir });
    // The next kill needs at least one ack on this server (it may come in the burst of resends).
    if (k + 1 < KILLS) points[k + 1] = Math.max(points[k + 1], ctx.ackCount + 1 + random.int(MIN_GAP));
  }
  t.diagnostic(`kills (planned at / done at acks, messages in flight): ${kills.map((x) => `${x.point}/${x.acks} ${x.inFlight}`).join(', ')}`);

  await running;
  if (failed) throw failed;
  const srv = ctx.srv;

  // ---- audit
  assert.equal(ctx.sent.size, TOTAL, `${tag} messages sent`);
  assert.equal(ctx.acked.size, ctx.sent.size, `${tag} every message sent was eventually acknowledged`);
  const seenCmid = new Map(); // client_msg_id -> "room/seq"
  let chaosMessages = 0;
  for (const room of ctx.rooms) {
    const h = await fullHistory(srv, users[1], room.id);
    const seqs = h.map((m) => m.seq);
    assertContiguous(seqs, 1, `${tag} history of room ${room.id}`);
    const g = await api(srv, users[0]).get(`/v1/rooms/${room.id}`);
    assert.equal(g.status, 200, g.text);
    assert.equal(g.body.room.last_seq, h.length, `${tag} room ${room.id}: last_seq against history length`);
    for (const m of h) {
      if (m.type !== 'message') continue;
      const where = `${room.id}/${m.seq}`;
      if (seenCmid.has(m.client_msg_id)) fail(`client_msg_id ${m.client_msg_id} stored twice: at ${seenCmid.get(m.client_msg_id)} and ${where}`);
      seenCmid.set(m.client_msg_id, where);
      const want = ctx.acked.get(m.client_msg_id);
      if (!want) fail(`message ${where} (${m.client_msg_id}) was never acknowledged`);
      assert.equal(m.room, room.id, `${tag} ${where}: room`);
      assert.equal(`${want.room}/${want.seq}`, where, `${tag} ${m.client_msg_id} acknowledged at ${want.room}/${want.seq}, stored at ${where}`);
      assert.equal(m.body, want.body, `${tag} ${m.client_msg_id}: body`);
      assert.equal(m.sender, want.sender, `${tag} ${m.client_msg_id}: sender`);
      chaosMessages++;
    }
    assert.equal(h.length - baseSeq.get(room.id), h.filter((m) => m.type === 'message').length, `${tag} room ${room.id}: only our messages after the membership entries`);
  }
  for (const [cmid, a] of ctx.acked) {
    if (!seenCmid.has(cmid)) fail(`acknowledged ${cmid} (${a.room}/${a.seq}) is not in history after ${KILLS} kills`);
  }
  assert.equal(chaosMessages, ctx.acked.size, `${tag} history holds every acknowledged message once`);

  // The same log through sync from 0: identical seqs and ids, room by room.
  const { byRoom, synced } = await syncAll(srv, users[2], ctx.rooms.map((r) => r.id));
  for (const room of ctx.rooms) {
    const h = await fullHistory(srv, users[1], room.id);
    const s = byRoom.get(room.id);
    assert.equal(synced.rooms[room.id].has_more, false, `${tag} sync of room ${room.id} fits in one reply`);
    assert.equal(synced.rooms[room.id].last_seq, h.length, `${tag} synced last_seq of room ${room.id}`);
    assert.deepEqual(s.map((m) => `${m.seq}:${m.client_msg_id || m.type}`), h.map((m) => `${m.seq}:${m.client_msg_id || m.type}`), `${tag} sync of room ${room.id} differs from its history`);
  }
  t.diagnostic(`${ctx.acked.size} messages acknowledged, ${ctx.repeatAcks} acks repeated for resends, ${ctx.dupFirst} first acked as duplicates (stored before a kill, ack lost), ${senders.reduce((n, s) => n + s.connects, 0)} connections opened, ${bots.reduce((n, b) => n + b.requests, 0)} REST requests for ${REST_SENDERS * PER_REST} messages`);

  await srv.stop();
  ctx.srv = null;
}
