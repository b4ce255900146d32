'use strict';
// A response that ends the connection (Connection: close, HTTP/1.0, an error, a refused upgrade)
// is the last thing a connection does: bytes after it in the same read are never parsed, and
// the server survives. Each trigger here killed chatd before (the paused parser re-dispatched
// the same request until the 16-bit output queue counters wrapped).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { rawConnect, parseResponses, get } = require('./lib/http');

const T = { timeout: 20000 };
const UPGRADE =
  'GET /v1/ws?access_token=PLACE HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
  'Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n';

/** Send `bytes` in one write; return every response and whether the server closed. */
async function oneShot(srv, bytes) {
  const c = await rawConnect(srv.port);
  c.write(Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes, 'latin1'));
  const closed = await c.waitClose(5000);
  c.destroy();
  return { responses: parseResponses(c.data), closed, raw: c.data };
}

describe('HTTP: nothing is read after the last response', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop(); // asserts exit 0 and no sanitizer report
  });

  async function assertAlive() {
    assert.ok(srv.isRunning(), `chatd died\n${srv.tail()}`);
    const r = await get(srv, '/healthz');
    assert.equal(r.status, 200);
  }

  it('Connection: close then a second request in the same packet: one response, closed', T, async () => {
    const r = await oneShot(
      srv,
      'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n',
    );
    assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
    assert.equal(r.responses[0].status, 200);
    assert.equal(r.responses[0].headers.connection, 'close');
    assert.ok(r.closed);
    await assertAlive();
  });

  it('HTTP/1.0 followed by one stray byte: one response, closed', T, async () => {
    const r = await oneShot(srv, 'GET /healthz HTTP/1.0\r\n\r\nX');
    assert.equal(r.responses.length, 1);
    assert.equal(r.responses[0].status, 200);
    assert.ok(r.closed);
    await assertAlive();
  });

  it('many requests behind a Connection: close are never answered', T, async () => {
    const tail = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n'.repeat(2000);
    const r = await oneShot(srv, 'GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n' + tail);
    assert.equal(r.responses.length, 1);
    await assertAlive();
  });

  it('an upgrade refused for a bad token, then WebSocket bytes: one 401, closed', T, async () => {
    const frame = Buffer.from([0x81, 0x85, 1, 2, 3, 4, 0x69, 0x67, 0x6f, 0x68, 0x6e]);
    const r = await oneShot(srv, Buffer.concat([Buffer.from(UPGRADE.replace('PLACE', 'bad'), 'latin1'), frame]));
    assert.equal(r.responses.length, 1, r.raw.toString('latin1'));
    assert.equal(r.responses[0].status, 401);
    assert.ok(r.closed);
    await assertAlive();
  });

  it('an upgrade without a token, then another request: one 401, closed', T, async () => {
    const r = await oneShot(
      srv,
      UPGRADE.replace('?access_token=PLACE', '') + 'GET /healthz HTTP/1.1\r\n\r\n'.repeat(50),
    );
    assert.equal(r.responses.length, 1);
    assert.equal(r.responses[0].status, 401);
    await assertAlive();
  });

  it('a 400 followed by more requests: one response, closed', T, async () => {
    const r = await oneShot(srv, 'BAD\r\n\r\n' + 'GET /healthz HTTP/1.1\r\n\r\n'.repeat(50));
    assert.equal(r.responses.length, 1);
    assert.equal(r.responses[0].status, 400);
    await assertAlive();
  });

  it('keep-alive pipelining still answers every request in order', T, async () => {
    const c = await rawConnect(srv.port);
    c.write('GET /healthz HTTP/1.1\r\n\r\n'.repeat(20) + 'GET /nope HTTP/1.1\r\nConnection: close\r\n\r\n');
    assert.ok(await c.waitClose(5000));
    const rs = parseResponses(c.data);
    assert.equal(rs.length, 21);
    assert.deepEqual(
      rs.map((x) => x.status),
      [...Array(20).fill(200), 404],
    );
  });
});
