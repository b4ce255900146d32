'use strict';
// WebSocket transport: JSON ping/pong and request ids, errors that keep the connection open,
// control frames, close codes for protocol violations (1002, 1003, 1007, 1009), fragmentation,
// the close handshake, and the idle timeout (ping, then close 4000).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { registerUser, get, rawConnect } = require('./lib/http');
const { wsConnectHello, rawWsConnect, encodeFrame, decodeFrames, OP } = require('./lib/ws');

const T = { timeout: 20000 };

describe('WebSocket transport', () => {
  let srv;
  let user;
  const clients = [];
  before(async () => {
    srv = await startServer({ args: { 'ws-max-message': 1024 } });
    user = await registerUser(srv);
  });
  after(async () => {
    for (const c of clients) c.terminate ? c.terminate() : c.destroy();
    if (srv) await srv.stop();
  });

  async function open() {
    const { client, hello } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    clients.push(client);
    return { client, hello };
  }

  async function openRaw() {
    const rw = await rawWsConnect(srv.port, user.access_token);
    clients.push(rw);
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.TEXT), 'no hello on the raw connection');
    assert.equal(rw.textMessages()[0].type, 'hello');
    return rw;
  }

  // Bytes that arrive in the same read as the upgrade request wait (conn_pause) until the
  // connection's rooms are subscribed and hello is sent.
  it('frames sent together with the upgrade request are answered after the hello', T, async () => {
    const c = await rawConnect(srv.port);
    clients.push(c);
    c.write(
      Buffer.concat([
        Buffer.from(
          'GET /v1/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
            'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n' +
            `Authorization: Bearer ${user.access_token}\r\n\r\n`,
        ),
        encodeFrame(OP.TEXT, JSON.stringify({ type: 'ping', id: 'early-1' })),
        encodeFrame(OP.TEXT, JSON.stringify({ type: 'ping', id: 'early-2' })),
      ]),
    );
    const texts = () => {
      const end = c.data.indexOf('\r\n\r\n');
      if (end < 0) return [];
      return decodeFrames(c.data.subarray(end + 4))
        .frames.filter((f) => f.opcode === OP.TEXT)
        .map((f) => JSON.parse(f.payload.toString()));
    };
    assert.ok(await c.waitFor(() => texts().length >= 3, 5000), `got ${JSON.stringify(texts())}`);
    assert.match(c.data.toString('latin1'), /^HTTP\/1\.1 101 /);
    const [hello, p1, p2] = texts();
    assert.equal(hello.type, 'hello');
    assert.deepEqual(p1, { type: 'pong', id: 'early-1' });
    assert.deepEqual(p2, { type: 'pong', id: 'early-2' });
  });

  it('hello reports the configured max_message', T, async () => {
    const { hello } = await open();
    assert.equal(hello.limits.max_message, 1024);
  });

  it('ping -> pong echoing a string id', T, async () => {
    const { client } = await open();
    client.send({ type: 'ping', id: 'abc-123' });
    const m = await client.next((x) => x.type !== 'hello');
    assert.deepEqual(m, { type: 'pong', id: 'abc-123' });
  });

  it('ping -> pong echoing an integer id, in request order', T, async () => {
    const { client } = await open();
    for (const id of [7, 0, -3, 9007199254740991]) client.send({ type: 'ping', id });
    for (const id of [7, 0, -3, 9007199254740991]) {
      const m = await client.next((x) => x.type === 'pong');
      assert.equal(m.id, id);
    }
  });

  it('ping without id -> pong without id', T, async () => {
    const { client } = await open();
    client.send({ type: 'ping' });
    const m = await client.next((x) => x.type === 'pong');
    assert.equal('id' in m, false);
  });

  it('a 64-byte string id is echoed; 65 bytes is invalid_field', T, async () => {
    const { client } = await open();
    const id64 = 'x'.repeat(64);
    client.send({ type: 'ping', id: id64 });
    assert.equal((await client.next((x) => x.type !== 'hello')).id, id64);
    client.send({ type: 'ping', id: 'y'.repeat(65) });
    const e = await client.next((x) => x.type === 'error');
    assert.equal(e.code, 'invalid_field');
    client.send({ type: 'ping', id: 1 });
    assert.equal((await client.next((x) => x.type === 'pong')).id, 1, 'connection stays usable');
  });

  for (const [what, id] of [
    ['a float', 1.5],
    ['an object', { a: 1 }],
    ['null', null],
    ['a boolean', true],
  ]) {
    it(`an id that is ${what} is invalid_field`, T, async () => {
      const { client } = await open();
      client.send({ type: 'ping', id });
      const e = await client.next((x) => x.type !== 'hello');
      assert.equal(e.type, 'error');
      assert.equal(e.code, 'invalid_field');
    });
  }

  it('unknown type -> error unknown_type echoing the id', T, async () => {
    const { client } = await open();
    client.send({ type: 'no_such_thing', id: 'q1' });
    const e = await client.next((x) => x.type !== 'hello');
    assert.equal(e.type, 'error');
    assert.equal(e.code, 'unknown_type');
    assert.equal(e.id, 'q1');
    assert.equal(typeof e.message, 'string');
  });

  it('missing or non-string type -> invalid_field echoing the id', T, async () => {
    const { client } = await open();
    client.send({ id: 5 });
    client.send({ type: 42, id: 6 });
    const e1 = await client.next((x) => x.type === 'error');
    const e2 = await client.next((x) => x.type === 'error');
    assert.equal(e1.code, 'invalid_field');
    assert.equal(e1.id, 5);
    assert.equal(e2.code, 'invalid_field');
    assert.equal(e2.id, 6);
  });

  for (const [what, text] of [
    ['invalid JSON', '{"type":"ping",'],
    ['a JSON array', '[1,2,3]'],
    ['a JSON string', '"ping"'],
    ['an empty message', ''],
    ['duplicate keys', '{"type":"ping","type":"pong"}'],
  ]) {
    it(`${what} -> error invalid_json, and the connection stays open`, T, async () => {
      const { client } = await open();
      client.send(text);
      const e = await client.next((x) => x.type !== 'hello');
      assert.equal(e.type, 'error');
      assert.equal(e.code, 'invalid_json');
      client.send({ type: 'ping', id: 'after' });
      const p = await client.next((x) => x.type === 'pong');
      assert.equal(p.id, 'after');
      assert.equal(client.closeInfo, null);
    });
  }

  it('a WebSocket ping frame gets a pong frame with the same payload', T, async () => {
    const { client } = await open();
    const payload = Buffer.from('are you there? \u2713');
    const got = new Promise((resolve) => client.ws.once('pong', resolve));
    client.ws.ping(payload);
    const pong = await Promise.race([got, sleep(5000).then(() => null)]);
    assert.ok(pong, 'no pong frame');
    assert.deepEqual(Buffer.from(pong), payload);
  });

  it('an empty ping frame gets an empty pong frame', T, async () => {
    const { client } = await open();
    const got = new Promise((resolve) => client.ws.once('pong', resolve));
    client.ws.ping();
    const pong = await Promise.race([got, sleep(5000).then(() => null)]);
    assert.ok(pong, 'no pong frame');
    assert.equal(pong.length, 0);
  });

  it('client close 1000 -> the server echoes 1000 and closes TCP', T, async () => {
    const { client } = await open();
    client.ws.close(1000, 'bye');
    const info = await client.closed(5000);
    assert.equal(info.code, 1000);
  });

  it('client close 4321 -> the server echoes 4321', T, async () => {
    const rw = await openRaw();
    const p = Buffer.alloc(2);
    p.writeUInt16BE(4321);
    rw.sendFrame(OP.CLOSE, p);
    assert.ok(await rw.conn.waitClose(5000), 'server did not close the TCP connection');
    assert.deepEqual(rw.closeFrame()?.code, 4321);
  });

  it('a fragmented text message (ws fin:false pieces) is reassembled', T, async () => {
    const { client } = await open();
    const text = JSON.stringify({ type: 'ping', id: 'frag-1' });
    client.ws.send(text.slice(0, 5), { fin: false });
    client.ws.send(text.slice(5, 12), { fin: false });
    client.ws.send(text.slice(12), { fin: true });
    const m = await client.next((x) => x.type !== 'hello');
    assert.deepEqual(m, { type: 'pong', id: 'frag-1' });
  });

  it('a ping frame between fragments is answered and the message still completes', T, async () => {
    const rw = await openRaw();
    const text = Buffer.from(JSON.stringify({ type: 'ping', id: 'inter' }));
    rw.sendFrame(OP.TEXT, text.subarray(0, 8), { fin: false });
    rw.sendFrame(OP.PING, Buffer.from('mid'));
    rw.sendFrame(OP.CONT, text.subarray(8), { fin: true });
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.TEXT && f.payload.includes('inter')));
    const frames = rw.frames();
    const pong = frames.find((f) => f.opcode === OP.PONG);
    assert.ok(pong, 'no pong for the interleaved ping');
    assert.equal(pong.payload.toString(), 'mid');
    assert.deepEqual(rw.textMessages().at(-1), { type: 'pong', id: 'inter' });
  });

  it('a message over --ws-max-message (1024) -> close 1009', T, async () => {
    const { client } = await open();
    client.send({ type: 'ping', id: 'big', pad: 'x'.repeat(2000) });
    const info = await client.closed(5000);
    assert.equal(info.code, 1009);
  });

  it('a fragmented message whose total exceeds --ws-max-message -> close 1009', T, async () => {
    const { client } = await open();
    for (let i = 0; i < 4; i++) client.ws.send('x'.repeat(400), { fin: false });
    client.ws.send('x'.repeat(400), { fin: true });
    const info = await client.closed(5000);
    assert.equal(info.code, 1009);
  });

  it('a message of exactly 1024 bytes is accepted', T, async () => {
    const { client } = await open();
    const base = JSON.stringify({ type: 'ping', id: 'edge', pad: '' });
    const msg = JSON.stringify({ type: 'ping', id: 'edge', pad: 'x'.repeat(1024 - base.length) });
    assert.equal(Buffer.byteLength(msg), 1024);
    client.send(msg);
    const m = await client.next((x) => x.type !== 'hello');
    assert.equal(m.type, 'pong');
  });

  it('invalid UTF-8 in a text frame -> close 1007', T, async () => {
    const { client } = await open();
    client.ws.send(Buffer.from([0x7b, 0x22, 0xc3, 0x28, 0x22, 0x7d]), { binary: false });
    const info = await client.closed(5000);
    assert.equal(info.code, 1007);
  });

  it('UTF-8 split across fragments is valid', T, async () => {
    const rw = await openRaw();
    const text = Buffer.from(JSON.stringify({ type: 'ping', id: 'caf\u00e9 \u{1F600}' }));
    const cut = text.indexOf(0xf0) + 2; // inside the 4-byte emoji
    rw.sendFrame(OP.TEXT, text.subarray(0, cut), { fin: false });
    rw.sendFrame(OP.CONT, text.subarray(cut), { fin: true });
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.TEXT && f.payload.includes('caf')), 'no reply');
    assert.deepEqual(rw.textMessages().at(-1), { type: 'pong', id: 'caf\u00e9 \u{1F600}' });
    assert.equal(rw.closeFrame(), null);
  });

  it('a binary message -> close 1003', T, async () => {
    const { client } = await open();
    client.ws.send(Buffer.from('{"type":"ping"}'), { binary: true });
    const info = await client.closed(5000);
    assert.equal(info.code, 1003);
  });

  it('an unmasked client frame after a valid handshake -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendText({ type: 'ping', id: 1 }, { mask: false });
    assert.ok(await rw.conn.waitClose(5000), 'server did not close the connection');
    assert.equal(rw.closeFrame()?.code, 1002);
    assert.equal(rw.textMessages().some((m) => m.type === 'pong'), false, 'unmasked frame was processed');
  });

  it('a client that never answers the close frame is disconnected after the grace period', T, async () => {
    const rw = await rawWsConnect(srv.port, user.access_token, { answerClose: false });
    clients.push(rw);
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.TEXT), 'no hello');
    rw.sendText({ type: 'ping' }, { mask: false });
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.CLOSE, 5000), 'no close frame');
    assert.equal(rw.closeFrame().code, 1002);
    assert.ok(await rw.conn.waitClose(6000), 'TCP connection still open long after the close frame');
  });

  it('a frame with a reserved bit set -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendText({ type: 'ping' }, { rsv: 4 });
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('an unknown opcode -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(0x3, Buffer.from('x'));
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a ping frame over 125 bytes -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.PING, Buffer.alloc(126, 0x61));
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a fragmented ping frame -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.PING, Buffer.from('x'), { fin: false });
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a continuation frame with no message started -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.CONT, Buffer.from('x'), { fin: true });
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a new text frame inside a fragmented message -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.TEXT, Buffer.from('{"type"'), { fin: false });
    rw.sendFrame(OP.TEXT, Buffer.from('{}'), { fin: true });
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a close frame with a 1-byte payload -> close 1002', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.CLOSE, Buffer.from([0x03]));
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a close frame with an invalid code (1005) -> close 1002', T, async () => {
    const rw = await openRaw();
    const p = Buffer.alloc(2);
    p.writeUInt16BE(1005);
    rw.sendFrame(OP.CLOSE, p);
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1002);
  });

  it('a close reason that is not UTF-8 -> close 1007', T, async () => {
    const rw = await openRaw();
    rw.sendFrame(OP.CLOSE, Buffer.from([0x03, 0xe8, 0xff, 0xfe]));
    assert.ok(await rw.conn.waitClose(5000));
    assert.equal(rw.closeFrame()?.code, 1007);
  });

  it('the server keeps serving other clients after all those violations', T, async () => {
    const h = await get(srv, '/healthz');
    assert.equal(h.status, 200);
    const { client } = await open();
    client.send({ type: 'ping', id: 'still-alive' });
    assert.equal((await client.next((x) => x.type === 'pong')).id, 'still-alive');
  });
});

describe('WebSocket frame limit (--ws-max-frame 512, --ws-max-message 4096)', () => {
  let srv;
  let user;
  const clients = [];
  before(async () => {
    srv = await startServer({ args: { 'ws-max-frame': 512, 'ws-max-message': 4096 } });
    user = await registerUser(srv);
  });
  after(async () => {
    for (const c of clients) c.terminate();
    if (srv) await srv.stop();
  });

  it('a message in frames under the frame limit is accepted although larger than one frame', T, async () => {
    const { client } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    clients.push(client);
    const text = JSON.stringify({ type: 'ping', id: 'frames', pad: 'q'.repeat(1400) });
    for (let i = 0; i < text.length; i += 500) client.ws.send(text.slice(i, i + 500), { fin: i + 500 >= text.length });
    const m = await client.next((x) => x.type !== 'hello');
    assert.deepEqual(m, { type: 'pong', id: 'frames' });
  });

  it('one frame over --ws-max-frame -> close 1009', T, async () => {
    const { client } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    clients.push(client);
    client.send({ type: 'ping', pad: 'q'.repeat(600) });
    assert.equal((await client.closed(5000)).code, 1009);
  });
});

describe('WebSocket idle timeout (--ws-idle 2)', () => {
  let srv;
  let user;
  const clients = [];
  before(async () => {
    srv = await startServer({ args: { 'ws-idle': 2 } });
    user = await registerUser(srv);
  });
  after(async () => {
    for (const c of clients) c.terminate ? c.terminate() : c.destroy();
    if (srv) await srv.stop();
  });

  it('a client that does not answer pings gets a ping frame, then close 4000', T, async () => {
    const rw = await rawWsConnect(srv.port, user.access_token);
    clients.push(rw);
    assert.ok(await rw.waitFrame((f) => f.opcode === OP.PING, 6000), 'no ping frame from the server');
    assert.ok(await rw.conn.waitClose(8000), 'connection not closed after the idle timeout');
    const frames = rw.frames();
    const pingAt = frames.findIndex((f) => f.opcode === OP.PING);
    const closeAt = frames.findIndex((f) => f.opcode === OP.CLOSE);
    assert.ok(closeAt > pingAt, 'close must follow the ping');
    assert.equal(rw.closeFrame().code, 4000);
  });

  it('a client that answers pings (ws does automatically) stays open for 5 s', T, async () => {
    const { client } = await wsConnectHello(srv.wsUrl, { token: user.access_token });
    clients.push(client);
    let pings = 0;
    client.ws.on('ping', () => pings++);
    await sleep(5000);
    assert.equal(client.closeInfo, null, `closed: ${JSON.stringify(client.closeInfo)}`);
    assert.ok(pings >= 1, 'the server never pinged an idle client');
    client.send({ type: 'ping', id: 'alive' });
    assert.equal((await client.next((x) => x.type === 'pong')).id, 'alive');
  });

  it('a client that keeps sending messages (but never pongs) is not idle', T, async () => {
    const rw = await rawWsConnect(srv.port, user.access_token);
    clients.push(rw);
    for (let i = 0; i < 10; i++) {
      rw.sendText({ type: 'ping', id: i });
      await sleep(500);
    }
    assert.equal(rw.conn.closed, false);
    assert.equal(rw.closeFrame(), null);
  });
});
