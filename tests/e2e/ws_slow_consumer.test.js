'use strict';
// Slow consumers (--ws-max-outq): a client that sends requests but does not read its replies is
// closed with 4008 once its output queue passes the limit, and the server stays healthy.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const net = require('node:net');
const { startServer, sleep } = require('./lib/server');
const { registerUser, get, metrics, metricSum } = require('./lib/http');
const { wsConnectHello, encodeFrame, FrameStream, closePayload, OP } = require('./lib/ws');

const T = { timeout: 20000 };

/** Raw WebSocket upgrade on a plain socket, without the accumulate-everything helper. */
function rawUpgrade(port, token) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    const key = crypto.randomBytes(16).toString('base64');
    let head = Buffer.alloc(0);
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error('upgrade timed out'));
    }, 5000);
    const onData = (d) => {
      head = Buffer.concat([head, d]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      clearTimeout(timer);
      sock.removeListener('data', onData);
      sock.pause();
      const status = head.subarray(0, end).toString('latin1');
      if (!/^HTTP\/1\.1 101 /.test(status)) {
        sock.destroy();
        reject(new Error(`upgrade refused: ${status}`));
        return;
      }
      resolve({ sock, rest: head.subarray(end + 4) });
    };
    sock.on('data', onData);
    sock.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    sock.once('connect', () =>
      sock.write(
        `GET /v1/ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\nAuthorization: Bearer ${token}\r\n\r\n`,
      ),
    );
  });
}

describe('slow consumer (--ws-max-outq 65536)', () => {
  let srv;
  let user;
  before(async () => {
    srv = await startServer({ args: { 'ws-max-outq': 65536 } });
    user = await registerUser(srv);
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('a client that reads its replies at a normal pace is not closed (control)', T, async () => {
    const { client } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    try {
      const id = 'i'.repeat(64);
      for (let i = 0; i < 200; i++) client.send({ type: 'ping', id });
      for (let i = 0; i < 200; i++) await client.next((m) => m.type === 'pong');
      assert.equal(client.closeInfo, null);
    } finally {
      client.terminate();
    }
  });

  // A burst of pipelined requests answered within one loop iteration can exceed the queue bound
  // before the end-of-iteration flush; only a client whose socket is really full is slow.
  it('a client that reads promptly but pipelines 3000 pings (~300 KB) in one write is not closed', T,
    async () => {
      const { sock, rest } = await rawUpgrade(srv.port, user.access_token);
      const stream = new FrameStream();
      let pongs = 0;
      let close = null;
      const count = (buf) => {
        for (const f of stream.push(buf)) {
          if (f.opcode === OP.TEXT && f.payload.includes('"pong"')) pongs++;
          if (f.opcode === OP.CLOSE && !close) close = closePayload(f);
        }
      };
      count(rest);
      sock.on('data', count);
      sock.on('error', () => {});
      sock.resume(); // reading all the time
      const ping = encodeFrame(OP.TEXT, JSON.stringify({ type: 'ping', id: 'p'.repeat(64) }));
      sock.write(Buffer.concat(Array.from({ length: 3000 }, () => ping))); // one write
      const deadline = Date.now() + 8000;
      while (pongs < 3000 && !close && Date.now() < deadline) await sleep(50);
      sock.destroy();
      assert.equal(close, null, `closed after ${pongs} pongs`);
      assert.equal(pongs, 3000);
    },
  );

  it('a client that stops reading is closed with 4008; the server stays healthy', T, async () => {
    const m0 = metricSum((await metrics(srv)).values, 'chatd_ws_slow_consumer_closed_total');
    assert.equal(typeof m0, 'number', 'chatd_ws_slow_consumer_closed_total missing');

    const { sock, rest } = await rawUpgrade(srv.port, user.access_token);
    let writeError = null;
    let serverClosed = false;
    sock.on('error', (e) => {
      writeError = e;
    });
    sock.on('close', () => {
      serverClosed = true;
    });
    // The socket is paused: nothing is read, so the kernel buffers and then chatd's queue fill.
    const ping = encodeFrame(OP.TEXT, JSON.stringify({ type: 'ping', id: 'x'.repeat(64) }));
    const batch = Buffer.concat(Array.from({ length: 1000 }, () => ping)); // ~100 KB
    const maxBytes = 40 * 1024 * 1024;
    const deadline = Date.now() + 12000;
    let written = 0;
    let closedCount = 0;
    while (written < maxBytes && Date.now() < deadline && !writeError && !serverClosed) {
      const ok = sock.write(batch);
      written += batch.length;
      if (!ok) {
        // Our own send buffer is full (chatd reads slower than we write): wait a little.
        await Promise.race([new Promise((r) => sock.once('drain', r)), sleep(200)]);
      }
      if (written % (2 * batch.length) === 0) {
        closedCount = metricSum((await metrics(srv)).values, 'chatd_ws_slow_consumer_closed_total');
        if (closedCount >= m0 + 1) break;
      }
    }
    closedCount = metricSum((await metrics(srv)).values, 'chatd_ws_slow_consumer_closed_total');
    assert.ok(closedCount >= m0 + 1, `slow consumer not closed after ${written} bytes written`);

    // Now read: whatever replies made it into the kernel buffers (possibly none: chatd may
    // queue a whole read burst of replies before its first flush and drop them all at the
    // limit), then the close frame, or the server's close of the socket after its grace period.
    const stream = new FrameStream();
    let close = null;
    let pongs = 0;
    stream.push(rest).forEach(() => {});
    const done = new Promise((resolve) => {
      sock.on('data', (d) => {
        for (const f of stream.push(d)) {
          if (f.opcode === OP.TEXT) pongs++;
          if (f.opcode === OP.CLOSE && !close) close = closePayload(f);
        }
        if (close) resolve();
      });
      sock.on('close', resolve);
      sock.on('end', resolve);
    });
    sock.resume();
    await Promise.race([done, sleep(8000)]);
    sock.destroy();
    const diag = JSON.stringify({ written, close, serverClosed, pongs, err: writeError && writeError.code });
    if (process.env.CHATD_E2E_VERBOSE) console.log(diag);
    assert.ok(close || serverClosed, `neither a close frame nor a closed socket: ${diag}`);
    if (close) {
      assert.equal(close.code, 4008, diag);
      assert.match(close.reason, /output queue/);
    }

    // The server is fine: health, readiness, and a new connection works.
    assert.equal((await get(srv, '/healthz')).status, 200);
    assert.equal((await get(srv, '/readyz')).status, 200);
    const { client } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    try {
      client.send({ type: 'ping', id: 'after-slow' });
      assert.equal((await client.next((m) => m.type === 'pong')).id, 'after-slow');
    } finally {
      client.terminate();
    }
    const m = (await metrics(srv)).values;
    assert.ok(metricSum(m, 'chatd_ws_slow_consumer_closed_total') >= m0 + 1);
  });
});
