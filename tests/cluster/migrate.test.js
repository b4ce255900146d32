'use strict';
// `chatd migrate --from DATA_DIR --to postgres://...`: a single SQLite node's data moves into a
// fresh PostgreSQL database (lib/engines.js pgDatabase) and a node started on it with the same
// JWT keys serves the same users, rooms, histories, markers and sessions; the next message of a
// room gets the next seq, an old client_msg_id is still a duplicate. A non-empty target and a
// data directory held by a running chatd are refused (exit 1).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { startServer, runOnce } = require('../e2e/lib/server');
const { request } = require('../e2e/lib/http');
const { newUser, api, createRoom, connect, fullHistory, loginAgain, CHAT_DEFAULTS } = require('../e2e/lib/chat');
const { pgDatabase } = require('./lib/engines');

const T = { timeout: 120000 };

/** chatd migrate ...: {code, stdout, stderr}; a sanitizer report fails the test. */
async function migrate(args) {
  const r = await runOnce(['migrate', ...args], { timeoutMs: 60000 });
  assert.doesNotMatch(r.stderr, /AddressSanitizer|LeakSanitizer|runtime error:/, r.stderr);
  return r;
}

function psql(url, sql) {
  return execFileSync('psql', ['-X', '-q', '-tA', url, '-c', sql], { encoding: 'utf8' }).trim();
}

/** Everything a user sees of their rooms: the listing and every room's full history. */
async function snapshot(srv, users) {
  const out = {};
  for (const [name, u] of Object.entries(users)) {
    const r = await api(srv, u).get('/v1/rooms?limit=500');
    assert.equal(r.status, 200, r.text);
    const rooms = r.body.rooms.map((x) => {
      const { status, ...rest } = x; // presence of a DM peer is live state, not data
      if (rest.peer && typeof rest.peer === 'object') delete rest.peer.status;
      return rest;
    });
    const hist = {};
    for (const room of r.body.rooms) hist[room.id] = await fullHistory(srv, u, room.id);
    out[name] = { rooms, hist };
  }
  return out;
}

describe('chatd migrate: a single node into a cluster database', () => {
  let dataDir, one, storeUrl, keys;
  const users = {};
  let group, dm, before_, loggedOut, kept;
  const cmids = {};

  before(async () => {
    dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-migrate-'));
    // Explicitly SQLite, even when the e2e suite's PostgreSQL pass variable is set.
    one = await startServer({ dataDir, args: { ...CHAT_DEFAULTS, 'store-url': '' } });
    for (const n of ['alice', 'bob', 'carol', 'dave']) users[n] = await newUser(one, n);
    const { alice, bob, carol, dave } = users;

    group = await createRoom(one, alice, [bob, carol, dave], { name: 'general', topic: 'tabs\tand\nnewlines \\ too' });
    const dmRes = await api(one, alice).post('/v1/dms', { user_id: bob.id });
    assert.equal(dmRes.status, 201, dmRes.text);
    dm = dmRes.body.room;

    const ca = await connect(one, alice);
    const cb = await connect(one, bob);
    try {
      const bodies = ['hello', 'tab\there', 'line\nbreak', 'back\\slash', 'ünïcødé ✓ 😀', '\\N is not null', 'x'.repeat(2000)];
      for (let i = 0; i < bodies.length; i++) {
        cmids[`a${i}`] = { room: group.id, ack: await ca.sendMsg(group.id, bodies[i], `alice-${i}`) };
        assert.equal(cmids[`a${i}`].ack.type, 'ack', JSON.stringify(cmids[`a${i}`].ack));
      }
      // an idempotent resend before the migration: still one entry
      const again = await ca.sendMsg(group.id, 'hello', 'alice-0');
      assert.equal(again.duplicate, true);
      for (let i = 0; i < 3; i++) {
        cmids[`b${i}`] = { room: group.id, ack: await cb.sendMsg(group.id, `bob ${i}`, `bob-${i}`) };
        cmids[`d${i}`] = { room: dm.id, ack: await cb.sendMsg(dm.id, `dm ${i}`, `bob-dm-${i}`) };
      }
      // read markers: bob read up to alice's third message, alice read the whole DM
      const rb = await cb.req({ type: 'read', room: group.id, seq: cmids.a2.ack.seq });
      assert.equal(rb.type, 'read', JSON.stringify(rb));
      const ra = await ca.req({ type: 'read', room: dm.id, seq: cmids.d2.ack.seq });
      assert.equal(ra.type, 'read', JSON.stringify(ra));
      // message operations and receipts (their own tables): an edit, a reaction, a delete, a
      // thread reply, a delivered watermark
      const root = cmids.a0.ack.seq;
      const ops = [
        await ca.req({ type: 'edit', room: group.id, seq: cmids.a3.ack.seq, body: 'edited before the move' }),
        await cb.req({ type: 'react', room: group.id, seq: root, emoji: '👍', on: true }),
        await ca.req({ type: 'delete', room: group.id, seq: cmids.a4.ack.seq }),
        await cb.req({ type: 'send', room: group.id, body: 'in a thread', client_msg_id: 'bob-t', thread: root }),
      ];
      for (const o of ops) assert.equal(o.type, 'ack', JSON.stringify(o));
      const dl = await cb.req({ type: 'delivered', room: group.id, seq: cmids.a2.ack.seq });
      assert.equal(dl.type, 'delivered', JSON.stringify(dl));
    } finally {
      await ca.close();
      await cb.close();
    }
    // a kick (a member entry, dave out of the room)
    const k = await api(one, alice).del(`/v1/rooms/${group.id}/members/${users.dave.id}`);
    assert.equal(k.status, 204, k.text);
    // carol has two sessions: one logged out, one kept
    loggedOut = await loginAgain(one, carol);
    const lo = await request(one, 'POST', '/v1/auth/logout', { json: { refresh_token: loggedOut.refresh } });
    assert.equal(lo.status, 204, lo.text);
    kept = users.carol;

    const st = await api(one, carol).patch('/v1/me/settings', { share_read_receipts: false });
    assert.equal(st.status, 200, st.text);
    before_ = await snapshot(one, { alice, bob, carol });
    before_.receipts = (await api(one, alice).get(`/v1/rooms/${group.id}/receipts`)).body;
    assert.equal(before_.receipts.receipts.find((x) => x.user === bob.id).delivered_seq, cmids.a2.ack.seq);
    assert.equal(before_.bob.rooms.find((r) => r.id === group.id).unread > 0, true, 'bob has unread messages');
    await one.stop({ removeDataDir: false });
    one = null;
    keys = fs.readFileSync(path.join(dataDir, 'jwt.keys'), 'utf8').trim();
    storeUrl = pgDatabase();
  });

  after(async () => {
    if (one) await one.kill();
    if (dataDir) fs.rmSync(dataDir, { recursive: true, force: true });
  });

  it('copies every table, prints matching counts, and a node on PostgreSQL serves the same data', T, async () => {
    const r = await migrate(['--from', dataDir, '--to', storeUrl]);
    assert.equal(r.code, 0, `migrate failed:\n${r.stdout}\n${r.stderr}`);
    for (const t of ['users', 'sessions', 'refresh_tokens', 'rooms', 'members', 'events', 'msg_state', 'msg_edits', 'reactions', 'delivered', 'user_settings']) {
      const m = new RegExp(`^${t}\\s+(\\d+)\\s+(\\d+)\\s+same$`, 'm').exec(r.stdout);
      assert.ok(m, `no count line for ${t} in:\n${r.stdout}`);
      assert.equal(m[1], m[2], `${t} counts differ`);
      assert.ok(Number(m[1]) > 0, `${t}: nothing copied`);
    }
    assert.match(r.stdout, /--jwt-keys/, 'the note about the JWT keys');
    assert.ok(!r.stdout.includes(keys.split(':')[1]), 'the secret is never printed');
    assert.equal(psql(storeUrl, 'SELECT count(*) FROM users'), '4');

    const pg = await startServer({ args: { ...CHAT_DEFAULTS, 'store-url': storeUrl, 'jwt-keys': keys } });
    try {
      // the same users log in with their passwords; their old access tokens still verify
      for (const n of ['alice', 'bob', 'carol', 'dave']) {
        const u = users[n];
        const li = await request(pg, 'POST', '/v1/auth/login', { json: { username: u.username, password: u.password } });
        assert.equal(li.status, 200, `${n} login: ${li.text}`);
        assert.equal(li.body.user.id, u.id);
        const me = await api(pg, u).get('/v1/me');
        assert.equal(me.status, 200, `${n}'s old access token: ${me.text}`);
      }
      // rooms, histories, markers and unread counts are identical
      const after_ = await snapshot(pg, { alice: users.alice, bob: users.bob, carol: users.carol });
      after_.receipts = (await api(pg, users.alice).get(`/v1/rooms/${group.id}/receipts`)).body;
      assert.deepEqual(after_, before_);
      const dl = await api(pg, users.dave).get('/v1/rooms');
      assert.deepEqual(dl.body.rooms, [], 'the kicked user is in no room');
      const dh = await api(pg, users.dave).get(`/v1/rooms/${group.id}/messages`);
      assert.equal(dh.status, 403, 'the kicked user cannot read the room');

      // a resend of an old client_msg_id is a duplicate with its original seq (WS and REST)
      const ca = await connect(pg, users.alice);
      try {
        const dup = await ca.sendMsg(group.id, 'hello', 'alice-1');
        assert.equal(dup.type, 'ack', JSON.stringify(dup));
        assert.equal(dup.duplicate, true);
        assert.equal(dup.seq, cmids.a1.ack.seq);
        const lastSeq = before_.alice.rooms.find((x) => x.id === group.id).last_seq;
        const fresh = await ca.sendMsg(group.id, 'after the migration', 'alice-new');
        assert.equal(fresh.duplicate, false);
        assert.equal(fresh.seq, lastSeq + 1, 'the next seq follows the copied log');
      } finally {
        await ca.close();
      }
      const rdup = await api(pg, users.bob).post(`/v1/rooms/${dm.id}/messages`, { body: 'dm 0', client_msg_id: 'bob-dm-0' });
      assert.equal(rdup.status, 200, rdup.text);
      assert.equal(rdup.body.duplicate, true);
      assert.equal(rdup.body.seq, cmids.d0.ack.seq);
      const dmLast = before_.bob.rooms.find((x) => x.id === dm.id).last_seq;
      const rnew = await api(pg, users.bob).post(`/v1/rooms/${dm.id}/messages`, { body: 'dm new', client_msg_id: 'bob-dm-new' });
      assert.equal(rnew.status, 201, rnew.text);
      assert.equal(rnew.body.seq, dmLast + 1);
      // opening the same DM finds the copied one (dm_key preserved)
      const reopen = await api(pg, users.bob).post('/v1/dms', { user_id: users.alice.id });
      assert.equal(reopen.status, 200, reopen.text);
      assert.equal(reopen.body.room.id, dm.id);

      // sessions: the logged-out one stays ended, the kept one refreshes
      const bad = await request(pg, 'POST', '/v1/auth/refresh', { json: { refresh_token: loggedOut.refresh } });
      assert.equal(bad.status, 401, bad.text);
      assert.equal(bad.body.error.code, 'invalid_refresh_token');
      const oldAccess = await api(pg, loggedOut).get('/v1/me');
      assert.equal(oldAccess.status, 401, "the logged-out session's access token stays refused");
      const good = await request(pg, 'POST', '/v1/auth/refresh', { json: { refresh_token: kept.refresh } });
      assert.equal(good.status, 200, good.text);

      // new rows get ids past the copied ones
      const eve = await newUser(pg, 'eve');
      assert.ok(!Object.values(users).some((u) => u.id === eve.id), 'a new user id collides');
      const room2 = await createRoom(pg, eve, [users.alice]);
      assert.ok(room2.id !== group.id && room2.id !== dm.id, 'a new room id collides');
      const s2 = await api(pg, eve).post(`/v1/rooms/${room2.id}/messages`, { body: 'hi', client_msg_id: 'eve-1' });
      assert.equal(s2.status, 201, s2.text);
    } finally {
      await pg.stop();
    }

    // the target now holds data: a second migration into it is refused, nothing changes
    const again = await migrate(['--from', dataDir, '--to', storeUrl]);
    assert.equal(again.code, 1, `${again.stdout}\n${again.stderr}`);
    assert.match(again.stderr, /already holds data/);
    assert.equal(psql(storeUrl, 'SELECT count(*) FROM users'), '5');
  });

  it('refuses a data directory held by a running chatd (exit 1, nothing written)', T, async () => {
    const target = pgDatabase();
    const running = await startServer({ dataDir, args: { ...CHAT_DEFAULTS, 'store-url': '' } });
    try {
      const r = await migrate(['--from', dataDir, '--to', target]);
      assert.equal(r.code, 1, `${r.stdout}\n${r.stderr}`);
      assert.match(r.stderr, /in use by a running chatd/);
      assert.equal(psql(target, "SELECT count(*) FROM pg_tables WHERE tablename = 'users'"), '0');
    } finally {
      await running.stop({ removeDataDir: false });
    }
  });

  it('usage errors exit 2; --help documents the command', T, async () => {
    const h = await migrate(['--help']);
    assert.equal(h.code, 0);
    assert.match(h.stdout, /chatd migrate --from DATA_DIR --to postgres:/);
    const main = await runOnce(['--help']);
    assert.match(main.stdout, /chatd migrate --help/);
    assert.equal((await migrate(['--from', dataDir])).code, 2);
    assert.equal((await migrate(['--from', dataDir, '--to', 'mysql://x'])).code, 2);
    assert.equal((await migrate(['--bogus', 'x'])).code, 2);
  });
});
