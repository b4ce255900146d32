'use strict';
// WebSocket helpers: a `ws` client that collects messages, and a raw TCP client with a tiny frame
// codec for tests that must break the protocol (unmasked frames, not answering pings, not reading).

const crypto = require('node:crypto');
const WebSocket = require('ws');
const { rawConnect } = require('./http');

/**
 * Connect with the `ws` package. Resolves a client:
 *   ws, messages (parsed JSON text messages, in order), closeInfo ({code, reason} once closed)
 *   next(pred?, timeoutMs) -> the first not-yet-consumed message matching pred
 *   send(obj), closed(timeoutMs) -> Promise<{code, reason}>
 * Rejects with err.statusCode / err.body when the server answers the upgrade with HTTP.
 */
function wsConnect(url, { headers = {}, token, timeoutMs = 5000, wsOptions = {} } = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    const ws = new WebSocket(url, { headers: h, handshakeTimeout: timeoutMs, ...wsOptions });
    const client = makeClient(ws);
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error(`WebSocket connect to ${url} timed out`));
    }, timeoutMs + 1000);
    ws.on('unexpected-response', (req, res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        clearTimeout(timer);
        const text = Buffer.concat(chunks).toString('utf8');
        const err = new Error(`upgrade refused: HTTP ${res.statusCode} ${text}`);
        err.statusCode = res.statusCode;
        err.headers = res.headers;
        err.text = text;
        try {
          err.body = JSON.parse(text);
        } catch {
          err.body = undefined;
        }
        req.destroy();
        reject(err);
      });
    });
    ws.once('open', () => {
      clearTimeout(timer);
      resolve(client);
    });
    ws.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

function makeClient(ws) {
  const client = {
    ws,
    messages: [],
    raw: [],
    consumed: 0,
    closeInfo: null,
    errors: [],
    waiters: new Set(),
    notify() {
      for (const w of [...this.waiters]) w();
    },
    send(obj) {
      ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    },
    /** Next unconsumed message for which pred(msg) holds; messages before it stay queued. */
    next(pred = () => true, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          for (let i = 0; i < this.messages.length; i++) {
            const m = this.messages[i];
            if (m && !m.__consumed && pred(m)) {
              Object.defineProperty(m, '__consumed', { value: true, enumerable: false });
              cleanup();
              resolve(m);
              return;
            }
          }
          if (this.closeInfo) {
            cleanup();
            reject(new Error(`connection closed (${this.closeInfo.code}) before the expected message; got ${JSON.stringify(this.messages)}`));
          }
        };
        const cleanup = () => {
          clearTimeout(t);
          this.waiters.delete(check);
        };
        const t = setTimeout(() => {
          this.waiters.delete(check);
          reject(new Error(`no matching message within ${timeoutMs} ms; got ${JSON.stringify(this.messages)}`));
        }, timeoutMs);
        this.waiters.add(check);
        check();
      });
    },
    closed(timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (this.closeInfo) {
            clearTimeout(t);
            this.waiters.delete(check);
            resolve(this.closeInfo);
          }
        };
        const t = setTimeout(() => {
          this.waiters.delete(check);
          reject(new Error(`connection not closed within ${timeoutMs} ms`));
        }, timeoutMs);
        this.waiters.add(check);
        check();
      });
    },
    terminate() {
      ws.terminate();
    },
  };
  ws.on('message', (data, isBinary) => {
    client.raw.push({ data, isBinary });
    let m;
    try {
      m = JSON.parse(data.toString('utf8'));
    } catch {
      m = { __unparsable: data.toString('utf8') };
    }
    client.messages.push(m);
    client.notify();
  });
  ws.on('error', (e) => {
    client.errors.push(e);
  });
  ws.on('close', (code, reason) => {
    client.closeInfo = { code, reason: reason.toString('utf8') };
    client.notify();
  });
  return client;
}

/** Connect and wait for the hello message. */
async function wsConnectHello(url, opts) {
  const c = await wsConnect(url, opts);
  const hello = await c.next((m) => m.type === 'hello');
  return { client: c, hello };
}

// ---- raw frames ----

const OP = { CONT: 0, TEXT: 1, BINARY: 2, CLOSE: 8, PING: 9, PONG: 10 };

/** Encode one client frame. mask: true (default) masks with a random key, false sends it bare. */
function encodeFrame(opcode, payload = Buffer.alloc(0), { fin = true, mask = true, rsv = 0 } = {}) {
  const data = Buffer.isBuffer(payload) ? payload : Buffer.from(payload);
  const len = data.length;
  let hlen = 2;
  if (len >= 126 && len <= 0xffff) hlen += 2;
  else if (len > 0xffff) hlen += 8;
  if (mask) hlen += 4;
  const out = Buffer.alloc(hlen + len);
  out[0] = (fin ? 0x80 : 0) | ((rsv & 7) << 4) | (opcode & 0x0f);
  let off = 2;
  if (len < 126) {
    out[1] = len;
  } else if (len <= 0xffff) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
    off = 4;
  } else {
    out[1] = 127;
    out.writeBigUInt64BE(BigInt(len), 2);
    off = 10;
  }
  if (mask) {
    out[1] |= 0x80;
    const key = crypto.randomBytes(4);
    key.copy(out, off);
    off += 4;
    for (let i = 0; i < len; i++) out[off + i] = data[i] ^ key[i & 3];
  } else {
    data.copy(out, off);
  }
  return out;
}

/**
 * Decode server frames from buf. Returns {frames:[{fin, opcode, payload, masked}], rest}.
 * Stops at the first incomplete frame.
 */
function decodeFrames(buf) {
  const frames = [];
  let off = 0;
  while (buf.length - off >= 2) {
    const b0 = buf[off];
    const b1 = buf[off + 1];
    let len = b1 & 0x7f;
    let p = off + 2;
    if (len === 126) {
      if (buf.length - p < 2) break;
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      if (buf.length - p < 8) break;
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const masked = !!(b1 & 0x80);
    let key = null;
    if (masked) {
      if (buf.length - p < 4) break;
      key = buf.subarray(p, p + 4);
      p += 4;
    }
    if (buf.length - p < len) break;
    let payload = Buffer.from(buf.subarray(p, p + len));
    if (key) for (let i = 0; i < payload.length; i++) payload[i] ^= key[i & 3];
    frames.push({ fin: !!(b0 & 0x80), rsv: (b0 >> 4) & 7, opcode: b0 & 0x0f, payload, masked });
    off = p + len;
  }
  return { frames, rest: buf.subarray(off) };
}

/**
 * Incremental decoder for large server streams: push(buf) returns the frames completed by buf.
 * Keeps only the unfinished tail, so megabytes of frames cost linear time.
 */
class FrameStream {
  constructor() {
    this.tail = Buffer.alloc(0);
  }

  push(buf) {
    const all = this.tail.length ? Buffer.concat([this.tail, buf]) : buf;
    const { frames, rest } = decodeFrames(all);
    this.tail = Buffer.from(rest);
    return frames;
  }
}

/** Close code and reason of a close frame payload. */
function closePayload(frame) {
  if (frame.payload.length < 2) return { code: 1005, reason: '' };
  return { code: frame.payload.readUInt16BE(0), reason: frame.payload.subarray(2).toString('utf8') };
}

/**
 * Raw WebSocket client over a plain TCP socket: does the HTTP upgrade by hand, then exposes the
 * byte stream. Resolves {conn, frames(), closeFrame(), sendFrame(...), sendText(obj|string)}.
 * frames() decodes everything received after the 101 response.
 */
async function rawWsConnect(port, token, { path = '/v1/ws', timeoutMs = 5000, answerClose = true } = {}) {
  const conn = await rawConnect(port);
  const key = crypto.randomBytes(16).toString('base64');
  conn.write(
    `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
      `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
      (token ? `Authorization: Bearer ${token}\r\n` : '') +
      '\r\n',
  );
  const ok = await conn.waitFor((b) => b.indexOf('\r\n\r\n') >= 0, timeoutMs);
  if (!ok) {
    conn.destroy();
    throw new Error(`raw upgrade: no response head; got ${JSON.stringify(conn.data.toString('latin1'))}`);
  }
  const headEnd = conn.data.indexOf('\r\n\r\n') + 4;
  const head = conn.data.subarray(0, headEnd).toString('latin1');
  if (!/^HTTP\/1\.1 101 /.test(head)) {
    conn.destroy();
    throw new Error(`raw upgrade refused: ${head}`);
  }
  const expected = crypto
    .createHash('sha1')
    .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
    .digest('base64');
  if (!head.toLowerCase().includes(`sec-websocket-accept: ${expected.toLowerCase()}`)) {
    conn.destroy();
    throw new Error(`raw upgrade: bad Sec-WebSocket-Accept in ${head}`);
  }
  const rw = {
    conn,
    headEnd,
    frames() {
      return decodeFrames(conn.data.subarray(headEnd)).frames;
    },
    closeFrame() {
      const f = this.frames().find((x) => x.opcode === OP.CLOSE);
      return f ? closePayload(f) : null;
    },
    textMessages() {
      return this.frames()
        .filter((f) => f.opcode === OP.TEXT)
        .map((f) => JSON.parse(f.payload.toString('utf8')));
    },
    sendFrame(opcode, payload, opts) {
      return conn.write(encodeFrame(opcode, payload, opts));
    },
    sendText(obj, opts) {
      return this.sendFrame(OP.TEXT, typeof obj === 'string' ? obj : JSON.stringify(obj), opts);
    },
    waitFrame(pred, timeoutMs = 5000) {
      return conn.waitFor(() => this.frames().some(pred), timeoutMs);
    },
    destroy() {
      conn.destroy();
    },
  };
  if (answerClose) {
    // Like a real client, answer the server's close frame with one of our own (RFC 6455 5.5.1),
    // so the server can close the TCP connection at once instead of after its grace period.
    let answered = false;
    const check = () => {
      if (answered || conn.closed) return;
      const f = rw.frames().find((x) => x.opcode === OP.CLOSE);
      if (!f) return;
      answered = true;
      conn.sock.write(encodeFrame(OP.CLOSE, f.payload.subarray(0, 2)), () => {});
    };
    conn.sock.on('data', check);
    check();
  }
  return rw;
}

module.exports = {
  WebSocket,
  wsConnect,
  wsConnectHello,
  rawWsConnect,
  encodeFrame,
  decodeFrames,
  FrameStream,
  closePayload,
  OP,
};
