'use strict';
// People (issue 14, part 5): profiles shown wherever users appear, password change and the
// sessions it ends, the sessions list, account deletion, finding users by prefix, opaque user
// ids, contacts.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { request, uniqueName, registerUser } = require('./lib/http');
const { startChat, newUser, loginAgain, api, createRoom, connect, expectError, withClients } = require('./lib/chat');
const { sleep } = require('./lib/server');

// A 1x1 PNG, and POST /v1/uploads of a body as user u: the attachment id.
const PNG = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR4nGNgYGD4DwABBAEAcCBlogAAAABJRU5ErkJggg==', 'base64');
async function uploadAs(srv, u, body, type) {
  const r = await request(srv, 'POST', '/v1/uploads', { body, headers: { 'Content-Type': type, Authorization: `Bearer ${u.token}` } });
  assert.equal(r.status, 201, r.text);
  return r.body.attachment.id;
}
const download = (srv, u, id) => request(srv, 'GET', `/v1/attachments/${id}`, { token: u && u.token });

test('profiles: PATCH /v1/me and the user objects of me, users, search, members, DM listings', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'pa');
    const b = await newUser(srv, 'pb');
    const pic = await uploadAs(srv, a, PNG, 'image/png');
    const r = await api(srv, a).patch('/v1/me', { display_name: 'Ада Lovelace', avatar: pic, status_text: 'on a break' });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(
      { d: r.body.user.display_name, a: r.body.user.avatar, s: r.body.user.status_text },
      { d: 'Ада Lovelace', a: pic, s: 'on a break' });
    const check = (u, what) => {
      assert.equal(u.display_name, 'Ада Lovelace', what);
      assert.equal(u.avatar, pic, what);
      assert.equal(u.status_text, 'on a break', what);
    };
    check((await api(srv, a).get('/v1/me')).body.user, 'me');
    check((await api(srv, b).get(`/v1/users/${a.id}`)).body.user, 'users/{id}');
    check((await api(srv, b).get(`/v1/users?username=${a.username}`)).body.user, 'users?username');
    const found = await api(srv, b).get(`/v1/users?prefix=${a.username.slice(0, 6)}`);
    check(found.body.users.find((u) => u.id === a.id), 'users?prefix');
    const room = await createRoom(srv, b, [a]);
    const got = await api(srv, b).get(`/v1/rooms/${room.id}`);
    check(got.body.room.members.find((m) => m.user_id === a.id).user, 'room members');
    const page = await api(srv, b).get(`/v1/rooms/${room.id}/members`);
    check(page.body.members.find((m) => m.user_id === a.id).user, 'member page');
    const dm = await api(srv, b).post('/v1/dms', { user_id: a.id });
    assert.ok(dm.status === 201 || dm.status === 200, dm.text);
    const list = await api(srv, b).get('/v1/rooms');
    const d = list.body.rooms.find((x) => x.id === dm.body.room.id);
    assert.equal(d.peer, a.id);
    check(d.peer_user, 'DM listing');

    // partial update keeps the rest; null clears
    const r2 = await api(srv, a).patch('/v1/me', { status_text: null });
    assert.equal(r2.body.user.status_text, '');
    assert.equal(r2.body.user.display_name, 'Ада Lovelace');
    // validation
    expectError(assert, await api(srv, a).patch('/v1/me', {}), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { display_name: 'x'.repeat(129) }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { display_name: 'bell\u0007' }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { display_name: 'c1\u0085' }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { status_text: 'y'.repeat(281) }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { avatar: '../etc/passwd' }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { display_name: 5 }), 400, 'invalid_field');
  } finally {
    await srv.stop();
  }
});

test('password change: full check of the current one, other sessions end and their sockets close 4001', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'pw');
    const a2 = await loginAgain(srv, a);
    const other = await connect(srv, a2);
    const mine = await connect(srv, a);
    await withClients([other, mine], async () => {
      expectError(assert, await api(srv, a).post('/v1/me/password', { current: 'wrong password!', new: 'brand new pass' }), 401, 'invalid_credentials');
      expectError(assert, await api(srv, a).post('/v1/me/password', { current: a.password, new: 'short' }), 400, 'invalid_password');
      expectError(assert, await api(srv, a).post('/v1/me/password', { current: a.password }), 400, 'invalid_field');
      const r = await api(srv, a).post('/v1/me/password', { current: a.password, new: 'brand new pass' });
      assert.equal(r.status, 204, r.text);
      await other.waitFor((c) => c.closeInfo, 5000, 'close of the other session');
      assert.equal(other.closeInfo.code, 4001);
      expectError(assert, await api(srv, a2).get('/v1/me'), 401, 'unauthorized');
      const rt = await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: a2.refresh } });
      expectError(assert, rt, 401, 'invalid_refresh_token');
      // this session goes on
      assert.equal((await api(srv, a).get('/v1/me')).status, 200);
      assert.equal((await mine.req({ type: 'ping' })).type, 'pong');
      const old = await request(srv, 'POST', '/v1/auth/login', { json: { username: a.username, password: a.password } });
      expectError(assert, old, 401, 'invalid_credentials');
      const nw = await request(srv, 'POST', '/v1/auth/login', { json: { username: a.username, password: 'brand new pass' } });
      assert.equal(nw.status, 200);
    });
  } finally {
    await srv.stop();
  }
});

test('sessions: list with current, end one (its socket closes 4001), others stay', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'ss');
    const a2 = await loginAgain(srv, a);
    const a3 = await loginAgain(srv, a);
    const r = await api(srv, a).get('/v1/me/sessions');
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.sessions.length, 3);
    assert.equal(r.body.sessions.filter((s) => s.current).length, 1);
    for (const s of r.body.sessions) {
      assert.match(s.id, /^s_\d+$/);
      assert.equal(typeof s.created_at, 'number');
      assert.equal(typeof s.last_used_at, 'number');
    }
    const cur2 = (await api(srv, a2).get('/v1/me/sessions')).body.sessions.find((s) => s.current);
    const c2 = await connect(srv, a2);
    await withClients([c2], async () => {
      const e = await api(srv, a).del(`/v1/me/sessions/${cur2.id}`);
      assert.equal(e.status, 204, e.text);
      await c2.waitFor((c) => c.closeInfo, 5000, 'close');
      assert.equal(c2.closeInfo.code, 4001);
    });
    expectError(assert, await api(srv, a2).get('/v1/me'), 401, 'unauthorized');
    assert.equal((await api(srv, a3).get('/v1/me')).status, 200);
    assert.equal((await api(srv, a).get('/v1/me/sessions')).body.sessions.length, 2);
    expectError(assert, await api(srv, a).del(`/v1/me/sessions/${cur2.id}`), 404, 'not_found');
    // another user's session is not found either
    const b = await newUser(srv, 'sb');
    const bs = (await api(srv, b).get('/v1/me/sessions')).body.sessions[0];
    expectError(assert, await api(srv, a).del(`/v1/me/sessions/${bs.id}`), 404, 'not_found');
    expectError(assert, await api(srv, a).del('/v1/me/sessions/x_1'), 404, 'not_found');
    assert.equal((await api(srv, b).get('/v1/me')).status, 200);
  } finally {
    await srv.stop();
  }
});

test('account deletion: password required, messages stay from a deleted user, username freed, memberships and sessions end', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'da');
    const b = await newUser(srv, 'db');
    const room = await createRoom(srv, a, [b]);
    const dm = (await api(srv, b).post('/v1/dms', { user_id: a.id })).body.room;
    assert.equal((await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'last words', client_msg_id: 'x1' })).status, 201);
    assert.equal((await api(srv, a).post(`/v1/rooms/${dm.id}/messages`, { body: 'dm words', client_msg_id: 'x2' })).status, 201);
    const cb = await connect(srv, b);
    const ca = await connect(srv, a);
    await withClients([cb, ca], async () => {
      // DELETE with a body: Node sends no framing for it unless Content-Length is set
      const del = (json) => request(srv, 'DELETE', '/v1/me', {
        token: a.token, json, headers: { 'Content-Length': Buffer.byteLength(JSON.stringify(json)) },
      });
      expectError(assert, await del({}), 400, 'invalid_field');
      expectError(assert, await del({ password: 'not the password' }), 401, 'invalid_credentials');
      const r = await del({ password: a.password });
      assert.equal(r.status, 204, r.text);
      await ca.waitFor((c) => c.closeInfo, 5000, 'close of the deleted user');
      assert.equal(ca.closeInfo.code, 4001);
      // b sees the owner leave and the ownership handed over, in the log
      await cb.waitFor((c) => c.entries(room.id).some((e) => e.type === 'member' && e.action === 'leave' && e.user === a.id), 5000, 'leave entry');
      assert.ok(cb.entries(room.id).some((e) => e.type === 'member' && e.action === 'role' && e.user === b.id && e.role === 'owner'));
    });
    expectError(assert, await api(srv, a).get('/v1/me'), 401, 'unauthorized');
    const login = await request(srv, 'POST', '/v1/auth/login', { json: { username: a.username, password: a.password } });
    expectError(assert, login, 401, 'invalid_credentials');
    // the user shows as deleted
    const u = await api(srv, b).get(`/v1/users/${a.id}`);
    assert.equal(u.status, 200);
    assert.equal(u.body.user.username, null);
    assert.equal(u.body.user.deleted, true);
    expectError(assert, await api(srv, b).get(`/v1/users?username=${a.username}`), 404, 'not_found');
    // messages stay, in the group room and the DM (kept for b)
    const h = await api(srv, b).get(`/v1/rooms/${room.id}/messages`);
    assert.ok(h.body.messages.some((m) => m.type === 'message' && m.body === 'last words' && m.sender === a.id));
    const rooms = (await api(srv, b).get('/v1/rooms')).body.rooms;
    const d = rooms.find((x) => x.id === dm.id);
    assert.ok(d, 'the DM stays for the other side');
    assert.equal(d.member_count, 1);
    assert.equal(d.peer_user, undefined);
    const dh = await api(srv, b).get(`/v1/rooms/${dm.id}/messages`);
    assert.ok(dh.body.messages.some((m) => m.body === 'dm words'));
    const g = await api(srv, b).get(`/v1/rooms/${room.id}`);
    assert.equal(g.body.room.member_count, 1);
    assert.equal(g.body.room.role, 'owner');
    // nobody can add the deleted user or open a new direct chat with them
    expectError(assert, await api(srv, b).post(`/v1/rooms/${room.id}/members`, { user_id: a.id }), 404, 'not_found');
    const c = await newUser(srv, 'dc');
    expectError(assert, await api(srv, c).post('/v1/dms', { user_id: a.id }), 404, 'not_found');
    // the username is free again, for a new user with a new id
    const again = await registerUser(srv, a.username);
    assert.notEqual(again.user.id, a.id);
  } finally {
    await srv.stop();
  }
});

test('find users by prefix: at least 2 characters, paged in username order, rate limited', async () => {
  const srv = await startChat({ 'user-search-rate': 2 });
  try {
    const tag = `q${process.pid % 1000}${Math.floor(Math.random() * 1000)}`;
    const names = [];
    for (let i = 0; i < 5; i++) {
      const name = `${tag}_${i}`;
      await registerUser(srv, name);
      names.push(name);
    }
    const other = await newUser(srv, 'zz');
    const seen = [];
    let after = '';
    for (let guard = 0; guard < 10; guard++) {
      const r = await api(srv, other).get(`/v1/users?prefix=${tag}&limit=2${after ? `&after=${after}` : ''}`);
      assert.equal(r.status, 200, r.text);
      assert.ok(r.body.users.length <= 2);
      seen.push(...r.body.users.map((u) => u.username));
      if (!r.body.has_more) {
        assert.equal(r.body.next, null);
        break;
      }
      after = r.body.next;
    }
    assert.deepEqual(seen, names);
    expectError(assert, await api(srv, other).get('/v1/users?prefix=a'), 400, 'invalid_field');
    expectError(assert, await api(srv, other).get('/v1/users?prefix=A%25'), 400, 'invalid_field');
    expectError(assert, await api(srv, other).get(`/v1/users?prefix=${tag}&limit=101`), 400, 'invalid_field');
    // --user-search-rate 2 (burst 8): the bucket runs dry
    let limited = null;
    for (let i = 0; i < 20 && !limited; i++) {
      const r = await api(srv, other).get(`/v1/users?prefix=${tag}`);
      if (r.status === 429) limited = r;
    }
    assert.ok(limited, 'prefix search is rate limited');
    expectError(assert, limited, 429, 'rate_limited');
    assert.ok(Number(limited.headers['retry-after']) >= 1);
  } finally {
    await srv.stop();
  }
});

test('opaque user ids: consecutive registrations are neither consecutive nor small', async () => {
  const srv = await startChat();
  try {
    const ids = [];
    for (let i = 0; i < 6; i++) ids.push(BigInt((await registerUser(srv, uniqueName('op'))).user.id.slice(2)));
    for (const id of ids) assert.ok(id >= 2n ** 32n, `id ${id} reveals a count`);
    for (let i = 1; i < ids.length; i++) {
      const d = ids[i] > ids[i - 1] ? ids[i] - ids[i - 1] : ids[i - 1] - ids[i];
      assert.ok(d > 1000n, `ids ${ids[i - 1]} and ${ids[i]} are close`);
    }
    assert.equal(new Set(ids.map(String)).size, ids.length);
    // the ids work everywhere: REST lookups, rooms, the WebSocket hello and events
    const a = await newUser(srv, 'oa');
    const b = await newUser(srv, 'ob');
    assert.equal((await api(srv, a).get(`/v1/users/${b.id}`)).body.user.id, b.id);
    const room = await createRoom(srv, a, [b]);
    const cb = await connect(srv, b);
    await withClients([cb], async () => {
      assert.equal(cb.hello.user, b.id);
      const ack = await cb.sendMsg(room.id, 'hi');
      assert.equal(ack.type, 'ack');
      const h = await api(srv, a).get(`/v1/rooms/${room.id}/messages`);
      assert.ok(h.body.messages.some((m) => m.sender === b.id && m.body === 'hi'));
    });
  } finally {
    await srv.stop();
  }
});

test('contacts: add, list (paged), remove', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'ca');
    const others = [];
    for (let i = 0; i < 3; i++) others.push(await newUser(srv, 'co'));
    for (const o of others) {
      const r = await api(srv, a).post('/v1/me/contacts', { user_id: o.id });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.user.id, o.id);
    }
    assert.equal((await api(srv, a).post('/v1/me/contacts', { user_id: others[0].id })).status, 200, 'idempotent');
    expectError(assert, await api(srv, a).post('/v1/me/contacts', { user_id: 'u_999' }), 404, 'not_found');
    expectError(assert, await api(srv, a).post('/v1/me/contacts', { user_id: a.id }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).post('/v1/me/contacts', {}), 400, 'invalid_field');
    const p1 = await api(srv, a).get('/v1/me/contacts?limit=2');
    assert.equal(p1.body.contacts.length, 2);
    assert.equal(p1.body.has_more, true);
    const p2 = await api(srv, a).get(`/v1/me/contacts?limit=2&after=${p1.body.next}`);
    assert.equal(p2.body.contacts.length, 1);
    assert.equal(p2.body.has_more, false);
    const all = [...p1.body.contacts, ...p2.body.contacts].map((u) => u.id).sort();
    assert.deepEqual(all, others.map((o) => o.id).sort());
    assert.equal(typeof p1.body.contacts[0].added_at, 'number');
    assert.equal((await api(srv, a).del(`/v1/me/contacts/${others[1].id}`)).status, 204);
    expectError(assert, await api(srv, a).del(`/v1/me/contacts/${others[1].id}`), 404, 'not_found');
    assert.equal((await api(srv, a).get('/v1/me/contacts')).body.contacts.length, 2);
    // contacts are per user
    assert.equal((await api(srv, others[0]).get('/v1/me/contacts')).body.contacts.length, 0);
  } finally {
    await srv.stop();
  }
});

// Session ids are opaque (drawn at random from [2^32, 2^53), as new users' ids): they do not
// count the logins the server has seen, and a guessed one names nothing of mine.
test('sessions: opaque ids, not a sequence; refresh and logout work with them; guesses are 404', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'so');
    const logins = [a];
    for (let i = 0; i < 4; i++) logins.push(await loginAgain(srv, a));
    const list = (await api(srv, a).get('/v1/me/sessions')).body.sessions;
    assert.equal(list.length, 5);
    const ids = list.map((s) => BigInt(s.id.slice(2)));
    for (const id of ids) {
      assert.ok(id >= 2n ** 32n && id < 2n ** 53n, `session id ${id} is in the opaque range`);
    }
    const sorted = [...ids].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    for (let i = 1; i < sorted.length; i++) assert.ok(sorted[i] - sorted[i - 1] > 1n, 'not consecutive');
    // listed in login order (created_at), whatever the ids
    for (let i = 1; i < list.length; i++) assert.ok(list[i].created_at >= list[i - 1].created_at);
    // each login's token names its session (the JWT's sid), as the list's current one
    const mine = [];
    for (const u of logins) {
      const cur = (await api(srv, u).get('/v1/me/sessions')).body.sessions.find((s) => s.current);
      const sid = JSON.parse(Buffer.from(u.token.split('.')[1], 'base64url').toString()).sid;
      assert.equal(cur.id, `s_${sid}`);
      mine.push(cur.id);
    }
    assert.equal(new Set(mine).size, 5);
    // a refresh keeps the session; a logout ends it
    const last = logins[4];
    const rr = await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: last.refresh } });
    assert.equal(rr.status, 200, rr.text);
    const refreshed = { ...last, token: rr.body.access_token, refresh: rr.body.refresh_token };
    const cur = (await api(srv, refreshed).get('/v1/me/sessions')).body.sessions.find((s) => s.current);
    assert.equal(cur.id, mine[4]);
    const lo = await request(srv, 'POST', '/v1/auth/logout', { json: { refresh_token: refreshed.refresh } });
    assert.ok(lo.status === 200 || lo.status === 204, lo.text);
    expectError(assert, await api(srv, refreshed).get('/v1/me'), 401, 'unauthorized');
    assert.equal((await api(srv, a).get('/v1/me/sessions')).body.sessions.length, 4);
    // guesses: neighbours of my ids, a random one, another user's: all 404, nothing ended
    const b = await newUser(srv, 'sp');
    const bs = (await api(srv, b).get('/v1/me/sessions')).body.sessions[0];
    assert.ok(BigInt(bs.id.slice(2)) >= 2n ** 32n);
    for (const guess of [`s_${ids[0] + 1n}`, `s_${ids[0] - 1n}`, 's_1', 's_2', `s_${2n ** 40n + 12345n}`, bs.id]) {
      expectError(assert, await api(srv, a).del(`/v1/me/sessions/${guess}`), 404, 'not_found');
    }
    assert.equal((await api(srv, a).get('/v1/me/sessions')).body.sessions.length, 4);
    assert.equal((await api(srv, b).get('/v1/me')).status, 200);
    // ending one of mine by its opaque id works
    assert.equal((await api(srv, a).del(`/v1/me/sessions/${mine[1]}`)).status, 204);
    expectError(assert, await api(srv, logins[1]).get('/v1/me'), 401, 'unauthorized');
  } finally {
    await srv.stop();
  }
});

// Avatars (PATCH /v1/me {avatar}): the caller's own image upload, checked; readable by every
// logged-in user (anyone may see the user), while it is the avatar; never expired while set.
test('avatars: own image uploads only; any logged-in user may fetch the current avatar; it does not expire', async () => {
  const srv = await startChat({ 'upload-ttl': 1, 'upload-sweep': 1 });
  try {
    const a = await newUser(srv, 'av');
    const b = await newUser(srv, 'aw'); // shares no room with a
    const pic = await uploadAs(srv, a, PNG, 'image/png');
    const text = await uploadAs(srv, a, Buffer.from('not a picture'), 'text/plain');
    const bpic = await uploadAs(srv, b, PNG, 'image/png');
    // before it is an avatar, another user cannot fetch a's upload
    assert.equal((await download(srv, b, pic)).status, 404);
    // the checks
    let e = await api(srv, a).patch('/v1/me', { avatar: text });
    expectError(assert, e, 400, 'invalid_field');
    assert.match(e.body.message || e.body.error.message, /image/);
    e = await api(srv, a).patch('/v1/me', { avatar: bpic });
    expectError(assert, e, 404, 'not_found');
    expectError(assert, await api(srv, a).patch('/v1/me', { avatar: `att_${'0'.repeat(32)}` }), 404, 'not_found');
    expectError(assert, await api(srv, a).patch('/v1/me', { avatar: 'a_up1oad-ID' }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).patch('/v1/me', { avatar: 'att_XYZ' }), 400, 'invalid_field');
    // a failed avatar changes nothing else in the request
    const failed = await api(srv, a).patch('/v1/me', { display_name: 'nope', avatar: text });
    expectError(assert, failed, 400, 'invalid_field');
    assert.equal((await api(srv, a).get('/v1/me')).body.user.display_name, '');
    assert.equal((await api(srv, a).get('/v1/me')).body.user.avatar, null);
    // set: everyone logged in may fetch it
    const ok = await api(srv, a).patch('/v1/me', { avatar: pic });
    assert.equal(ok.status, 200, ok.text);
    assert.equal((await api(srv, b).get(`/v1/users/${a.id}`)).body.user.avatar, pic);
    const got = await download(srv, b, pic);
    assert.equal(got.status, 200);
    assert.equal(got.headers['content-type'], 'image/png');
    assert.equal((await download(srv, null, pic)).status, 401, 'not without a token');
    // the sweep (--upload-ttl 1 s) removes unreferenced uploads, not a current avatar
    let gone = false;
    for (let i = 0; i < 40 && !gone; i++) {
      await sleep(250);
      gone = (await download(srv, a, text)).status === 404;
    }
    assert.ok(gone, 'the unreferenced upload expired (the sweep ran)');
    assert.equal((await download(srv, a, pic)).status, 200, 'the avatar did not expire');
    assert.equal((await download(srv, b, pic)).status, 200);
    // replaced: the old picture is a's private upload again (and may expire)
    const pic2 = await uploadAs(srv, a, PNG, 'image/png');
    assert.equal((await api(srv, a).patch('/v1/me', { avatar: pic2 })).status, 200);
    assert.equal((await download(srv, b, pic2)).status, 200);
    const old = await download(srv, b, pic);
    assert.equal(old.status, 404);
    // cleared: no longer readable by others
    assert.equal((await api(srv, a).patch('/v1/me', { avatar: null })).status, 200);
    assert.equal((await download(srv, b, pic2)).status, 404);
  } finally {
    await srv.stop();
  }
});
