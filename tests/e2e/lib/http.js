'use strict';
// Small HTTP helpers: a JSON request function over node:http (one connection per request, no
// pooling) and raw-socket tools for tests that need byte-level control.

const http = require('node:http');
const net = require('node:net');

/**
 * request(srv, method, path, {json, body, headers, token, timeoutMs, localAddress})
 *   json: object serialised as the body with Content-Type: application/json
 *   body: raw string/Buffer body (no Content-Type unless given in headers)
 *   localAddress: source address (another loopback address such as 127.0.0.2 is another client IP)
 * Resolves {status, headers, text, body} where body is the parsed JSON (or undefined).
 */
function request(srv, method, urlPath, opts = {}) {
  const { json, token, timeoutMs = 10000 } = opts;
  const headers = { ...(opts.headers || {}) };
  let payload = opts.body;
  if (json !== undefined) {
    payload = JSON.stringify(json);
    if (!Object.keys(headers).some((h) => h.toLowerCase() === 'content-type'))
      headers['Content-Type'] = 'application/json';
  }
  if (token) headers.Authorization = `Bearer ${token}`;
  return new Promise((resolve, reject) => {
    const req = http.request(
      { host: '127.0.0.1', port: srv.port, method, path: urlPath, headers, agent: false, localAddress: opts.localAddress },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          clearTimeout(timer);
          const text = Buffer.concat(chunks).toString('utf8');
          let body;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            body = undefined;
          }
          resolve({ status: res.statusCode, headers: res.headers, text, body });
        });
        res.on('error', reject);
      },
    );
    const timer = setTimeout(() => {
      req.destroy(new Error(`${method} ${urlPath}: no response within ${timeoutMs} ms`));
    }, timeoutMs);
    req.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

const get = (srv, p, opts) => request(srv, 'GET', p, opts);
const post = (srv, p, json, opts = {}) => request(srv, 'POST', p, { ...opts, json });

let userSeq = 0;
/** A unique valid username for this process. */
function uniqueName(prefix = 'u') {
  userSeq += 1;
  return `${prefix}${process.pid % 100000}_${userSeq}_${Math.floor(Math.random() * 1e6)}`.slice(0, 32);
}

/** Register a fresh user; asserts 201 and returns the response body plus the password. */
async function registerUser(srv, name = uniqueName(), password = 'correct horse battery') {
  const r = await post(srv, '/v1/auth/register', { username: name, password });
  if (r.status !== 201) throw new Error(`register ${name}: ${r.status} ${r.text}`);
  return { ...r.body, username: name, password };
}

/** Assert helper: the documented error shape with the given status and code. */
function expectError(assert, res, status, code) {
  assert.equal(res.status, status, `expected ${status} ${code}, got ${res.status} ${res.text}`);
  assert.ok(res.body && res.body.error, `error body expected, got: ${res.text}`);
  assert.equal(res.body.error.code, code, `expected code ${code}, got ${res.text}`);
  assert.equal(typeof res.body.error.message, 'string');
  assert.ok(res.body.error.message.length > 0);
}

/**
 * Open a raw TCP connection. Returns an object that accumulates every byte received:
 *   conn.sock, conn.data (Buffer), conn.closed (bool), conn.error
 *   conn.write(x), conn.waitFor(predicate(buf), timeoutMs) -> Promise<bool>
 *   conn.waitClose(timeoutMs) -> Promise<bool>, conn.destroy()
 */
function rawConnect(port, { host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    const conn = {
      sock,
      data: Buffer.alloc(0),
      closed: false,
      error: null,
      waiters: new Set(),
      write(x) {
        return sock.write(x);
      },
      notify() {
        for (const w of [...this.waiters]) w();
      },
      waitFor(pred, timeoutMs = 5000) {
        return new Promise((res) => {
          const check = () => {
            let ok = false;
            try {
              ok = pred(conn.data, conn);
            } catch {
              ok = false;
            }
            if (ok || conn.closed) {
              clearTimeout(t);
              conn.waiters.delete(check);
              res(ok || pred(conn.data, conn));
            }
          };
          const t = setTimeout(() => {
            conn.waiters.delete(check);
            res(false);
          }, timeoutMs);
          conn.waiters.add(check);
          check();
        });
      },
      waitClose(timeoutMs = 5000) {
        return this.waitFor((_, c) => c.closed, timeoutMs);
      },
      destroy() {
        sock.destroy();
      },
    };
    sock.on('data', (d) => {
      conn.data = Buffer.concat([conn.data, d]);
      conn.notify();
    });
    sock.on('error', (e) => {
      conn.error = e;
    });
    sock.on('close', () => {
      conn.closed = true;
      conn.notify();
    });
    sock.once('connect', () => resolve(conn));
    sock.once('error', reject);
  });
}

/**
 * Parse complete HTTP/1.1 responses from a buffer (Content-Length framed, as chatd sends them).
 * Returns an array of {status, headers (lower-case names), body (string), json}.
 */
function parseResponses(buf) {
  const out = [];
  let off = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', off, 'latin1');
    if (end < 0) break;
    const head = buf.subarray(off, end).toString('latin1').split('\r\n');
    const m = /^HTTP\/1\.1 (\d{3}) /.exec(head[0]);
    if (!m) break;
    const headers = {};
    for (const line of head.slice(1)) {
      const i = line.indexOf(':');
      if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    const len = Number(headers['content-length'] || 0);
    if (buf.length < end + 4 + len) break;
    const body = buf.subarray(end + 4, end + 4 + len).toString('utf8');
    let json;
    try {
      json = body ? JSON.parse(body) : undefined;
    } catch {
      json = undefined;
    }
    out.push({ status: Number(m[1]), headers, body, json });
    off = end + 4 + len;
  }
  return out;
}

/** Fetch /metrics and parse it into a Map of "name{labels}" -> number. */
async function metrics(srv) {
  const r = await get(srv, '/metrics');
  if (r.status !== 200) throw new Error(`/metrics: ${r.status}`);
  return { text: r.text, headers: r.headers, values: parseMetrics(r.text) };
}

function parseMetrics(text) {
  const values = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    if (m) values.set(m[1], Number(m[2]));
  }
  return values;
}

/** Sum of all series of metric `name` whose labels include every given label. */
function metricSum(values, name, labels = {}) {
  let sum = 0;
  let found = false;
  for (const [k, v] of values) {
    const brace = k.indexOf('{');
    const n = brace < 0 ? k : k.slice(0, brace);
    if (n !== name) continue;
    const ls = brace < 0 ? '' : k.slice(brace);
    if (Object.entries(labels).every(([lk, lv]) => ls.includes(`${lk}="${lv}"`))) {
      sum += v;
      found = true;
    }
  }
  return found ? sum : undefined;
}

module.exports = {
  request,
  get,
  post,
  uniqueName,
  registerUser,
  expectError,
  rawConnect,
  parseResponses,
  metrics,
  parseMetrics,
  metricSum,
};
