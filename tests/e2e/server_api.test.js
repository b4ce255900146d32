'use strict';
// The server API for app backends (/v1/server/...): API keys from `chatd apikey` (shown once,
// stored hashed, revocable), the whole authentication matrix (no key, wrong key, revoked key,
// a user token on server routes, a key on user routes and on the WebSocket), the per-key rate
// limit, the audit log (key id and name, never the key), and what the routes do: users without
// a password, minted tokens that work as a login's, rooms, members and messages as a user or
// as the system through the same rules as WebSocket and REST sends.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { startChat, newUser, api, createRoom, fullHistory, connect } = require('./lib/chat');
const { startServer, sleep } = require('./lib/server');
const { request, expectError, uniqueName } = require('./lib/http');
const { wsConnect } = require('./lib/ws');
const { apikeyCli, createKey, serverApi } = require('./lib/server_api');

const T = { timeout: 30000 };

describe('server API: API keys', () => {
  let srv, key, sapi, user;
  before(async () => {
    srv = await startChat();
    key = createKey(srv, 'backend').key;
    sapi = serverApi(srv, key);
    user = await newUser(srv, 'sa');
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('chatd apikey create prints a ck_ key once; list shows id and name, never the key', T, () => {
    const r = apikeyCli(srv, ['create', '--name', 'shown once']);
    assert.equal(r.code, 0, r.stderr);
    const k = r.stdout.trim();
    assert.match(k, /^ck_[A-Za-z0-9_-]{43}$/);
    const list = apikeyCli(srv, ['list']);
    assert.equal(list.code, 0);
    assert.match(list.stdout, /k_\d+\tshown once\tcreated \S+\tactive/);
    assert.ok(!list.stdout.includes(k.slice(3)), 'the list must not show a key');
    assert.equal(apikeyCli(srv, ['create']).code, 2, 'create without --name is a usage error');
    assert.equal(apikeyCli(srv, ['frobnicate']).code, 2);
  });

  it('no key, a malformed or unknown key, and a user token are 401 on every /v1/server route', T, async () => {
    const routes = [
      ['GET', '/v1/server/events'],
      ['POST', '/v1/server/users', { username: 'x_nokey' }],
      ['POST', `/v1/server/users/${user.id}/tokens`],
      ['POST', '/v1/server/rooms', { name: 'n', owner: user.id }],
      ['POST', '/v1/server/rooms/r_1/members', { user_id: user.id }],
      ['DELETE', `/v1/server/rooms/r_1/members/${user.id}`],
      ['POST', '/v1/server/rooms/r_1/messages', { body: 'b', client_msg_id: 'c' }],
    ];
    const unknown = 'ck_' + crypto.randomBytes(32).toString('base64url');
    for (const [method, p, json] of routes) {
      for (const token of [undefined, 'nope', unknown, user.token]) {
        const r = await request(srv, method, p, { token, json });
        expectError(assert, r, 401, 'unauthorized');
        assert.match(r.headers['www-authenticate'] || '', /Bearer/);
      }
    }
  });

  it('a key is not a user: 401 on user routes and at the WebSocket upgrade', T, async () => {
    for (const p of ['/v1/me', '/v1/rooms', `/v1/users/${user.id}`]) {
      expectError(assert, await request(srv, 'GET', p, { token: key }), 401, 'unauthorized');
    }
    expectError(assert, await request(srv, 'POST', '/v1/rooms', { token: key, json: { name: 'x' } }), 401, 'unauthorized');
    await assert.rejects(wsConnect(srv.wsUrl, { token: key }), (err) => {
      assert.equal(err.statusCode, 401);
      return true;
    });
  });

  it('a revoked key is refused from the next request on', T, async () => {
    const k = createKey(srv, 'to revoke');
    const s = serverApi(srv, k.key);
    assert.equal((await s.get('/v1/server/events?limit=1')).status, 200);
    const r = apikeyCli(srv, ['revoke', k.id]);
    assert.equal(r.code, 0, r.stderr);
    expectError(assert, await s.get('/v1/server/events?limit=1'), 401, 'unauthorized');
    assert.equal(apikeyCli(srv, ['revoke', k.id]).code, 1, 'a second revoke finds no active key');
    assert.match(apikeyCli(srv, ['list']).stdout, new RegExp(`${k.id}\\tto revoke\\tcreated \\S+\\trevoked `));
    assert.equal((await sapi.get('/v1/server/events?limit=1')).status, 200, 'other keys still work');
  });

  it('every call is audited with the key id and name; the key never appears in the log', T, async () => {
    const before = srv.logs().length;
    assert.equal((await sapi.get('/v1/server/events?limit=1')).status, 200);
    await request(srv, 'GET', '/v1/server/events', { token: 'ck_' + 'A'.repeat(43) });
    // The line is written right after the answer: wait for it (bounded).
    const audit = (l) => l.msg === 'server api' && l.route === 'server_events' && l.status === 'ok';
    const refused = (l) => l.msg === 'server api key refused' && l.route === 'server_events';
    let lines = [];
    for (let i = 0; i < 100; i++) {
      lines = srv.logs().slice(before);
      if (lines.some(audit) && lines.some(refused)) break;
      await sleep(50);
    }
    const ok = lines.find(audit);
    assert.ok(ok, `audit line expected: ${JSON.stringify(lines)}`);
    assert.match(ok.key, /^k_\d+$/);
    assert.equal(ok.key_name, 'backend');
    assert.ok(lines.some(refused), `refusal line expected: ${JSON.stringify(lines)}`);
    assert.ok(!srv.stderr.includes(key.slice(3)), 'the key must not be logged');
  });
});

describe('server API: users, tokens, rooms, members, messages', () => {
  let srv, sapi;
  before(async () => {
    srv = await startChat();
    sapi = serverApi(srv, createKey(srv, 'app').key);
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const putUser = async (username) => {
    const r = await sapi.post('/v1/server/users', { username });
    assert.ok(r.status === 201 || r.status === 200, `${r.status} ${r.text}`);
    return r.body.user;
  };
  const mint = async (u) => {
    const r = await sapi.post(`/v1/server/users/${u.id}/tokens`);
    assert.equal(r.status, 201, r.text);
    return { id: u.id, username: u.username, token: r.body.access_token, refresh: r.body.refresh_token };
  };

  it('creates a user without a password once; the same call again finds it; password login never works', T, async () => {
    const name = uniqueName('ext');
    const a = await sapi.post('/v1/server/users', { username: name });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.created, true);
    assert.match(a.body.user.id, /^u_\d+$/);
    const b = await sapi.post('/v1/server/users', { username: name });
    assert.equal(b.status, 200);
    assert.equal(b.body.created, false);
    assert.equal(b.body.user.id, a.body.user.id);
    for (const password of ['', 'correct horse battery', 'x'.repeat(300)]) {
      const r = await request(srv, 'POST', '/v1/auth/login', { json: { username: name, password } });
      expectError(assert, r, 401, 'invalid_credentials');
    }
    expectError(assert, await sapi.post('/v1/server/users', { username: 'no spaces allowed' }), 400, 'invalid_username');
    expectError(assert, await sapi.post('/v1/server/users', {}), 400, 'invalid_username');
  });

  it('PATCH /v1/server/users/{id}: profile fields with the rules of PATCH /v1/me, seen by everyone', T, async () => {
    const u = await putUser(uniqueName('prof'));
    const viewer = await newUser(srv, 'view');
    const patch = (id, json) => sapi.patch(`/v1/server/users/${id}`, json);
    // The avatar is the user's own image upload (as for PATCH /v1/me): uploaded with a minted
    // token; another user's upload is 404.
    const png = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlogAAAABJRU5ErkJggg==', 'base64');
    const upload = async (who) => {
      const up = await request(srv, 'POST', '/v1/uploads', { body: png, headers: { 'Content-Type': 'image/png', Authorization: `Bearer ${who.token}` } });
      assert.equal(up.status, 201, up.text);
      return up.body.attachment.id;
    };
    const pic = await upload(await mint(u));
    expectError(assert, await patch(u.id, { avatar: await upload(viewer) }), 404, 'not_found');
    const r = await patch(u.id, { display_name: 'Ada Lovelace', status_text: 'counting', avatar: pic });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.user.id, u.id);
    assert.equal(r.body.user.display_name, 'Ada Lovelace');
    assert.equal(r.body.user.status_text, 'counting');
    assert.equal(r.body.user.avatar, pic);
    assert.equal(r.body.user.disabled, false);
    // Another user reads the new profile (profile changes are no log entries: reads show them).
    const seen = await api(srv, viewer).get(`/v1/users/${u.id}`);
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.body.user.display_name, 'Ada Lovelace');
    assert.equal(seen.body.user.status_text, 'counting');
    // A field left out is unchanged, null clears it.
    const r2 = await patch(u.id, { status_text: null });
    assert.equal(r2.body.user.status_text, '');
    assert.equal(r2.body.user.display_name, 'Ada Lovelace');
    // The same validation as PATCH /v1/me, the same answers.
    for (const bad of [{ display_name: 'x'.repeat(129) }, { display_name: 'bell\u0007' }, { status_text: 5 }, { avatar: 'no/slashes' }, { disabled: 'yes' }, {}]) {
      const mine = await api(srv, viewer).patch('/v1/me', bad);
      const theirs = await patch(u.id, bad);
      expectError(assert, theirs, 400, 'invalid_field');
      if (!('disabled' in bad) && Object.keys(bad).length) assert.equal(mine.status, 400, JSON.stringify(bad));
    }
    expectError(assert, await patch('u_999999', { display_name: 'x' }), 404, 'not_found');
    expectError(assert, await patch('nope', { display_name: 'x' }), 404, 'not_found');
    // Key checked like every server route.
    expectError(assert, await request(srv, 'PATCH', `/v1/server/users/${u.id}`, { token: viewer.token, json: { display_name: 'x' } }), 401, 'unauthorized');
    const unknown = 'ck_' + crypto.randomBytes(32).toString('base64url');
    expectError(assert, await request(srv, 'PATCH', `/v1/server/users/${u.id}`, { token: unknown, json: { display_name: 'x' } }), 401, 'unauthorized');
    // Audited with its route.
    let line;
    for (let i = 0; i < 100 && !line; i++) {
      line = srv.logs().find((l) => l.msg === 'server api' && l.route === 'server_user_patch' && l.status === 'ok');
      if (!line) await sleep(50);
    }
    assert.ok(line, 'audit line of server_user_patch');
    assert.equal(line.key_name, 'app');
  });

  it('disabling a user ends its sessions (sockets close 4001, tokens and login refused); enabling restores the password', T, async () => {
    const u = await newUser(srv, 'dis'); // registered: has a password
    const c = await connect(srv, u);
    const patch = (json) => sapi.patch(`/v1/server/users/${u.id}`, json);
    const r = await patch({ disabled: true });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.user.disabled, true);
    assert.equal(r.body.sessions_ended, 1);
    await c.waitFor((x) => x.closeInfo, 5000, 'the socket of the disabled user closes');
    assert.equal(c.closeInfo.code, 4001);
    expectError(assert, await api(srv, u).get('/v1/me'), 401, 'unauthorized');
    expectError(assert, await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: u.refresh } }), 401, 'invalid_refresh_token');
    expectError(assert, await request(srv, 'POST', '/v1/auth/login', { json: { username: u.username, password: u.password } }), 401, 'invalid_credentials');
    expectError(assert, await sapi.post(`/v1/server/users/${u.id}/tokens`), 403, 'forbidden');
    // Idempotent.
    assert.equal((await patch({ disabled: true })).body.sessions_ended, 0);
    const r2 = await patch({ disabled: false, display_name: 'back' });
    assert.equal(r2.status, 200, r2.text);
    assert.equal(r2.body.user.disabled, false);
    assert.equal(r2.body.user.display_name, 'back');
    const login = await request(srv, 'POST', '/v1/auth/login', { json: { username: u.username, password: u.password } });
    assert.equal(login.status, 200, 'the password works again after enabling');
    assert.equal((await sapi.post(`/v1/server/users/${u.id}/tokens`)).status, 201);
  });

  it('mints access and refresh tokens that work exactly as a login\'s', T, async () => {
    const u = await mint(await putUser(uniqueName('tok')));
    const me = await api(srv, u).get('/v1/me');
    assert.equal(me.status, 200, me.text);
    assert.equal(me.body.user.id, u.id);
    const c = await connect(srv, u);
    assert.equal(c.hello.user, u.id);
    await c.close();
    const ref = await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: u.refresh } });
    assert.equal(ref.status, 200, ref.text);
    expectError(assert, await sapi.post('/v1/server/users/u_999999/tokens'), 404, 'not_found');
    expectError(assert, await sapi.post('/v1/server/users/nope/tokens'), 404, 'not_found');
  });

  it('creates rooms for an owner, adds and removes members as the system, and keeps the owner', T, async () => {
    const owner = await mint(await putUser(uniqueName('own')));
    const m1 = await putUser(uniqueName('m'));
    const m2 = await putUser(uniqueName('m'));
    const r = await sapi.post('/v1/server/rooms', { name: 'support', topic: 't', owner: owner.id, members: [m1.id] });
    assert.equal(r.status, 201, r.text);
    const room = r.body.room;
    assert.equal(room.created_by, owner.id);
    assert.equal(room.member_count, 2);
    expectError(assert, await sapi.post('/v1/server/rooms', { name: 'x' }), 400, 'invalid_field');
    expectError(assert, await sapi.post('/v1/server/rooms', { name: 'x', owner: owner.id, members: ['bad'] }), 400, 'invalid_field');

    assert.equal((await sapi.post(`/v1/server/rooms/${room.id}/members`, { user_id: m2.id, role: 'admin' })).status, 204);
    expectError(assert, await sapi.post(`/v1/server/rooms/${room.id}/members`, { user_id: m2.id, role: 'owner' }), 400, 'invalid_field');
    assert.equal((await sapi.del(`/v1/server/rooms/${room.id}/members/${m1.id}`)).status, 204);
    expectError(assert, await sapi.del(`/v1/server/rooms/${room.id}/members/${owner.id}`), 409, 'conflict');
    expectError(assert, await sapi.del(`/v1/server/rooms/${room.id}/members/${m1.id}`), 404, 'not_found');
    expectError(assert, await sapi.post('/v1/server/rooms/r_999999/members', { user_id: m1.id }), 404, 'not_found');

    const hist = await fullHistory(srv, owner, room.id);
    const members = hist.filter((e) => e.type === 'member');
    assert.deepEqual(members.map((e) => [e.user, e.action, e.by]), [
      [owner.id, 'join', owner.id],
      [m1.id, 'join', owner.id],
      [m2.id, 'join', 'system'],
      [m1.id, 'kick', 'system'],
    ]);
  });

  it('publishes as the system or as a member through the send rules; members see it live', T, async () => {
    const owner = await mint(await putUser(uniqueName('pub')));
    const outsider = await putUser(uniqueName('out'));
    const room = (await sapi.post('/v1/server/rooms', { name: 'news', owner: owner.id })).body.room;
    const c = await connect(srv, owner);
    try {
      const sys = await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'maintenance at 5', client_msg_id: 'sys-1' });
      assert.equal(sys.status, 201, sys.text);
      assert.equal(sys.body.duplicate, false);
      const live = await c.next((m) => m.type === 'message' && m.room === room.id && m.seq === sys.body.seq);
      assert.equal(live.sender, 'system');
      assert.equal(live.body, 'maintenance at 5');

      const again = await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'maintenance at 5', client_msg_id: 'sys-1' });
      assert.equal(again.status, 200);
      assert.equal(again.body.duplicate, true);
      assert.equal(again.body.seq, sys.body.seq);

      const asUser = await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'hi', client_msg_id: 'u-1', sender: owner.id });
      assert.equal(asUser.status, 201, asUser.text);
      const live2 = await c.next((m) => m.type === 'message' && m.seq === asUser.body.seq);
      assert.equal(live2.sender, owner.id);

      expectError(assert, await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'x', client_msg_id: 'o-1', sender: outsider.id }), 403, 'not_member');
      expectError(assert, await sapi.post('/v1/server/rooms/r_999999/messages', { body: 'x', client_msg_id: 'n-1' }), 404, 'not_found');
      expectError(assert, await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: '', client_msg_id: 'e-1' }), 400, 'invalid_field');
      expectError(assert, await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'x' }), 400, 'invalid_field');
      expectError(assert, await sapi.post(`/v1/server/rooms/${room.id}/messages`, { body: 'x', client_msg_id: 's', sender: 'bob' }), 400, 'invalid_field');
      const hist = await fullHistory(srv, owner, room.id);
      assert.deepEqual(hist.filter((e) => e.type === 'message').map((e) => [e.sender, e.body]), [
        ['system', 'maintenance at 5'],
        [owner.id, 'hi'],
      ]);
    } finally {
      await c.close();
    }
  });
});

describe('server API: rate limit per key', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'server-rate': 1 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--server-rate 1 (burst 2): the third call in a row is 429 with Retry-After; another key is not limited', T, async () => {
    const a = serverApi(srv, createKey(srv, 'a').key);
    const b = serverApi(srv, createKey(srv, 'b').key);
    const codes = [];
    for (let i = 0; i < 3; i++) codes.push((await a.get('/v1/server/events?limit=1')).status);
    assert.deepEqual(codes.slice(0, 2), [200, 200]);
    assert.equal(codes[2], 429);
    const r = await a.get('/v1/server/events?limit=1');
    expectError(assert, r, 429, 'rate_limited');
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal((await b.get('/v1/server/events?limit=1')).status, 200);
  });
});

describe('roles', () => {
  it('a process without the gateway role serves only /healthz, /readyz and /metrics', T, async () => {
    const srv = await startServer({ args: { roles: 'relay,notifier' } });
    try {
      assert.equal((await request(srv, 'GET', '/healthz')).status, 200);
      assert.equal((await request(srv, 'GET', '/readyz')).status, 200);
      assert.equal((await request(srv, 'GET', '/metrics')).status, 200);
      expectError(assert, await request(srv, 'POST', '/v1/auth/register', { json: { username: 'abc', password: 'correct horse' } }), 404, 'not_found');
      expectError(assert, await request(srv, 'GET', '/v1/server/events'), 404, 'not_found');
      expectError(assert, await request(srv, 'GET', '/'), 404, 'not_found');
      assert.ok(srv.logs().some((l) => l.msg === 'roles' && l.roles === 'relay,notifier'));
    } finally {
      await srv.stop();
    }
  });

  it('an unknown role is a configuration error (exit 2)', T, async () => {
    const { runOnce } = require('./lib/server');
    const r = await runOnce(['--roles', 'gateway,bogus']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown role 'bogus'/);
  });
});
