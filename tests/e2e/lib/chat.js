'use strict';
// Chat helpers on top of lib/server.js, lib/http.js and lib/ws.js: users with tokens, REST calls
// with a token, room creation, and a WebSocket chat client that does the hello + first sync
// handshake, sends requests with ids and waits on conditions over everything it received.

const assert = require('node:assert/strict');
const { startServer, sleep } = require('./server');
const { request, uniqueName, registerUser, expectError } = require('./http');
const { wsConnect } = require('./ws');

// Every chat test server gets these on top of lib/server.js's FAST_DEFAULTS
// (cheap Argon2id: --pwhash-ops 1 --pwhash-mem-kib 8192). --room-rate is high so tests can set
// up many rooms quickly; abuse_limits.test.js checks the default-style limit.
const CHAT_DEFAULTS = { 'auth-rate': 1000, 'room-rate': 1000 };

/** startServer with CHAT_DEFAULTS; args override them (null drops one). */
function startChat(args = {}, options = {}) {
  return startServer({ ...options, args: { ...CHAT_DEFAULTS, ...args } });
}

/** Register a fresh user: {id, username, password, token, refresh}. */
async function newUser(srv, prefix = 'c') {
  const r = await registerUser(srv, uniqueName(prefix));
  return {
    id: r.user.id,
    username: r.username,
    password: r.password,
    token: r.access_token,
    refresh: r.refresh_token,
  };
}

/** Log the same user in again (a second device / session): a new user object, new token. */
async function loginAgain(srv, u) {
  const r = await request(srv, 'POST', '/v1/auth/login', { json: { username: u.username, password: u.password } });
  if (r.status !== 200) throw new Error(`login ${u.username}: ${r.status} ${r.text}`);
  return { ...u, token: r.body.access_token, refresh: r.body.refresh_token };
}

/** REST calls as user u. */
function api(srv, u) {
  const token = u.token;
  return {
    get: (p) => request(srv, 'GET', p, { token }),
    post: (p, json) => request(srv, 'POST', p, { token, json }),
    patch: (p, json) => request(srv, 'PATCH', p, { token, json }),
    del: (p) => request(srv, 'DELETE', p, { token }),
  };
}

/** POST /v1/rooms as owner; asserts 201 and returns the room object. */
async function createRoom(srv, owner, members = [], { name = 'room ' + uniqueName('n'), topic } = {}) {
  const body = { name, members: members.map((m) => (typeof m === 'string' ? m : m.id)) };
  if (topic !== undefined) body.topic = topic;
  const r = await api(srv, owner).post('/v1/rooms', body);
  assert.equal(r.status, 201, `create room: ${r.status} ${r.text}`);
  return r.body.room;
}

/** Whole history of a room (pages forward with after=), as user u. */
async function fullHistory(srv, u, room, { pageSize = 200 } = {}) {
  const out = [];
  let after = 0;
  for (let guard = 0; guard < 100000; guard++) {
    const r = await api(srv, u).get(`/v1/rooms/${room}/messages?after=${after}&limit=${pageSize}`);
    assert.equal(r.status, 200, `history: ${r.status} ${r.text}`);
    out.push(...r.body.messages);
    if (!r.body.has_more) return out;
    assert.ok(r.body.messages.length > 0, 'has_more with an empty page');
    after = r.body.messages[r.body.messages.length - 1].seq;
  }
  throw new Error('history did not end');
}

const LOG_TYPES = new Set(['message', 'member', 'room', 'edit', 'delete', 'reaction']);
const isLog = (m) => m && LOG_TYPES.has(m.type);

let reqSeq = 0;
const nextId = (p = 'q') => `${p}${++reqSeq}`;

/**
 * Wrap a lib/ws.js client with chat helpers:
 *   req(obj, timeoutMs)       send obj with a fresh id; resolves the reply with that id
 *                             (ack, error, read, pong, synced, ...)
 *   sendMsg(room, body, cmid) req({type:'send',...})
 *   entries(room)             log entries (message/member/room) of room received so far, in order
 *   waitFor(cond, ms, what)   resolves once cond(client) is truthy (checked on every message)
 *   since(mark, pred)         messages received after index `mark` (mark = client.messages.length)
 *   close()                   close and wait until closed
 */
function chatClient(c, user) {
  c.user = user;
  c.req = (obj, timeoutMs = 10000) => {
    const id = obj.id !== undefined ? obj.id : nextId();
    c.send({ ...obj, id });
    return c.next((m) => m.id === id && m.type !== 'message', timeoutMs);
  };
  c.sendMsg = (room, body, cmid = nextId('cm'), timeoutMs) =>
    c.req({ type: 'send', room, body, client_msg_id: cmid }, timeoutMs);
  c.entries = (room) => c.messages.filter((m) => isLog(m) && (room === undefined || m.room === room));
  c.ofType = (type, pred = () => true) => c.messages.filter((m) => m && m.type === type && pred(m));
  c.since = (mark, pred = () => true) => c.messages.slice(mark).filter((m) => pred(m));
  // An incremental filter for big streams: col.update() scans only what arrived since the last
  // call and returns col.items (every message matching pred from index `from` on).
  c.collect = (pred, from = 0) => {
    const col = {
      items: [],
      idx: from,
      update() {
        while (this.idx < c.messages.length) {
          const m = c.messages[this.idx++];
          if (pred(m)) this.items.push(m);
        }
        return this.items;
      },
    };
    return col;
  };
  c.waitFor = (cond, timeoutMs = 10000, what = 'condition') =>
    new Promise((resolve, reject) => {
      const check = () => {
        let v;
        try {
          v = cond(c);
        } catch (e) {
          cleanup();
          reject(e);
          return;
        }
        if (v) {
          cleanup();
          resolve(v);
        } else if (c.closeInfo) {
          cleanup();
          reject(new Error(`${user ? user.username : 'client'}: closed (${c.closeInfo.code}) while waiting for ${what}`));
        }
      };
      const cleanup = () => {
        clearTimeout(t);
        c.waiters.delete(check);
      };
      const t = setTimeout(() => {
        c.waiters.delete(check);
        const tail = JSON.stringify(c.messages.slice(-5));
        reject(new Error(`${user ? user.username : 'client'}: no ${what} within ${timeoutMs} ms (${c.messages.length} messages; last: ${tail})`));
      }, timeoutMs);
      c.waiters.add(check);
      check();
    });
  c.close = async (timeoutMs = 5000) => {
    if (!c.closeInfo) {
      try {
        c.ws.close(1000);
      } catch {
        /* already closing */
      }
    }
    try {
      await c.closed(timeoutMs);
    } catch {
      c.ws.terminate();
    }
  };
  return c;
}

/**
 * Open a WebSocket as user u and wait for the hello. Unless sync === false, send the first
 * request right away: {"type":"sync","rooms":sync} (default {}) and wait for its synced.
 * Resolves the chat client; client.hello and client.synced hold those replies.
 */
async function connect(srv, u, { sync = {}, timeoutMs = 10000 } = {}) {
  const raw = await wsConnect(srv.wsUrl, { token: u.token, timeoutMs });
  const c = chatClient(raw, u);
  try {
    c.hello = await c.next((m) => m.type === 'hello', timeoutMs);
    if (sync !== false) c.synced = await c.req({ type: 'sync', rooms: sync }, timeoutMs);
  } catch (e) {
    c.ws.terminate();
    throw e;
  }
  return c;
}

/**
 * Assert that nothing matching pred arrives on client c within ms (counting from now, or from
 * index `mark` when given).
 */
async function expectNothing(c, pred, ms = 500, what = 'message', mark = c.messages.length) {
  await sleep(ms);
  const got = c.messages.slice(mark).filter((m) => pred(m));
  assert.deepEqual(got, [], `unexpected ${what}: ${JSON.stringify(got)}`);
}

/** Assert a WebSocket error reply. */
function expectWsError(reply, code, id) {
  assert.equal(reply.type, 'error', `expected error ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(reply.code, code, `expected error ${code}, got ${JSON.stringify(reply)}`);
  assert.equal(typeof reply.message, 'string');
  if (id !== undefined) assert.equal(reply.id, id);
}

/** Assert seqs are contiguous and strictly increasing from `first` (a clear message otherwise). */
function assertContiguous(seqs, first, what = 'stream') {
  for (let i = 0; i < seqs.length; i++) {
    if (seqs[i] !== first + i) {
      const ctx = seqs.slice(Math.max(0, i - 3), i + 4);
      assert.fail(`${what}: expected seq ${first + i} at position ${i}, got ${seqs[i]} (around: ${ctx.join(',')}; ${seqs.length} entries from ${first})`);
    }
  }
}

/**
 * Send n messages into room over client c, keeping at most `window` unacknowledged, and resolve
 * the acks in the order they came (rejects on an error reply). Bodies are `${prefix} ${i}`,
 * client_msg_ids `${prefix}-${i}`, request ids `${prefix}:${i}`. onAck(count) runs as acks come.
 */
async function pump(c, room, n, { window = 100, prefix = nextId('p'), timeoutMs = 60000, onAck } = {}) {
  const mine = (m) => (m.type === 'ack' || m.type === 'error') && typeof m.id === 'string' && m.id.startsWith(`${prefix}:`);
  const acks = c.collect(mine, c.messages.length);
  let sent = 0;
  while (acks.update().length < n) {
    while (sent < n && sent - acks.items.length < window) {
      c.send({ type: 'send', id: `${prefix}:${sent}`, room, body: `${prefix} ${sent}`, client_msg_id: `${prefix}-${sent}` });
      sent++;
    }
    const target = sent < n ? sent - Math.floor(window / 2) : n;
    await c.waitFor(() => acks.update().length >= target, timeoutMs, `acks for ${prefix} (${acks.items.length}/${n})`);
    const bad = acks.items.find((m) => m.type !== 'ack');
    if (bad) throw new Error(`send ${bad.id} failed: ${JSON.stringify(bad)}`);
    if (onAck) onAck(acks.items.length);
  }
  return acks.items;
}

/** Run fn(clients) and always close them. */
async function withClients(list, fn) {
  try {
    return await fn(list);
  } finally {
    await Promise.all(list.filter(Boolean).map((c) => c.close().catch(() => {})));
  }
}

module.exports = {
  CHAT_DEFAULTS,
  startChat,
  newUser,
  loginAgain,
  api,
  createRoom,
  fullHistory,
  chatClient,
  connect,
  expectNothing,
  expectWsError,
  expectError,
  assertContiguous,
  withClients,
  pump,
  isLog,
  nextId,
  sleep,
};
