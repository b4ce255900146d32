'use strict';
// Storage that goes away (PostgreSQL only: runs in scripts/test.sh's PostgreSQL pass, skipped on
// SQLite): the server refuses chatd's database role and ends its sessions, as a database restart
// or outage does. Writes answer `unavailable` (503 on REST, an error frame on WebSockets), nothing
// unacknowledged is stored, /readyz says 503 until the database answers again, and then service
// resumes by itself: a resend of the failed message is stored once, right after the last acked
// one (no gap).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { PG_BASE, pgStoreUrl, pgSchemaOf } = require('./lib/server');
const { request } = require('./lib/http');
const { startChat, newUser, api, createRoom, connect, fullHistory, sleep } = require('./lib/chat');
const { wsConnect } = require('./lib/ws');

const skip = PG_BASE ? false : 'needs PostgreSQL (CHATD_TEST_STORE_URL, set by scripts/test.sh)';

function pgSql(sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', PG_BASE, '-c', sql], { stdio: 'ignore' });
}

async function readyz(srv) {
  return (await request(srv, 'GET', '/readyz')).status;
}

async function waitReady(srv, want, ms) {
  const end = Date.now() + ms;
  let s;
  while ((s = await readyz(srv)) !== want && Date.now() < end) await sleep(100);
  return s;
}

describe('storage unavailable', { skip }, () => {
  let srv;
  let dir;
  const role = `e2e_role_${process.pid}`;

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-pgdown-'));
    pgSql(`DROP ROLE IF EXISTS ${role}; CREATE ROLE ${role} LOGIN SUPERUSER`);
  });
  after(async () => {
    if (srv) await srv.stop();
    pgSql(`ALTER ROLE ${role} LOGIN`);
    fs.rmSync(dir, { recursive: true, force: true });
    pgSql(`DROP SCHEMA IF EXISTS ${pgSchemaOf(dir)} CASCADE; DROP ROLE IF EXISTS ${role}`);
  });

  it('writes answer unavailable, /readyz is 503, and service resumes without a gap', async () => {
    srv = await startChat({ 'store-url': `${pgStoreUrl(dir)}&user=${role}` }, { dataDir: dir });
    const alice = await newUser(srv, 'pa');
    const room = await createRoom(srv, alice);
    const c = await connect(srv, alice);
    const first = await c.sendMsg(room.id, 'before', 'cm-before');
    assert.equal(first.type, 'ack');

    pgSql(`ALTER ROLE ${role} NOLOGIN`);
    pgSql(`SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity WHERE usename = '${role}'`);

    const rest = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'rest', client_msg_id: 'cm-rest' });
    assert.equal(rest.status, 503, rest.text);
    assert.equal(rest.body.error.code, 'unavailable');
    const ws = await c.sendMsg(room.id, 'during', 'cm-during');
    assert.equal(ws.type, 'error');
    assert.equal(ws.code, 'unavailable');
    assert.equal(await waitReady(srv, 503, 5000), 503);
    // A WebSocket opened now cannot read its rooms: closed with 1013 (try again later), never left
    // open with none, where every send would be refused as not_member.
    const late = await wsConnect(srv.wsUrl, { token: alice.token });
    const info = await late.closed(10000);
    assert.equal(info.code, 1013, JSON.stringify(info));
    assert.ok(!late.messages.some((m) => m.type === 'hello'), 'no hello without rooms');

    pgSql(`ALTER ROLE ${role} LOGIN`);
    assert.equal(await waitReady(srv, 200, 15000), 200, '/readyz did not recover');
    const again = await c.sendMsg(room.id, 'during', 'cm-during');
    assert.equal(again.type, 'ack');
    assert.equal(again.duplicate, false);
    assert.equal(again.seq, first.seq + 1);
    const hist = await fullHistory(srv, alice, room.id);
    const bodies = hist.filter((m) => m.type === 'message').map((m) => m.body);
    assert.deepEqual(bodies, ['before', 'during']);
    await c.close();
  });
});
