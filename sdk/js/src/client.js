// ChatdClient: one WebSocket to chatd that survives everything a network does to it.
//
// - Positions: the last seq seen per room (in memory, optionally persisted through a storage
//   adapter). Every (re)connect sends `sync` with them and pages while a room says has_more, so
//   the stream resumes exactly where it stopped; entries at or below a room's position are
//   duplicates and dropped (de-duplication by (room, seq)).
// - Sends made while offline, or in flight when the connection dropped, wait in an outbox and
//   are sent again with the same client_msg_id: chatd answers a resend with the original ack,
//   so nothing is stored twice.
// - Reconnects with jittered exponential backoff; state changes are reported ('state' event).
// - Token expiry: before the access token expires a fresh one (getToken) is handed to the open
//   connection with the `refresh` operation; a server without it gets a reconnect with the new
//   token instead. A socket closed with 4002 (token expired) reconnects with a fresh token;
//   4001 (session ended) ends the client (state 'ended': log in again).

import { ChatdError, baseUrl, defaultFetch, httpBody, jwtClaims, restCall, wsUrl } from './http.js';

export { ChatdError };

function pageQuery(before, after, limit) {
  const q = [];
  if (before !== undefined) q.push(`before=${encodeURIComponent(before)}`);
  if (after !== undefined) q.push(`after=${encodeURIComponent(after)}`);
  if (limit !== undefined) q.push(`limit=${encodeURIComponent(limit)}`);
  return q.length ? '?' + q.join('&') : '';
}

const ENTRY_TYPES = new Set(['message', 'member', 'room', 'edit', 'delete', 'reaction']);
const EVENTS = new Set([
  'message', 'edit', 'delete', 'reaction', 'member', 'room', 'typing', 'read', 'receipt', 'presence',
  'state', 'synced', 'error',
]);
// Errors after which a send is retried (the same client_msg_id keeps it idempotent).
const TRANSIENT = new Set(['rate_limited', 'unavailable', 'io_error', 'internal', 'out_of_memory']);
// getToken failures that no retry can fix: the user must log in again.
const AUTH_FATAL = new Set(['invalid_refresh_token', 'not_logged_in', 'unauthorized']);

const DEFAULTS = {
  reconnectMinMs: 500, // first retry delay (before jitter)
  reconnectMaxMs: 30000, // cap of the exponential backoff
  connectTimeoutMs: 15000, // socket open + hello
  pingIntervalMs: 25000, // an application ping this often while online...
  pongTimeoutMs: 10000, // ...and a connection without its pong by then is dropped
  requestTimeoutMs: 15000, // refresh / read replies
  refreshBeforeS: 60, // refresh the token this long before `exp` (at most 1/4 of its life)
  typingIntervalMs: 2000, // typing(room) sends at most one event per room per interval
  maxSendRetries: 5, // transient send errors before the send is rejected
};

let clientSeq = 0;

function randomId() {
  const c = globalThis.crypto;
  if (c && typeof c.randomUUID === 'function') return c.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${++clientSeq}`;
}

export class ChatdClient {
  /**
   * options:
   *   url        server base URL, http(s)://host:port (the WebSocket URL is derived from it)
   *   getToken   ({force}) => access token (string or promise); called at connect and before
   *              expiry; force: the last one was refused. Or pass `auth` (a PasswordAuth).
   *   WebSocket  a WebSocket constructor (default: globalThis.WebSocket, else the `ws` package)
   *   storage    {get, set} adapter to persist room positions (default: memory)
   *   fetch      fetch implementation (default: globalThis.fetch)
   *   plus the tuning knobs of DEFAULTS above.
   */
  constructor(options = {}) {
    const { url, getToken, auth, WebSocket, storage, fetch, tokenInQuery } = options;
    this.url = baseUrl(url);
    if (auth && typeof auth.getToken === 'function') this.getToken = (o) => auth.getToken(o);
    else if (typeof getToken === 'function') this.getToken = getToken;
    else throw new TypeError('getToken (a function) or auth (a PasswordAuth) is required');
    this.auth = auth || null;
    this.opts = { ...DEFAULTS };
    for (const k of Object.keys(DEFAULTS)) if (options[k] !== undefined) this.opts[k] = options[k];
    this.WS = WebSocket || null;
    this.tokenInQuery = tokenInQuery;
    this.storage = storage || null;
    this.fetch = fetch || defaultFetch();

    this.state = 'idle'; // idle, connecting, syncing, online, offline, closed, ended
    this.userId = null;
    this.listeners = new Map();
    this.seqs = new Map(); // room -> last seq delivered to the app
    this.baseline = new Map(); // room -> last_seq from rooms(), for rooms without a position yet
    this.loadedFor = null; // user whose stored positions are loaded
    this.outbox = []; // sends not yet acknowledged, in order
    this.reads = new Map(); // room -> {seq, waiters, conn}: read markers to send
    this.reqs = new Map(); // request id -> {resolve, reject, timer}
    this.typingAt = new Map();
    this.nextReq = 0;
    this.ws = null;
    this.conn = 0; // generation of the current socket
    this.token = null;
    this.forceToken = false;
    this.attempt = 0;
    this.timers = { reconnect: null, connect: null, ping: null, pong: null, refresh: null, save: null, flush: null };
    this.refreshOp = true; // the server knows {"type":"refresh"} (until it says otherwise)
    this.connectWaiters = [];
    this.lastError = null;
    this.onlineHandler = null;
    this.offlineHandler = null;
  }

  // ---- public API ----

  /** Subscribe to an event; returns a function that unsubscribes. */
  on(event, fn) {
    if (!EVENTS.has(event)) throw new TypeError(`unknown event '${event}'`);
    if (!this.listeners.has(event)) this.listeners.set(event, new Set());
    this.listeners.get(event).add(fn);
    return () => this.off(event, fn);
  }

  off(event, fn) {
    const s = this.listeners.get(event);
    if (s) s.delete(fn);
  }

  /**
   * Connect (and keep reconnecting until close()). Resolves once the first sync is complete
   * (state 'online'); rejects only when the client ends (session ended, login needed) or is
   * closed before that. Sends made before it resolves are queued.
   */
  connect() {
    if (this.state === 'closed' || this.state === 'ended')
      return Promise.reject(new ChatdError(this.state, `client is ${this.state}`));
    const p = new Promise((resolve, reject) => {
      if (this.state === 'online') resolve();
      else this.connectWaiters.push({ resolve, reject });
    });
    if (this.state === 'idle') {
      this.watchNetwork();
      this.open();
    }
    return p;
  }

  /** Close for good: the socket, the timers; unacknowledged sends are rejected. */
  close() {
    if (this.state === 'closed') return;
    const err = new ChatdError('closed', 'client closed');
    this.detach(1000, 'client closed');
    for (const t of Object.keys(this.timers)) this.clearTimer(t);
    this.savePositions();
    this.unwatchNetwork();
    this.failAll(err);
    this.setState('closed');
  }

  /**
   * Send a message. Resolves the ack {room, seq, msg_id, ts, client_msg_id, duplicate} once the
   * message is stored. Offline, or when the connection drops before the ack, the send waits and
   * is retried with the same client_msg_id (opts.clientMsgId, default a random UUID).
   * opts.replyTo: seq of the message it answers; opts.thread: seq of the thread root.
   * opts.attachments: uploads (ids, or the objects upload() resolved; at most 10) the message
   * carries. Given as objects, the sender's own message event carries their metadata too.
   */
  send(room, body, opts = {}) {
    if (typeof room !== 'string' || typeof body !== 'string' || body === '')
      return Promise.reject(new TypeError('send(room: string, body: non-empty string)'));
    const extra = {};
    if (opts.replyTo !== undefined) extra.reply_to = opts.replyTo;
    if (opts.thread !== undefined) extra.thread = opts.thread;
    let atts;
    if (opts.attachments !== undefined) {
      if (!Array.isArray(opts.attachments))
        return Promise.reject(new TypeError('send: opts.attachments must be an array of ids or attachments'));
      atts = opts.attachments.map((a) => (typeof a === 'string' ? { id: a } : a));
      if (atts.some((a) => !a || typeof a.id !== 'string'))
        return Promise.reject(new TypeError('send: opts.attachments must be an array of ids or attachments'));
      if (atts.length) extra.attachments = atts.map((a) => a.id);
    }
    return this.enqueue({ op: 'send', room, body, extra, atts }, opts);
  }

  /**
   * Upload a file (Blob/File, ArrayBuffer, typed array or Node Buffer) as POST /v1/uploads.
   * opts.name: the file name (default the File's name, else "file"); opts.contentType: its
   * media type (default the Blob's type). Resolves the attachment {id, size, content_type,
   * name, sha256}; errors are ChatdError (413 payload_too_large, 415 unsupported_media_type...).
   */
  async upload(data, opts = {}) {
    const isBlob = typeof Blob !== 'undefined' && data instanceof Blob;
    if (!isBlob && !(data instanceof ArrayBuffer) && !ArrayBuffer.isView(data))
      throw new TypeError('upload(data: Blob | ArrayBuffer | ArrayBufferView, {name?, contentType?})');
    const name = opts.name || (isBlob && data.name) || 'file';
    const contentType = opts.contentType || (isBlob && data.type) || '';
    const path = `/v1/uploads?name=${encodeURIComponent(name)}`;
    const go = async (token) => {
      const headers = { Authorization: `Bearer ${token}` };
      if (contentType) headers['Content-Type'] = contentType;
      let res;
      try {
        res = await this.fetch(this.url + path, { method: 'POST', headers, body: data });
      } catch (e) {
        throw new ChatdError('network', `POST /v1/uploads: ${e.message}`, { cause: e });
      }
      return res;
    };
    let res = await go(await this.getToken({}));
    if (res.status === 401) res = await go(await this.getToken({ force: true }));
    const body = await httpBody(res, 'POST /v1/uploads');
    return body.attachment;
  }

  /** The URL of an attachment (GET needs the Bearer token: use fetchAttachment in a page). */
  attachmentUrl(id) {
    return `${this.url}/v1/attachments/${encodeURIComponent(id)}`;
  }

  /**
   * GET an attachment with the access token. Resolves a Blob (opts.response: the fetch
   * Response itself, for streaming or ranges; opts.headers are added, e.g. Range).
   * Errors: ChatdError (404 not_found for files you may not read).
   */
  async fetchAttachment(id, opts = {}) {
    const go = async (token) => {
      try {
        return await this.fetch(this.attachmentUrl(id), {
          headers: { ...(opts.headers || {}), Authorization: `Bearer ${token}` },
        });
      } catch (e) {
        throw new ChatdError('network', `GET attachment: ${e.message}`, { cause: e });
      }
    };
    let res = await go(await this.getToken({}));
    if (res.status === 401) res = await go(await this.getToken({ force: true }));
    if (!res.ok && res.status !== 304) await httpBody(res, 'GET attachment');
    return opts.response ? res : res.blob();
  }

  /**
   * Edit my message at seq. Resolves the ack {op:'edit', room, seq (the edit entry's), target,
   * ts, client_msg_id, duplicate, changed}. Queued and resent like send (same client_msg_id).
   */
  edit(room, seq, body, opts = {}) {
    if (typeof room !== 'string' || !Number.isInteger(seq) || typeof body !== 'string' || body === '')
      return Promise.reject(new TypeError('edit(room: string, seq: integer, body: non-empty string)'));
    return this.enqueue({ op: 'edit', room, target: seq, body, extra: { seq, body } }, opts);
  }

  /** Delete the message at seq (mine, or any as a room admin). Resolves the ack (op 'delete'). */
  delete(room, seq, opts = {}) {
    if (typeof room !== 'string' || !Number.isInteger(seq))
      return Promise.reject(new TypeError('delete(room: string, seq: integer)'));
    return this.enqueue({ op: 'delete', room, target: seq, extra: { seq } }, opts);
  }

  /**
   * Add (on = true) or remove (on = false) my reaction emoji on the message at seq. Resolves the
   * ack (op 'react'); `changed:false, seq:null` when the reaction already was so.
   */
  react(room, seq, emoji, on = true, opts = {}) {
    if (typeof room !== 'string' || !Number.isInteger(seq) || typeof emoji !== 'string' || emoji === '')
      return Promise.reject(new TypeError('react(room: string, seq: integer, emoji: non-empty string, on?: boolean)'));
    on = on !== false;
    return this.enqueue({ op: 'react', room, target: seq, emoji, on, extra: { seq, emoji, on } }, opts);
  }

  /** Queue a request of the outbox (send, edit, delete, react) until its ack. */
  enqueue(req, opts) {
    if (this.state === 'closed' || this.state === 'ended')
      return Promise.reject(new ChatdError(this.state, `client is ${this.state}`));
    return new Promise((resolve, reject) => {
      const item = {
        ...req,
        cmid: opts.clientMsgId || randomId(),
        resolve,
        reject,
        conn: 0, // socket generation it was sent on (0 = not sent on the current one)
        retries: 0,
        notBefore: 0,
      };
      this.outbox.push(item);
      this.flushOutbox();
    });
  }

  /**
   * Messages waiting for their ack (offline queue included): [{room, body, client_msg_id}].
   * Edits, deletes and reactions waiting too carry `op` ('edit', 'delete', 'react') and `target`.
   */
  pending() {
    return this.outbox.map((i) => {
      const p = { room: i.room, body: i.body, client_msg_id: i.cmid };
      if (i.atts && i.atts.length) p.attachments = i.atts;
      if (i.op !== 'send') {
        p.op = i.op;
        p.target = i.target;
        if (i.op === 'react') {
          p.emoji = i.emoji;
          p.on = i.on;
        }
      }
      return p;
    });
  }

  /** Tell the room's members that the user is typing (throttled; dropped while offline). */
  typing(room) {
    if (this.state !== 'online') return;
    const now = Date.now();
    if (now - (this.typingAt.get(room) || 0) < this.opts.typingIntervalMs) return;
    this.typingAt.set(room, now);
    this.transmit({ type: 'typing', room });
  }

  /**
   * Move the user's read marker in room to seq. Resolves {room, seq, unread}. Offline, the
   * newest marker per room is kept and sent when the connection is back.
   */
  read(room, seq) {
    if (this.state === 'closed' || this.state === 'ended')
      return Promise.reject(new ChatdError(this.state, `client is ${this.state}`));
    return new Promise((resolve, reject) => {
      let r = this.reads.get(room);
      if (!r) {
        r = { seq: 0, waiters: [], conn: 0 };
        this.reads.set(room, r);
      }
      if (seq > r.seq) {
        r.seq = seq;
        r.conn = 0;
      }
      r.waiters.push({ seq, resolve, reject });
      this.flushReads();
    });
  }

  /** The last seq of room delivered to this client (0 when none). */
  lastSeq(room) {
    return this.seqs.get(room) || 0;
  }

  /** History page: {messages (ascending seq), has_more}. */
  history(room, { before, after, limit } = {}) {
    return this.request('GET', `/v1/rooms/${encodeURIComponent(room)}/messages${pageQuery(before, after, limit)}`);
  }

  /** A page of the replies in the thread of root (not the root itself): {messages, has_more}. */
  threadHistory(room, root, { before, after, limit } = {}) {
    const path = `/v1/rooms/${encodeURIComponent(room)}/threads/${encodeURIComponent(root)}/messages`;
    return this.request('GET', path + pageQuery(before, after, limit));
  }

  /**
   * The room's receipts: {room, last_seq, receipts: [{user, read_seq, delivered_seq}],
   * delivered_all, read_all}. Rooms of over 100 members: ChatdError 403 'forbidden'.
   */
  receipts(room) {
    return this.request('GET', `/v1/rooms/${encodeURIComponent(room)}/receipts`);
  }

  /** My rooms with last_seq, read_seq, unread, role (and peer for direct rooms). */
  async rooms() {
    const all = [];
    let after = null;
    for (let page = 0; page < 10000; page++) {
      // chatd lists rooms a page at a time (`next` is the `after` of the following page).
      const q = `/v1/rooms?limit=500${after ? `&after=${encodeURIComponent(after)}` : ''}`;
      const r = await this.request('GET', q);
      all.push(...r.rooms);
      if (!r.has_more || !r.next) break;
      after = r.next;
    }
    for (const room of all) if (!this.seqs.has(room.id)) this.baseline.set(room.id, room.last_seq);
    return all;
  }

  me() {
    return this.request('GET', '/v1/me').then((r) => r.user);
  }

  user(id) {
    return this.request('GET', `/v1/users/${encodeURIComponent(id)}`).then((r) => r.user);
  }

  /** The user with this username (404 ChatdError 'not_found' when there is none). */
  findUser(username) {
    return this.request('GET', `/v1/users?username=${encodeURIComponent(username)}`).then((r) => r.user);
  }

  room(id) {
    return this.request('GET', `/v1/rooms/${encodeURIComponent(id)}`).then((r) => r.room);
  }

  createRoom({ name, topic, members = [] }) {
    const json = { name, members };
    if (topic !== undefined) json.topic = topic;
    return this.request('POST', '/v1/rooms', json).then((r) => r.room);
  }

  updateRoom(id, fields) {
    return this.request('PATCH', `/v1/rooms/${encodeURIComponent(id)}`, fields).then((r) => r.room);
  }

  addMember(room, userId, role) {
    const json = { user_id: userId };
    if (role) json.role = role;
    return this.request('POST', `/v1/rooms/${encodeURIComponent(room)}/members`, json).then((r) => r.member);
  }

  removeMember(room, userId) {
    return this.request('DELETE', `/v1/rooms/${encodeURIComponent(room)}/members/${encodeURIComponent(userId)}`);
  }

  /** The direct room with userId (created on first call). */
  dm(userId) {
    return this.request('POST', '/v1/dms', { user_id: userId }).then((r) => r.room);
  }

  /** Any REST call with the current token (one retry with a fresh token on 401). */
  async request(method, path, json) {
    let token = await this.getToken({});
    try {
      return await restCall(this.fetch, this.url, method, path, { token, json });
    } catch (e) {
      if (e.status !== 401) throw e;
      token = await this.getToken({ force: true });
      return restCall(this.fetch, this.url, method, path, { token, json });
    }
  }

  // ---- events ----

  emit(event, data) {
    const s = this.listeners.get(event);
    if (!s) return;
    for (const fn of [...s]) {
      try {
        fn(data);
      } catch (e) {
        setTimeout(() => {
          throw e;
        });
      }
    }
  }

  setState(state, info = {}) {
    if (this.state === state && !info.force) return;
    const prev = this.state;
    this.state = state;
    this.emit('state', { state, prev, ...info });
  }

  // ---- connection ----

  async wsCtor() {
    if (this.WS) return { Ctor: this.WS, headers: this.tokenInQuery !== true && this.WS !== globalThis.WebSocket };
    if (typeof globalThis.WebSocket === 'function') return { Ctor: globalThis.WebSocket, headers: false };
    const mod = await import('ws');
    this.WS = mod.WebSocket || mod.default;
    return { Ctor: this.WS, headers: this.tokenInQuery !== true };
  }

  async open() {
    this.clearTimer('reconnect');
    if (this.state === 'closed' || this.state === 'ended') return;
    const gen = ++this.conn;
    this.setState('connecting', { attempt: this.attempt });
    let token;
    try {
      token = await this.getToken({ force: this.forceToken });
      this.forceToken = false;
    } catch (e) {
      if (gen !== this.conn) return;
      if (AUTH_FATAL.has(e.code)) return this.end('auth', e);
      return this.retry(e);
    }
    if (gen !== this.conn || this.state !== 'connecting') return;
    this.token = token;
    let ctor;
    try {
      ctor = await this.wsCtor();
    } catch (e) {
      return this.end('no_websocket', new ChatdError('no_websocket', 'no WebSocket: pass options.WebSocket (the ws package)', { cause: e }));
    }
    if (gen !== this.conn || this.state !== 'connecting') return;
    let ws;
    try {
      if (ctor.headers) ws = new ctor.Ctor(wsUrl(this.url), { headers: { Authorization: `Bearer ${token}` } });
      else ws = new ctor.Ctor(`${wsUrl(this.url)}?access_token=${encodeURIComponent(token)}`);
    } catch (e) {
      return this.retry(e);
    }
    this.ws = ws;
    const s = { ws, gen, hello: false };
    this.sock = s;
    ws.onmessage = (ev) => {
      if (this.sock !== s) return;
      let m;
      try {
        m = JSON.parse(typeof ev.data === 'string' ? ev.data : String(ev.data));
      } catch {
        return;
      }
      this.onFrame(s, m);
    };
    ws.onclose = (ev) => {
      if (this.sock !== s) return;
      this.onClosed(s, ev.code, ev.reason || '');
    };
    ws.onerror = () => {}; // a close event follows
    this.setTimer('connect', this.opts.connectTimeoutMs, () => {
      if (this.sock === s && !s.hello) this.drop('connect timeout');
    });
  }

  /** Forget the current socket (its late events are ignored) and close it. */
  detach(code = 1000, reason = '') {
    const s = this.sock;
    this.sock = null;
    this.ws = null;
    this.clearTimer('connect');
    this.clearTimer('ping');
    this.clearTimer('pong');
    this.clearTimer('refresh');
    for (const [id, r] of this.reqs) {
      clearTimeout(r.timer);
      r.reject(new ChatdError('disconnected', 'connection lost'));
      this.reqs.delete(id);
    }
    for (const item of this.outbox) item.conn = 0;
    for (const r of this.reads.values()) r.conn = 0;
    if (s) {
      try {
        s.ws.close(code, String(reason).slice(0, 100)); // a close reason has at most 123 bytes
      } catch {
        try {
          s.ws.close();
        } catch {
          /* already closed */
        }
      }
    }
  }

  /** The connection is unusable: drop it and reconnect (now, or after the backoff). */
  drop(why, { now = false } = {}) {
    if (this.state === 'closed' || this.state === 'ended') return;
    this.detach(4000, why);
    this.lastError = new ChatdError('disconnected', why);
    if (now) {
      this.setState('offline', { reason: why, delay: 0 });
      this.open();
    } else {
      this.retry(this.lastError);
    }
  }

  retry(err) {
    if (this.state === 'closed' || this.state === 'ended') return;
    this.lastError = err;
    let cap = Math.min(this.opts.reconnectMaxMs, this.opts.reconnectMinMs * 2 ** Math.min(this.attempt, 20));
    // A browser that knows it is offline says so with an 'online' event when it is back
    // (watchNetwork); until then only a slow retry, in case navigator.onLine is wrong.
    if (typeof navigator !== 'undefined' && navigator.onLine === false) cap = this.opts.reconnectMaxMs;
    const delay = Math.round(cap / 2 + Math.random() * (cap / 2));
    this.attempt++;
    this.setState('offline', { reason: err && err.message, error: err, delay, attempt: this.attempt, force: true });
    this.setTimer('reconnect', delay, () => this.open());
  }

  end(reason, err) {
    this.detach(1000, reason);
    for (const t of Object.keys(this.timers)) this.clearTimer(t);
    this.savePositions();
    this.unwatchNetwork();
    const e = err || new ChatdError(reason, reason);
    this.failAll(e);
    this.setState('ended', { reason, error: e });
  }

  failAll(err) {
    for (const item of this.outbox.splice(0)) item.reject(err);
    for (const r of this.reads.values()) for (const w of r.waiters) w.reject(err);
    this.reads.clear();
    for (const w of this.connectWaiters.splice(0)) w.reject(err);
  }

  async onClosed(s, code, reason) {
    this.sock = null;
    this.ws = null;
    this.detach();
    if (this.state === 'closed' || this.state === 'ended') return;
    if (code === 4001) return this.end('session_ended', new ChatdError('session_ended', reason || 'session ended'));
    if (code === 4002) {
      // The access token expired: reconnect at once with a fresh one.
      this.forceToken = true;
      this.setState('offline', { reason: 'token expired', code, delay: 0 });
      return this.open();
    }
    if (!s.hello) {
      // Refused before the hello (browsers do not show the HTTP status): ask REST whether the
      // token is the problem, so the next attempt brings a fresh one.
      try {
        await restCall(this.fetch, this.url, 'GET', '/v1/me', { token: s.token || this.token });
      } catch (e) {
        if (e.status === 401) this.forceToken = true;
      }
      if (this.state === 'closed' || this.state === 'ended') return;
    }
    this.retry(new ChatdError('disconnected', `closed ${code}${reason ? ' ' + reason : ''}`));
  }

  onFrame(s, m) {
    switch (m.type) {
      case 'hello':
        return this.onHello(s, m);
      case 'ack':
        return this.onAck(m);
      case 'synced':
      case 'pong':
      case 'refreshed':
        return this.reply(m);
      case 'read':
        if (m.id !== undefined) this.onReadReply(m);
        return this.emit('read', { room: m.room, seq: m.seq, unread: m.unread });
      case 'error':
        if (m.id !== undefined) return this.onError(m);
        return this.emit('error', new ChatdError(m.code, m.message));
      case 'typing':
      case 'receipt':
      case 'presence':
        return this.emit(m.type, m);
      default:
        if (ENTRY_TYPES.has(m.type)) return this.onEntry(m);
        return undefined;
    }
  }

  async onHello(s, m) {
    s.hello = true;
    s.token = this.token;
    this.clearTimer('connect');
    if (this.userId && this.userId !== m.user) {
      // Another user on the same client object: positions belong to the previous one.
      this.seqs.clear();
      this.baseline.clear();
      this.loadedFor = null;
    }
    this.userId = m.user;
    await this.loadPositions();
    if (this.sock !== s) return;
    this.setState('syncing');
    let rooms = {};
    for (const [room, seq] of this.baseline) rooms[room] = seq;
    for (const [room, seq] of this.seqs) rooms[room] = seq;
    try {
      for (let page = 0; ; page++) {
        const r = await this.request_({ type: 'sync', rooms }, 0);
        if (this.sock !== s) return;
        const more = {};
        for (const [room, res] of Object.entries(r.rooms || {})) {
          if (res.error) {
            // Not a member any more (left or kicked while away).
            this.seqs.delete(room);
            this.baseline.delete(room);
            continue;
          }
          this.seqs.set(room, Math.max(this.seqs.get(room) || 0, res.last_seq));
          this.baseline.delete(room);
          if (res.has_more) more[room] = res.last_seq;
        }
        this.emit('synced', { rooms: r.rooms, page });
        if (Object.keys(more).length === 0) break;
        rooms = more;
      }
    } catch (e) {
      if (this.sock === s) this.drop(`sync failed: ${e.message}`);
      return;
    }
    this.attempt = 0;
    this.setState('online');
    this.savePositions();
    for (const w of this.connectWaiters.splice(0)) w.resolve();
    this.schedulePing(s);
    this.scheduleRefresh(s);
    this.flushOutbox();
    this.flushReads();
  }

  /** A log entry (message, member, room, ...): deliver it once, in order. */
  onEntry(m) {
    if (typeof m.seq === 'number' && typeof m.room === 'string') {
      const last = this.seqs.get(m.room) || 0;
      if (m.seq <= last) return; // duplicate
      this.seqs.set(m.room, m.seq);
      this.baseline.delete(m.room);
      this.positionsChanged();
    }
    this.emit(m.type, m);
    if (m.type === 'member' && m.user === this.userId && (m.action === 'leave' || m.action === 'kick')) {
      this.seqs.delete(m.room);
      this.positionsChanged();
    }
  }

  onAck(m) {
    const r = this.reqs.get(m.id);
    const item = r && r.item;
    if (r) {
      this.reqs.delete(m.id);
      clearTimeout(r.timer);
    }
    if (item) {
      const i = this.outbox.indexOf(item);
      if (i >= 0) this.outbox.splice(i, 1);
    }
    // The sending connection gets the ack in the message's place in the stream.
    const last = this.seqs.get(m.room) || 0;
    if (m.seq > last) {
      this.seqs.set(m.room, m.seq);
      this.baseline.delete(m.room);
      this.positionsChanged();
      if (item) this.emitOwn(item, m);
    }
    if (item) {
      const { type, id, ...ack } = m;
      item.resolve(ack);
    }
  }

  /**
   * The sending connection gets the ack where the others get the entry: hand the app the entry
   * it stands for (marked own:true), so every view applies it the same way.
   */
  emitOwn(item, m) {
    const base = { room: m.room, seq: m.seq, ts: m.ts, client_msg_id: m.client_msg_id, own: true };
    if (item.op === 'send') {
      const e = { type: 'message', ...base, msg_id: m.msg_id, sender: this.userId, body: item.body };
      if (item.extra.reply_to !== undefined) e.reply_to = item.extra.reply_to;
      if (item.extra.thread !== undefined) e.thread = item.extra.thread;
      if (item.atts && item.atts.length) e.attachments = item.atts;
      return this.emit('message', e);
    }
    const target = m.target !== undefined ? m.target : item.target;
    if (item.op === 'edit')
      return this.emit('edit', { type: 'edit', ...base, target, body: item.body, edited_at: m.ts, user: this.userId });
    if (item.op === 'delete') return this.emit('delete', { type: 'delete', ...base, target, user: this.userId });
    if (item.op === 'react')
      return this.emit('reaction', { type: 'reaction', ...base, target, emoji: item.emoji, user: this.userId, on: item.on });
    return undefined;
  }

  onError(m) {
    const r = this.reqs.get(m.id);
    if (!r) return;
    this.reqs.delete(m.id);
    clearTimeout(r.timer);
    const err = new ChatdError(m.code, m.message, { retryAfterMs: m.retry_after_ms });
    if (r.item) return this.onSendError(r.item, err);
    if (r.read) return this.onReadError(r.read, err);
    r.reject(err);
  }

  onSendError(item, err) {
    item.conn = 0;
    if (TRANSIENT.has(err.code) && item.retries < this.opts.maxSendRetries) {
      item.retries++;
      const wait = err.retryAfterMs || Math.min(10000, 250 * 2 ** item.retries);
      item.notBefore = Date.now() + wait;
      this.setTimer('flush', wait, () => this.flushOutbox());
      return;
    }
    const i = this.outbox.indexOf(item);
    if (i >= 0) this.outbox.splice(i, 1);
    item.reject(err);
  }

  flushOutbox() {
    if (this.state !== 'online' || !this.sock) return;
    const now = Date.now();
    let wait = Infinity;
    for (const item of this.outbox) {
      if (item.conn === this.sock.gen) continue;
      if (item.notBefore > now) {
        wait = Math.min(wait, item.notBefore - now);
        continue;
      }
      const id = `s${++this.nextReq}`;
      item.conn = this.sock.gen;
      this.reqs.set(id, { item, resolve: () => {}, reject: () => {} });
      this.transmit({ type: item.op, id, room: item.room, client_msg_id: item.cmid, ...(item.op === 'send' ? { body: item.body } : {}), ...item.extra });
    }
    if (wait !== Infinity) this.setTimer('flush', wait, () => this.flushOutbox());
  }

  flushReads() {
    if (this.state !== 'online' || !this.sock) return;
    for (const [room, r] of this.reads) {
      if (r.conn === this.sock.gen || r.seq <= 0) continue;
      const id = `r${++this.nextReq}`;
      r.conn = this.sock.gen;
      r.reqId = id;
      this.reqs.set(id, { read: room, resolve: () => {}, reject: () => {} });
      this.transmit({ type: 'read', id, room, seq: r.seq });
    }
  }

  onReadReply(m) {
    const q = this.reqs.get(m.id);
    if (q) {
      this.reqs.delete(m.id);
      clearTimeout(q.timer);
    }
    const r = this.reads.get(m.room);
    if (!r) return;
    // The reply to the newest request answers every waiter (the marker stops at the room's
    // last seq); an older reply answers those it covers.
    const res = { room: m.room, seq: m.seq, unread: m.unread };
    const latest = m.id === r.reqId;
    r.waiters = r.waiters.filter((w) => {
      if (latest || w.seq <= m.seq) {
        w.resolve(res);
        return false;
      }
      return true;
    });
    if (r.waiters.length === 0) this.reads.delete(m.room);
  }

  onReadError(room, err) {
    const r = this.reads.get(room);
    if (!r) return;
    this.reads.delete(room);
    for (const w of r.waiters) w.reject(err);
  }

  /** A request with an id; resolves its reply (an error reply rejects). timeoutMs 0 = none. */
  request_(obj, timeoutMs = this.opts.requestTimeoutMs) {
    return new Promise((resolve, reject) => {
      if (!this.sock) return reject(new ChatdError('disconnected', 'not connected'));
      const id = `q${++this.nextReq}`;
      const r = { resolve, reject, timer: null };
      if (timeoutMs)
        r.timer = setTimeout(() => {
          this.reqs.delete(id);
          reject(new ChatdError('timeout', `${obj.type}: no reply within ${timeoutMs} ms`));
        }, timeoutMs);
      this.reqs.set(id, r);
      this.transmit({ ...obj, id });
    });
  }

  reply(m) {
    const r = this.reqs.get(m.id);
    if (!r) return;
    this.reqs.delete(m.id);
    clearTimeout(r.timer);
    r.resolve(m);
  }

  transmit(obj) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return false;
    ws.send(JSON.stringify(obj));
    return true;
  }

  // ---- liveness and token expiry ----

  schedulePing(s) {
    this.setTimer('ping', this.opts.pingIntervalMs, async () => {
      if (this.sock !== s) return;
      this.setTimer('pong', this.opts.pongTimeoutMs, () => {
        if (this.sock === s) this.drop('no pong');
      });
      try {
        await this.request_({ type: 'ping' }, 0);
      } catch {
        return;
      }
      if (this.sock !== s) return;
      this.clearTimer('pong');
      this.schedulePing(s);
    });
  }

  scheduleRefresh(s) {
    const c = jwtClaims(this.token);
    if (!c || typeof c.exp !== 'number') return;
    const life = typeof c.iat === 'number' ? Math.max(1, c.exp - c.iat) : 900;
    const lead = Math.min(this.opts.refreshBeforeS, life / 4);
    const delay = Math.max(1000, (c.exp - lead) * 1000 - Date.now());
    this.setTimer('refresh', delay, () => this.refreshToken(s));
  }

  async refreshToken(s) {
    let tok;
    try {
      tok = await this.getToken({});
      if (tok === this.token) tok = await this.getToken({ force: true });
    } catch (e) {
      if (this.sock !== s) return;
      if (AUTH_FATAL.has(e.code)) return this.end('auth', e);
      this.setTimer('refresh', 5000, () => this.refreshToken(s)); // server unreachable: later
      return;
    }
    if (this.sock !== s) return;
    if (tok === this.token) return; // nothing newer: the server will close with 4002
    if (!this.refreshOp) {
      this.forceToken = false;
      return this.drop('token refresh (reconnect)', { now: true });
    }
    try {
      await this.request_({ type: 'refresh', access_token: tok });
      if (this.sock !== s) return;
      this.token = tok;
      s.token = tok;
      this.scheduleRefresh(s);
    } catch (e) {
      if (this.sock !== s) return;
      if (e.code === 'unknown_type') this.refreshOp = false; // older server: reconnect instead
      else if (e.code === 'unauthorized' || e.code === 'token_expired') this.forceToken = true;
      this.drop(`token refresh: ${e.code}`, { now: true });
    }
  }

  // ---- positions ----

  positionsChanged() {
    if (!this.storage || this.timers.save) return;
    this.setTimer('save', 250, () => this.savePositions());
  }

  savePositions() {
    this.clearTimer('save');
    if (!this.storage || !this.userId || this.loadedFor !== this.userId) return;
    const all = {};
    for (const [room, seq] of this.baseline) all[room] = seq;
    for (const [room, seq] of this.seqs) all[room] = seq;
    Promise.resolve()
      .then(() => this.storage.set(`seqs:${this.userId}`, JSON.stringify(all)))
      .catch(() => {});
  }

  async loadPositions() {
    if (!this.storage || this.loadedFor === this.userId) return;
    try {
      const v = await this.storage.get(`seqs:${this.userId}`);
      const stored = v ? JSON.parse(v) : {};
      for (const [room, seq] of Object.entries(stored))
        if (Number.isInteger(seq) && seq > (this.seqs.get(room) || 0)) this.seqs.set(room, seq);
    } catch {
      /* unreadable: start from what is in memory */
    }
    this.loadedFor = this.userId;
  }

  // ---- helpers ----

  setTimer(name, ms, fn) {
    this.clearTimer(name);
    this.timers[name] = setTimeout(() => {
      this.timers[name] = null;
      fn();
    }, ms);
  }

  clearTimer(name) {
    if (this.timers[name]) {
      clearTimeout(this.timers[name]);
      this.timers[name] = null;
    }
  }

  /** Browsers: reconnect at once when the network comes back, drop the socket when it goes. */
  watchNetwork() {
    const w = typeof window !== 'undefined' ? window : null;
    if (!w || !w.addEventListener || this.onlineHandler) return;
    this.onlineHandler = () => {
      if (this.state === 'offline') {
        this.attempt = 0;
        this.open();
      }
    };
    this.offlineHandler = () => {
      if (this.state === 'online' || this.state === 'syncing' || this.state === 'connecting') this.drop('network offline');
    };
    w.addEventListener('online', this.onlineHandler);
    w.addEventListener('offline', this.offlineHandler);
  }

  unwatchNetwork() {
    const w = typeof window !== 'undefined' ? window : null;
    if (!w || !this.onlineHandler) return;
    w.removeEventListener('online', this.onlineHandler);
    w.removeEventListener('offline', this.offlineHandler);
    this.onlineHandler = this.offlineHandler = null;
  }
}
