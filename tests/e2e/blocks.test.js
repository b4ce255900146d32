'use strict';
// Blocks (issue 14, part 5): a user I block cannot open a DM with me, write into our DM (REST and
// WebSocket), add me to rooms, or see my presence; in shared group rooms their messages stay and
// my history marks them "blocked":true.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startChat, newUser, api, createRoom, connect, expectError, expectWsError, expectNothing, withClients } = require('./lib/chat');

test('blocks: DM open, DM send over REST and WebSocket, additions; unblock restores', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'ba');
    const b = await newUser(srv, 'bb');
    const c = await newUser(srv, 'bc');
    const dm = (await api(srv, a).post('/v1/dms', { user_id: b.id })).body.room;
    const cb = await connect(srv, b);
    await withClients([cb], async () => {
      assert.equal((await cb.sendMsg(dm.id, 'before')).type, 'ack');
      const r = await api(srv, a).post('/v1/me/blocks', { user_id: b.id });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.user.id, b.id);
      // the block reaches a socket that already wrote into the DM (the writer's cache)
      expectWsError(await cb.sendMsg(dm.id, 'after'), 'blocked');
      expectError(assert, await api(srv, b).post(`/v1/rooms/${dm.id}/messages`, { body: 'x', client_msg_id: 'rb1' }), 403, 'blocked');
      expectError(assert, await api(srv, b).post('/v1/dms', { user_id: a.id }), 403, 'blocked');
      // a may still write (b did not block a)
      assert.equal((await api(srv, a).post(`/v1/rooms/${dm.id}/messages`, { body: 'from a', client_msg_id: 'ra1' })).status, 201);
      await cb.waitFor((x) => x.entries(dm.id).some((e) => e.body === 'from a'), 5000, 'a\'s message');
    });
    // a DM that does not exist yet cannot be opened by the blocked user either
    const c2 = await newUser(srv, 'bd');
    assert.equal((await api(srv, c2).post('/v1/me/blocks', { user_id: c.id })).status, 200);
    expectError(assert, await api(srv, c).post('/v1/dms', { user_id: c2.id }), 403, 'blocked');
    // additions: b cannot add a to a room, at creation or later
    expectError(assert, await api(srv, b).post('/v1/rooms', { name: 'r', members: [a.id] }), 403, 'blocked');
    const broom = await createRoom(srv, b, [c]);
    expectError(assert, await api(srv, b).post(`/v1/rooms/${broom.id}/members`, { user_id: a.id }), 403, 'blocked');
    // others still can
    assert.equal((await api(srv, c).post('/v1/dms', { user_id: a.id })).status, 201);
    // list and unblock
    const l = await api(srv, a).get('/v1/me/blocks');
    assert.deepEqual(l.body.blocks.map((u) => u.id), [b.id]);
    expectError(assert, await api(srv, a).post('/v1/me/blocks', { user_id: a.id }), 400, 'invalid_field');
    expectError(assert, await api(srv, a).post('/v1/me/blocks', { user_id: 'u_424242' }), 404, 'not_found');
    assert.equal((await api(srv, a).del(`/v1/me/blocks/${b.id}`)).status, 204);
    expectError(assert, await api(srv, a).del(`/v1/me/blocks/${b.id}`), 404, 'not_found');
    assert.equal((await api(srv, a).get('/v1/me/blocks')).body.blocks.length, 0);
    assert.equal((await api(srv, b).post(`/v1/rooms/${dm.id}/messages`, { body: 'again', client_msg_id: 'rb2' })).status, 201);
    assert.equal((await api(srv, b).post(`/v1/rooms/${broom.id}/members`, { user_id: a.id })).status, 200);
  } finally {
    await srv.stop();
  }
});

test('blocks: presence hidden from the blocked user (events and GET /v1/users), shown to others', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'pa');
    const b = await newUser(srv, 'pb');
    const c = await newUser(srv, 'pc');
    await createRoom(srv, c, [a, b]);
    assert.equal((await api(srv, a).post('/v1/me/blocks', { user_id: b.id })).status, 200);
    const cb = await connect(srv, b);
    const cc = await connect(srv, c);
    await withClients([cb, cc], async () => {
      const markB = cb.messages.length;
      const ca = await connect(srv, a);
      await withClients([ca], async () => {
        await cc.waitFor((x) => x.ofType('presence', (p) => p.user === a.id && p.status === 'online').length, 5000, 'a online (c)');
        await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 500, 'presence of a', markB);
        const seenByB = await api(srv, b).get(`/v1/users/${a.id}`);
        assert.equal(seenByB.body.user.status, undefined);
        assert.equal(seenByB.body.user.last_seen, undefined);
        const seenByC = await api(srv, c).get(`/v1/users/${a.id}`);
        assert.equal(seenByC.body.user.status, 'online');
        // a still sees b (a blocked b, not the other way)
        const seenByA = await api(srv, a).get(`/v1/users/${b.id}`);
        assert.equal(seenByA.body.user.status, 'online');
      });
      await cc.waitFor((x) => x.ofType('presence', (p) => p.user === a.id && p.status === 'offline').length, 5000, 'a offline (c)');
      await expectNothing(cb, (m) => m.type === 'presence' && m.user === a.id, 300, 'presence of a', markB);
    });
  } finally {
    await srv.stop();
  }
});

test('blocks: in a shared group room the messages stay; my history marks them blocked', async () => {
  const srv = await startChat();
  try {
    const a = await newUser(srv, 'ga');
    const b = await newUser(srv, 'gb');
    const c = await newUser(srv, 'gc');
    const room = await createRoom(srv, c, [a, b]);
    assert.equal((await api(srv, a).post('/v1/me/blocks', { user_id: b.id })).status, 200);
    assert.equal((await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: 'from b', client_msg_id: 'g1' })).status, 201);
    assert.equal((await api(srv, c).post(`/v1/rooms/${room.id}/messages`, { body: 'from c', client_msg_id: 'g2' })).status, 201);
    const ha = (await api(srv, a).get(`/v1/rooms/${room.id}/messages`)).body.messages;
    assert.equal(ha.find((m) => m.body === 'from b').blocked, true);
    assert.equal(ha.find((m) => m.body === 'from c').blocked, undefined);
    const hc = (await api(srv, c).get(`/v1/rooms/${room.id}/messages`)).body.messages;
    assert.equal(hc.find((m) => m.body === 'from b').blocked, undefined);
  } finally {
    await srv.stop();
  }
});

// Every read that returns messages to me marks those of users I block: REST history and thread
// history, the WebSocket sync replay, search hits. Live events are shared frames and carry no
// mark (clients filter them by sender with GET /v1/me/blocks).
test('blocks: thread history, sync replay and search mark blocked senders; live events do not', async () => {
  const srv = await startChat({ 'search-index-ms': 20 });
  try {
    const a = await newUser(srv, 'ma');
    const b = await newUser(srv, 'mb');
    const c = await newUser(srv, 'mc');
    const room = await createRoom(srv, c, [a, b]);
    const word = `w${Math.random().toString(36).slice(2, 10)}`;
    assert.equal((await api(srv, a).post('/v1/me/blocks', { user_id: b.id })).status, 200);
    const post = async (u, body, extra = {}) => {
      const r = await api(srv, u).post(`/v1/rooms/${room.id}/messages`, { body, client_msg_id: `m${Math.random()}`, ...extra });
      assert.equal(r.status, 201, r.text);
      return r.body;
    };
    const root = await post(c, `${word} root from c`);
    const rb = await post(b, `${word} reply from b`, { thread: root.seq });
    const rc = await post(c, `${word} reply from c`, { thread: root.seq });
    // REST thread history
    const th = (await api(srv, a).get(`/v1/rooms/${room.id}/threads/${root.seq}/messages`)).body.messages;
    assert.equal(th.find((m) => m.seq === rb.seq).blocked, true);
    assert.equal(th.find((m) => m.seq === rc.seq).blocked, undefined);
    const thc = (await api(srv, c).get(`/v1/rooms/${room.id}/threads/${root.seq}/messages`)).body.messages;
    assert.equal(thc.find((m) => m.seq === rb.seq).blocked, undefined);
    // search (the SQLite indexer lags: wait for all three hits)
    let hits;
    for (let i = 0; i < 100; i++) {
      const r = await api(srv, a).get(`/v1/search?q=${word}`);
      assert.equal(r.status, 200, r.text);
      hits = r.body.messages;
      if (hits.length >= 3) break;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.equal(hits.length, 3);
    assert.equal(hits.find((m) => m.seq === rb.seq).blocked, true);
    assert.equal(hits.find((m) => m.seq === rc.seq).blocked, undefined);
    assert.equal(hits.find((m) => m.seq === root.seq).blocked, undefined);
    const hitsC = (await api(srv, c).get(`/v1/search?q=${word}`)).body.messages;
    assert.equal(hitsC.find((m) => m.seq === rb.seq).blocked, undefined);
    // the WebSocket sync replay (a from seq 0; c as a control)
    const ca = await connect(srv, a, { sync: { [room.id]: 0 } });
    const cc = await connect(srv, c, { sync: { [room.id]: 0 } });
    await withClients([ca, cc], async () => {
      const replayA = ca.entries(room.id);
      assert.equal(replayA.find((m) => m.seq === rb.seq).blocked, true);
      assert.equal(replayA.find((m) => m.seq === rc.seq).blocked, undefined);
      assert.equal(replayA.find((m) => m.seq === root.seq).blocked, undefined);
      assert.equal(cc.entries(room.id).find((m) => m.seq === rb.seq).blocked, undefined);
      // live: unmarked (one frame for every receiver)
      const live = await post(b, 'live from b');
      await ca.waitFor((x) => x.entries(room.id).some((m) => m.seq === live.seq), 5000, 'live message');
      assert.equal(ca.entries(room.id).find((m) => m.seq === live.seq).blocked, undefined);
      assert.equal(ca.entries(room.id).find((m) => m.seq === live.seq).sender, b.id);
    });
    // after unblocking, nothing is marked
    assert.equal((await api(srv, a).del(`/v1/me/blocks/${b.id}`)).status, 204);
    const th2 = (await api(srv, a).get(`/v1/rooms/${room.id}/threads/${root.seq}/messages`)).body.messages;
    assert.equal(th2.find((m) => m.seq === rb.seq).blocked, undefined);
    const ca2 = await connect(srv, a, { sync: { [room.id]: 0 } });
    await withClients([ca2], async () => {
      assert.equal(ca2.entries(room.id).find((m) => m.seq === rb.seq).blocked, undefined);
    });
  } finally {
    await srv.stop();
  }
});
