'use strict';
// bench/soak/load.js - the mixed part of the soak load (bench/soak.sh), against chatd on
// 127.0.0.1 only:
//   - idle users: --conns WebSockets spread over --users users (several devices each), every one
//     subscribed to its rooms (each room has --members members) and receiving their messages;
//   - churn: --churn connections a second are closed and reopened, resuming with `sync` from the
//     last seq they saw in each room (as a real client would after a network change);
//   - REST history reads: --history reads a second, GET /v1/rooms/{id}/messages?limit=50, half of
//     them the latest page, half a page `before` a random seq;
//   - a sampling sender: --sample messages a second into the rooms, round robin, each awaiting its
//     durable ack, latency from send() to the ack.
// Every --every seconds it appends one CSV line (header first) to --every-file with the figures of
// that interval. It stops by itself after --duration seconds (hard exit 60 s later at most).
//
//   node load.js --url http://127.0.0.1:PORT --duration 3600 --every 60 --every-file mixed.csv

const http = require('node:http');
const fs = require('node:fs');
const WebSocket = require('ws');

const opt = {
  url: 'http://127.0.0.1:8080', duration: 60, every: 60, 'every-file': 'mixed.csv', users: 400,
  conns: 2000, rooms: 20, members: 40, churn: 10, history: 20, sample: 20, seed: 1,
};
for (let i = 2; i < process.argv.length; i += 2) {
  const k = process.argv[i].replace(/^--/, '');
  if (!(k in opt) || i + 1 >= process.argv.length) {
    console.error(`load.js: unknown or incomplete option ${process.argv[i]}`);
    process.exit(2);
  }
  opt[k] = typeof opt[k] === 'number' ? Number(process.argv[i + 1]) : process.argv[i + 1];
}
const base = new URL(opt.url);
if (!base.hostname.startsWith('127.')) {
  console.error('load.js: load goes to 127.0.0.0/8 only');
  process.exit(2);
}
const wsUrl = `ws://${base.host}/v1/ws`;
const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
let rng = opt.seed >>> 0 || 1;
const rand = (n) => {
  rng ^= rng << 13; rng >>>= 0; rng ^= rng >>> 17; rng ^= rng << 5; rng >>>= 0;
  return rng % n;
};
const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

function request(method, path, token, json) {
  return new Promise((resolve) => {
    const body = json === undefined ? null : Buffer.from(JSON.stringify(json));
    const headers = {};
    if (token) headers.Authorization = `Bearer ${token}`;
    if (body) { headers['Content-Type'] = 'application/json'; headers['Content-Length'] = body.length; }
    const req = http.request({ host: base.hostname, port: base.port, method, path, headers, agent, timeout: 30000 }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        let b;
        try { b = JSON.parse(Buffer.concat(chunks).toString('utf8')); } catch { b = undefined; }
        resolve({ status: res.statusCode, body: b });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', () => resolve({ status: 0 }));
    if (body) req.write(body);
    req.end();
  });
}

// ---- per-interval statistics
const iv = { reconnects: 0, reconnect_fail: 0, lost: 0, reads: 0, read_fail: 0, readMs: [], sent: 0, acked: 0, ackMs: [], deliveries: 0, errors: 0 };
const pct = (a, p) => {
  if (a.length === 0) return 0;
  a.sort((x, y) => x - y);
  return a[Math.min(a.length - 1, Math.max(0, Math.ceil((p / 100) * a.length) - 1))];
};
let t0 = 0;
function everyLine() {
  const f = opt['every-file'];
  if (!fs.existsSync(f) || fs.statSync(f).size === 0)
    fs.appendFileSync(f, 't_s,open,reconnects,reconnect_fail,lost,reads,read_fail,read_p50_ms,read_p99_ms,sample_sent,sample_acked,sample_ack_p50_ms,sample_ack_p99_ms,sample_ack_max_ms,deliveries,errors\n');
  const open = conns.filter((c) => c.ready).length;
  fs.appendFileSync(f, [((now() - t0) / 1000).toFixed(1), open, iv.reconnects, iv.reconnect_fail, iv.lost, iv.reads, iv.read_fail,
    pct(iv.readMs, 50).toFixed(3), pct(iv.readMs, 99).toFixed(3), iv.sent, iv.acked, pct(iv.ackMs, 50).toFixed(3),
    pct(iv.ackMs, 99).toFixed(3), pct(iv.ackMs, 100).toFixed(3), iv.deliveries, iv.errors].join(',') + '\n');
  Object.assign(iv, { reconnects: 0, reconnect_fail: 0, lost: 0, reads: 0, read_fail: 0, readMs: [], sent: 0, acked: 0, ackMs: [], deliveries: 0, errors: 0 });
}

// ---- connections
const users = [];
const rooms = []; // {id, members: [user index], last: highest seq seen by anyone}
const conns = [];
let stopping = false;

function openConn(c) {
  c.ready = false;
  c.closing = false; // a churned predecessor still closing is ignored from now on (ws !== c.ws)
  const ws = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${users[c.user].token}` }, handshakeTimeout: 15000 });
  c.ws = ws;
  ws.on('message', (data) => {
    if (ws !== c.ws) return; // a socket this client already replaced (closing after churn)
    let m;
    try { m = JSON.parse(data.toString()); } catch { iv.errors++; return; }
    if (m.type === 'hello') {
      // A reconnect resumes each room where it was; the first connection asks for nothing old.
      const want = {};
      for (const r of users[c.user].rooms) if (c.last[r]) want[rooms[r].id] = c.last[r];
      ws.send(JSON.stringify({ type: 'sync', id: 's', rooms: want }));
    } else if (m.type === 'synced') {
      c.ready = true;
    } else if (m.type === 'message') {
      iv.deliveries++;
      const r = roomIndex.get(m.room);
      if (r !== undefined && m.seq > (c.last[r] || 0)) c.last[r] = m.seq;
    } else if (m.type === 'error') {
      iv.errors++;
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => {
    if (ws !== c.ws) return; // the churned socket closing after its successor opened
    const wasReady = c.ready;
    c.ready = false;
    if (c.closing) { c.closing = false; return; }
    if (stopping) return;
    if (wasReady) iv.lost++; else iv.reconnect_fail++;
    setTimeout(() => { if (!stopping) openConn(c); }, 1000); // the server closed it: come back
  });
}
const roomIndex = new Map();

// ---- sampling sender (user 0 owns every room)
let sampler = null;
const pending = new Map();
let sampleNo = 0;
function openSampler() {
  const ws = new WebSocket(wsUrl, { headers: { Authorization: `Bearer ${users[0].token}` } });
  sampler = { ws, ready: false };
  ws.on('message', (data) => {
    const m = JSON.parse(data.toString());
    if (m.type === 'hello') ws.send(JSON.stringify({ type: 'sync', id: 's', rooms: {} }));
    else if (m.type === 'synced') sampler.ready = true;
    else if ((m.type === 'ack' || m.type === 'error') && pending.has(m.id)) {
      const t = pending.get(m.id);
      pending.delete(m.id);
      if (m.type === 'ack') { iv.acked++; iv.ackMs.push(now() - t); } else iv.errors++;
    }
  });
  ws.on('error', () => {});
  ws.on('close', () => { sampler.ready = false; pending.clear(); if (!stopping) setTimeout(openSampler, 1000); });
}

async function setup() {
  const prefix = `soak${process.pid}x${Date.now() % 100000}`;
  for (let i = 0; i < opt.users; i++) {
    const r = await request('POST', '/v1/auth/register', null, { username: `${prefix}_${i}`, password: 'soak-password-1' });
    if (r.status !== 201) throw new Error(`register: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    users.push({ id: r.body.user.id, token: r.body.access_token, rooms: [] });
  }
  for (let k = 0; k < opt.rooms; k++) {
    const r = await request('POST', '/v1/rooms', users[0].token, { name: `soak ${k}`, members: [] });
    if (r.status !== 201) throw new Error(`create room: HTTP ${r.status} ${JSON.stringify(r.body)}`);
    const room = { id: r.body.room.id, members: [0] };
    rooms.push(room);
    roomIndex.set(room.id, k);
    users[0].rooms.push(k);
    for (let j = 1; j < opt.members; j++) {
      const u = 1 + ((k * 7 + j * 13) % (opt.users - 1));
      if (room.members.includes(u)) continue;
      const a = await request('POST', `/v1/rooms/${room.id}/members`, users[0].token, { user_id: users[u].id });
      if (a.status / 100 !== 2) throw new Error(`add member: HTTP ${a.status} ${JSON.stringify(a.body)}`);
      room.members.push(u);
      users[u].rooms.push(k);
    }
  }
}

async function main() {
  const hard = setTimeout(() => { console.error('load.js: hard deadline'); process.exit(1); }, (opt.duration + 120) * 1000);
  hard.unref();
  await setup();
  // Connections over the users that are in at least one room, several devices per user.
  const inRooms = users.map((u, i) => i).filter((i) => i > 0 && users[i].rooms.length > 0);
  for (let j = 0; j < opt.conns; j++) {
    const c = { user: inRooms[j % inRooms.length], last: {}, ready: false, closing: false };
    conns.push(c);
    openConn(c);
    if (j % 100 === 99) await new Promise((r) => setTimeout(r, 50));
  }
  openSampler();
  t0 = now();
  console.error(`load.js: ${users.length} users, ${rooms.length} rooms, ${conns.length} connections; running ${opt.duration} s`);
  const end = t0 + opt.duration * 1000;
  const timers = [];
  // churn: close a few connections a second, reopen them 100 ms later
  timers.push(setInterval(() => {
    for (let k = 0; k < opt.churn; k++) {
      const c = conns[rand(conns.length)];
      if (!c.ready) continue; // (also: picked twice this second, or still reconnecting)
      c.ready = false;
      c.closing = true;
      c.ws.close(1000);
      iv.reconnects++;
      setTimeout(() => { if (!stopping) openConn(c); }, 100);
    }
  }, 1000));
  // history reads, spread over the second
  if (opt.history > 0)
    timers.push(setInterval(async () => {
      const k = rand(rooms.length);
      const room = rooms[k];
      const u = room.members[rand(room.members.length)];
      const top = Math.max(...conns.filter((c) => c.last[k]).slice(0, 5).map((c) => c.last[k]), 1);
      const q = rand(2) === 0 ? 'limit=50' : `before=${1 + rand(top)}&limit=50`;
      const t = now();
      const r = await request('GET', `/v1/rooms/${room.id}/messages?${q}`, users[u].token);
      iv.reads++;
      if (r.status === 200 && r.body && Array.isArray(r.body.messages)) iv.readMs.push(now() - t); else iv.read_fail++;
    }, 1000 / opt.history));
  if (opt.sample > 0)
    timers.push(setInterval(() => {
      if (!sampler || !sampler.ready) return;
      const n = sampleNo++;
      const id = `m${n}`;
      pending.set(id, now());
      iv.sent++;
      sampler.ws.send(JSON.stringify({ type: 'send', id, room: rooms[n % rooms.length].id, client_msg_id: `soak-${process.pid}-${n}`, body: `soak sample ${n}` }));
    }, 1000 / opt.sample));
  let nextEvery = t0 + opt.every * 1000;
  await new Promise((resolve) => {
    const tick = setInterval(() => {
      const t = now();
      if (t >= nextEvery) { everyLine(); nextEvery += opt.every * 1000; }
      if (t >= end) { clearInterval(tick); resolve(); }
    }, 200);
  });
  stopping = true;
  for (const t of timers) clearInterval(t);
  for (const c of conns) if (c.ws) c.ws.terminate();
  if (sampler) sampler.ws.terminate();
  agent.destroy();
  console.error('load.js: done');
  process.exit(0);
}

main().catch((e) => { console.error(`load.js: ${e.stack || e}`); process.exit(1); });
