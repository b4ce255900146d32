'use strict';
// Message search (docs/PROTOCOL.md, "Search"): GET /v1/search sees only the caller's rooms and
// only entries since they joined, newest first, with HTML-escaped snippets and <mark>ed
// matches, paged by next_before; bounded input and a rate limit. New messages are
// indexed asynchronously, on both stores (lag up to --search-index-ms).
//
// Edits and deletes (docs/PROTOCOL.md, "Edits, deletes, reactions, replies and threads") change
// the index in their own transaction: an edited message is found by its new words only, a
// deleted one never again, also when the operation came before the indexer.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startChat, newUser, api, createRoom, nextId } = require('./lib/chat');
const { expectError } = require('./lib/http');

const T = { timeout: 60000 };

describe('search', () => {
  let srv;
  before(async () => {
    // --search-index-ms 20: the indexer runs every 20 ms (default 200); the tests wait for
    // what they sent to be indexed (eventually) before they assert on what is absent.
    srv = await startChat({ 'search-rate': 1000, 'msg-rate': 1000, 'msg-burst': 1000, 'search-index-ms': 20 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n) => Promise.all(Array.from({ length: n }, () => newUser(srv, 'se')));
  const say = async (u, room, body) => {
    const r = await api(srv, u).post(`/v1/rooms/${room.id}/messages`, { body, client_msg_id: nextId('s') });
    assert.equal(r.status, 201, r.text);
    return r.body;
  };
  const search = (u, query) => api(srv, u).get(`/v1/search?${query}`);
  /** search until it returns n hits (the indexer's lag), then that response */
  const eventually = async (u, query, n) => {
    let r;
    for (let i = 0; i < 100; i++) {
      r = await search(u, query);
      assert.equal(r.status, 200, r.text);
      if (r.body.messages.length >= n) return r;
      await new Promise((res) => setTimeout(res, 50));
    }
    assert.fail(`${query}: ${r.body.messages.length} hits, expected ${n}`);
  };
  const word = () => `w${Math.random().toString(36).slice(2, 10)}`;

  it('only rooms I am a member of, newest first, whatever the case of the query', T, async () => {
    const [a, b, c] = await users(3);
    const r1 = await createRoom(srv, a, [b]);
    const r2 = await createRoom(srv, a, [c]);
    const w = word();
    const m1 = await say(a, r1, `${w} in the first room`);
    const m2 = await say(c, r2, `${w} in the second room`);
    let r = await eventually(a, `q=${w.toUpperCase()}`, 2);
    assert.deepEqual(r.body.messages.map((m) => [m.room, m.seq]), [[r2.id, m2.seq], [r1.id, m1.seq]]);
    assert.equal(r.body.has_more, false);
    assert.equal(r.body.next_before, null);
    const hit = r.body.messages[0];
    assert.equal(hit.type, 'message');
    assert.equal(hit.sender, c.id);
    assert.equal(hit.msg_id, m2.msg_id);
    assert.equal(hit.ts, m2.ts);
    r = await search(b, `q=${w}`);
    assert.deepEqual(r.body.messages.map((m) => m.room), [r1.id]);
    r = await search(c, `q=${w}`);
    assert.deepEqual(r.body.messages.map((m) => m.room), [r2.id]);
    r = await search(a, `q=${w}&room=${r1.id}`);
    assert.deepEqual(r.body.messages.map((m) => m.room), [r1.id]);
    // a room of someone else's, named explicitly, gives nothing either
    r = await search(b, `q=${w}&room=${r2.id}`);
    assert.deepEqual(r.body.messages, []);
  });

  it('only entries since I joined; nothing once I left or was kicked', T, async () => {
    const [a, b, k] = await users(3);
    const room = await createRoom(srv, a, [k]);
    const w = word();
    await say(a, room, `${w} before b joined`);
    const add = await api(srv, a).post(`/v1/rooms/${room.id}/members`, { user_id: b.id });
    assert.ok(add.status === 200 || add.status === 201, add.text);
    const after = await say(a, room, `${w} after b joined`);
    await eventually(k, `q=${w}`, 2);
    let r = await search(b, `q=${w}`);
    assert.deepEqual(r.body.messages.map((m) => m.seq), [after.seq]);
    r = await search(k, `q=${w}`);
    assert.equal(r.body.messages.length, 2);
    const kick = await api(srv, a).del(`/v1/rooms/${room.id}/members/${k.id}`);
    assert.ok(kick.status === 200 || kick.status === 204, kick.text);
    r = await search(k, `q=${w}`);
    assert.deepEqual(r.body.messages, []);
  });

  it('an edited message is found by its new words, not its old ones', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const [old1, new1, old2, new2] = [word(), word(), word(), word()];
    const m1 = await say(a, room, `${old1} first text`);
    await eventually(b, `q=${old1}`, 1);
    let r = await api(srv, a).patch(`/v1/rooms/${room.id}/messages/${m1.seq}`, { body: `${new1} second text` });
    assert.equal(r.status, 200, r.text);
    // the edit's transaction re-indexed it: no lag for what changed
    r = await search(b, `q=${old1}`);
    assert.deepEqual(r.body.messages, []);
    r = await search(b, `q=${new1}`);
    assert.deepEqual(r.body.messages.map((m) => m.seq), [m1.seq]);
    assert.ok(r.body.messages[0].snippet.includes(`<mark>${new1}</mark>`), r.body.messages[0].snippet);
    // edited at once, before SQLite's indexer saw the message: the new text wins there too
    const m2 = await say(a, room, `${old2} text`);
    r = await api(srv, a).patch(`/v1/rooms/${room.id}/messages/${m2.seq}`, { body: `${new2} text` });
    assert.equal(r.status, 200, r.text);
    const marker = word();
    await say(a, room, marker); // indexed after m2 (the indexer goes in log order)
    await eventually(b, `q=${marker}`, 1);
    r = await search(b, `q=${new2}`);
    assert.deepEqual(r.body.messages.map((m) => m.seq), [m2.seq]);
    r = await search(b, `q=${old2}`);
    assert.deepEqual(r.body.messages, []);
  });

  it('deleted text is never found', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const [w1, w2, w3] = [word(), word(), word()];
    const m1 = await say(a, room, `${w1} soon gone`);
    await say(a, room, `${w1} stays`);
    await eventually(b, `q=${w1}`, 2);
    let r = await api(srv, a).del(`/v1/rooms/${room.id}/messages/${m1.seq}`);
    assert.equal(r.status, 200, r.text);
    r = await search(b, `q=${w1}`);
    assert.equal(r.body.messages.length, 1);
    assert.notEqual(r.body.messages[0].seq, m1.seq);
    r = await search(a, `q=${encodeURIComponent(`${w1} gone`)}`);
    assert.deepEqual(r.body.messages, []);
    // edited, then deleted by an admin (the owner) before SQLite's indexer saw it: neither text
    const m2 = await say(b, room, `${w2} secret`);
    r = await api(srv, b).patch(`/v1/rooms/${room.id}/messages/${m2.seq}`, { body: `${w3} secret` });
    assert.equal(r.status, 200, r.text);
    r = await api(srv, a).del(`/v1/rooms/${room.id}/messages/${m2.seq}`);
    assert.equal(r.status, 200, r.text);
    const marker = word();
    await say(a, room, marker);
    await eventually(b, `q=${marker}`, 1);
    for (const w of [w2, w3, 'secret']) {
      r = await search(b, `q=${w}`);
      assert.deepEqual(r.body.messages, [], w);
    }
  });

  it('nothing of a deleted room', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const w = word();
    await say(b, room, `${w} in a room about to go`);
    await eventually(b, `q=${w}`, 1);
    const d = await api(srv, a).del(`/v1/rooms/${room.id}`);
    assert.equal(d.status, 204, d.text);
    for (const u of [a, b]) {
      const r = await search(u, `q=${w}`);
      assert.deepEqual(r.body.messages, []);
    }
  });

  it('snippets: HTML-escaped text with <mark> around every matched term', T, async () => {
    const [a] = await users(1);
    const room = await createRoom(srv, a, []);
    const w = word();
    await say(a, room, `<script>alert("x")</script> & the ${w} is 'here' ${w}`);
    const r = await eventually(a, `q=${encodeURIComponent(`${w}!`)}`, 1);
    assert.equal(r.body.messages.length, 1);
    const s = r.body.messages[0].snippet;
    assert.ok(!s.includes('<script>'), s);
    // SQLite shows the tag escaped; PostgreSQL's headline parser drops what reads as a tag
    if (!process.env.CHATD_TEST_STORE_URL) assert.ok(s.includes('&lt;script&gt;'), s);
    assert.ok(s.includes('&amp;'), s);
    assert.ok(s.includes('&quot;x&quot;'), s);
    assert.ok(s.includes('&#39;here&#39;'), s);
    assert.equal(s.split(`<mark>${w}</mark>`).length - 1, 2, s);
    assert.equal(s.replace(/<\/?mark>/g, '').includes('<'), false, s);
  });

  it('all terms must match; punctuation separates terms', T, async () => {
    const [a] = await users(1);
    const room = await createRoom(srv, a, []);
    const w1 = word();
    const w2 = word();
    await say(a, room, `${w1} alone`);
    await say(a, room, `${w1}, then ${w2}.`);
    let r = await eventually(a, `q=${w1}`, 2);
    assert.equal(r.body.messages.length, 2);
    r = await search(a, `q=${encodeURIComponent(`"${w2}" ${w1}*`)}`);
    assert.equal(r.body.messages.length, 1);
    r = await search(a, `q=${encodeURIComponent('*** ---')}`);
    assert.deepEqual(r.body, { messages: [], has_more: false, next_before: null });
  });

  it('pages newest first with limit and next_before, without repeats or gaps', T, async () => {
    const [a] = await users(1);
    const room = await createRoom(srv, a, []);
    const w = word();
    const seqs = [];
    for (let i = 0; i < 25; i++) seqs.push((await say(a, room, `${w} number ${i}`)).seq);
    await eventually(a, `q=${w}&limit=50`, 25);
    const got = [];
    let before = null;
    let pages = 0;
    for (;;) {
      const r = await search(a, `q=${w}&limit=10${before ? `&before=${before}` : ''}`);
      assert.equal(r.status, 200, r.text);
      pages++;
      got.push(...r.body.messages.map((m) => m.seq));
      if (!r.body.has_more) {
        assert.equal(r.body.next_before, null);
        break;
      }
      assert.equal(r.body.messages.length, 10);
      assert.equal(r.body.next_before, r.body.messages[9].cursor);
      before = r.body.next_before;
    }
    assert.equal(pages, 3);
    assert.deepEqual(got, [...seqs].reverse());
  });

  it('bounded input: q required and at most 256 bytes, limit 1-50, room an id', T, async () => {
    const [a] = await users(1);
    expectError(assert, await search(a, ''), 400, 'invalid_field');
    expectError(assert, await search(a, `q=${'x'.repeat(257)}`), 400, 'invalid_field');
    assert.equal((await search(a, `q=${'x'.repeat(256)}`)).status, 200);
    expectError(assert, await search(a, 'q=a&q=b'), 400, 'invalid_field');
    expectError(assert, await search(a, 'q=a&limit=0'), 400, 'invalid_field');
    expectError(assert, await search(a, 'q=a&limit=51'), 400, 'invalid_field');
    expectError(assert, await search(a, 'q=a&limit=x'), 400, 'invalid_field');
    expectError(assert, await search(a, 'q=a&before=-1'), 400, 'invalid_field');
    expectError(assert, await search(a, 'q=a&room=u_1'), 400, 'invalid_field');
    const r = await api(srv, { token: 'bad' }).get('/v1/search?q=a');
    expectError(assert, r, 401, 'unauthorized');
  });

  it('rate limited per user (--search-rate, burst 4x): 429 with Retry-After', T, async () => {
    const s = await startChat({ 'search-rate': 1 });
    try {
      const a = await newUser(s, 'rl');
      const codes = [];
      for (let i = 0; i < 6; i++) codes.push((await api(s, a).get('/v1/search?q=hello')).status);
      assert.deepEqual(codes.slice(0, 4), [200, 200, 200, 200]);
      assert.ok(codes.slice(4).includes(429), codes.join(','));
    } finally {
      await s.stop();
    }
  });
});
