'use strict';
// Storage that stops taking writes (a full disk): chatd answers the failed writes with errors,
// reports itself not ready while every commit fails, frees everything a failed write built,
// and becomes ready again on its own (a probe commit) once storage takes writes again.
//
// The full disk is simulated without root: chatd ignores SIGXFSZ, so lowering its file size
// limit (prlimit, util-linux) to 1 byte makes every write to its database files fail with EFBIG.

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const { sleep } = require('./lib/server');
const { request } = require('./lib/http');
const { startChat, newUser, api, connect } = require('./lib/chat');

function setFileSizeLimit(pid, soft) {
  execFileSync('prlimit', ['--pid', String(pid), `--fsize=${soft}:`]);
}

async function waitStatus(srv, path, status, timeoutMs = 15000) {
  const deadline = Date.now() + timeoutMs;
  let r;
  for (;;) {
    r = await request(srv, 'GET', path);
    if (r.status === status) return r;
    if (Date.now() > deadline) assert.fail(`${path}: still ${r.status} ${r.text}, wanted ${status}`);
    await sleep(100);
  }
}

test('failing commits: errors, /readyz 503 with the reason, nothing leaked, recovery', async () => {
  const srv = await startChat();
  try {
    const alice = await newUser(srv, 'sf');
    const bob = await newUser(srv, 'sf');
    const room = (await api(srv, alice).post('/v1/rooms', { name: 'before', members: [bob.id] })).body.room;
    assert.ok(room && room.id);
    const c = await connect(srv, alice);
    assert.equal((await request(srv, 'GET', '/readyz')).status, 200);

    setFileSizeLimit(srv.pid, 1);
    try {
      // A write whose job built its response before the commit failed (the leak of issue 11).
      const r = await api(srv, alice).post('/v1/rooms', { name: 'during', members: [bob.id] });
      assert.equal(r.status, 500, r.text);
      assert.equal(r.body.error.code, 'io_error');
      // A WebSocket send fails with an error reply, not an ack.
      const reply = await c.req({ type: 'send', room: room.id, client_msg_id: 'm-fail', body: 'x' });
      assert.equal(reply.type, 'error', JSON.stringify(reply));
      assert.equal(reply.code, 'io_error');
      const ready = await request(srv, 'GET', '/readyz');
      assert.equal(ready.status, 503, ready.text);
      assert.equal(ready.body.error.code, 'unavailable');
      assert.match(ready.body.error.message, /storage failing/);
      // It stays not ready without traffic: the probe commits keep failing.
      await sleep(1500);
      assert.equal((await request(srv, 'GET', '/readyz')).status, 503);
      const m = await request(srv, 'GET', '/metrics');
      assert.match(m.text, /\nchatd_store_failing 1\n/);
    } finally {
      setFileSizeLimit(srv.pid, 'unlimited');
    }
    // Ready again with no write from any client: the store's own probe commit succeeded.
    await waitStatus(srv, '/readyz', 200);
    const r2 = await api(srv, alice).post('/v1/rooms', { name: 'after', members: [bob.id] });
    assert.equal(r2.status, 201, r2.text);
    const ack = await c.req({ type: 'send', room: room.id, client_msg_id: 'm-ok', body: 'y' });
    assert.equal(ack.type, 'ack', JSON.stringify(ack));
    c.close();
    await srv.stop(); // asserts exit 0 and no sanitizer (LeakSanitizer) report
  } catch (e) {
    await srv.kill();
    throw e;
  }
});
