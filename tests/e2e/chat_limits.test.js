'use strict';
// Chat rate limits (docs/PROTOCOL.md, "Rate limits" and the limits table): messages per user (WS
// and REST share the bucket), typing per user and room, WebSocket connections per user, and the
// per-username login limit for a real account (rate_limit.test.js covers per IP and per unknown
// username), and requests in flight per connection. Over a limit there is always an answer (or,
// for requests in flight, TCP backpressure): never a silent drop.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { metrics, metricSum, post } = require('./lib/http');
const { wsConnect } = require('./lib/ws');
const {
  startChat,
  newUser,
  api,
  createRoom,
  fullHistory,
  connect,
  expectNothing,
  expectError,
  assertContiguous,
  withClients,
  sleep,
} = require('./lib/chat');

const T = { timeout: 30000 };

function assertRetryAfter(r) {
  expectError(assert, r, 429, 'rate_limited');
  const ra = r.headers['retry-after'];
  assert.match(String(ra), /^\d+$/, `Retry-After must be whole seconds, got ${ra}`);
  assert.ok(Number(ra) >= 1);
  assert.match(r.body.error.message, /\d+ ?ms/, 'the message says milliseconds');
}

function assertWsRateLimited(m, id) {
  assert.equal(m.type, 'error', JSON.stringify(m));
  assert.equal(m.code, 'rate_limited', JSON.stringify(m));
  if (id !== undefined) assert.equal(m.id, id);
  assert.equal(typeof m.message, 'string');
  assert.ok(Number.isInteger(m.retry_after_ms) && m.retry_after_ms > 0, `retry_after_ms: ${JSON.stringify(m)}`);
}

describe('chat limits', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'msg-rate': 2, 'msg-burst': 3, 'typing-rate': 1, 'max-conns-per-user': 2 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('messages: --msg-rate 2 --msg-burst 3, the 4th quick send gets rate_limited with retry_after_ms; REST gets 429 Retry-After', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'lm'), newUser(srv, 'lm')]);
    const room = await createRoom(srv, a, [b]);
    const before = metricSum((await metrics(srv)).values, 'chatd_rate_limited_total') || 0;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      for (let i = 1; i <= 4; i++) ca.send({ type: 'send', id: `rl${i}`, room: room.id, body: `burst ${i}`, client_msg_id: `rl-${i}` });
      const replies = [];
      for (let i = 1; i <= 4; i++) replies.push(await ca.next((m) => m.id === `rl${i}`));
      assert.deepEqual(replies.slice(0, 3).map((m) => m.type), ['ack', 'ack', 'ack'], JSON.stringify(replies));
      assertWsRateLimited(replies[3], 'rl4');
      assert.ok(replies[3].retry_after_ms <= 1000, `retry_after_ms ${replies[3].retry_after_ms} > 1 s at 2 messages/s`);

      // the REST send shares the user's bucket
      const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'rest', client_msg_id: 'rl-rest' });
      assertRetryAfter(r);
      // another user is not affected
      const okB = await cb.sendMsg(room.id, 'b is fine', 'rl-b');
      assert.equal(okB.type, 'ack', JSON.stringify(okB));

      // nothing limited was stored or delivered
      const h = await fullHistory(srv, b, room.id);
      assert.deepEqual(h.filter((m) => m.type === 'message').map((m) => m.client_msg_id), ['rl-1', 'rl-2', 'rl-3', 'rl-b']);
      assert.ok(!cb.messages.some((m) => m.client_msg_id === 'rl-4' || m.client_msg_id === 'rl-rest'));

      // after the advertised wait, sending works again (the same client_msg_id: it was never stored)
      await sleep(replies[3].retry_after_ms + 50);
      const again = await ca.sendMsg(room.id, 'burst 4', 'rl-4');
      assert.equal(again.type, 'ack', JSON.stringify(again));
      assert.equal(again.duplicate, false);
      const after = metricSum((await metrics(srv)).values, 'chatd_rate_limited_total');
      assert.ok(after >= before + 2, `chatd_rate_limited_total ${before} -> ${after}`);
    });
  });

  it('a rate-limited send is answered even in a long burst: every request gets exactly one reply', T, async () => {
    const [a] = await Promise.all([newUser(srv, 'lb')]);
    const room = await createRoom(srv, a, []);
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const N = 20;
      for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `lb${i}`, room: room.id, body: `x${i}`, client_msg_id: `lb-${i}` });
      const replies = ca.collect((m) => typeof m.id === 'string' && m.id.startsWith('lb'));
      await ca.waitFor(() => replies.update().length >= N, 10000, `${N} replies`);
      await sleep(200);
      replies.update();
      assert.equal(replies.items.length, N);
      assert.deepEqual(replies.items.map((m) => m.id).sort(), Array.from({ length: N }, (_, i) => `lb${i}`).sort());
      const acked = replies.items.filter((m) => m.type === 'ack');
      const limited = replies.items.filter((m) => m.type === 'error');
      assert.ok(acked.length >= 3 && acked.length < N, `${acked.length} acked of ${N}`);
      for (const m of limited) assertWsRateLimited(m);
      const h = await fullHistory(srv, a, room.id);
      assert.deepEqual(h.filter((m) => m.type === 'message').map((m) => m.client_msg_id).sort(), acked.map((m) => m.client_msg_id).sort());
    });
  });

  it('typing: --typing-rate 1 (burst 2) per user and room; over it rate_limited, other rooms unaffected', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'lt'), newUser(srv, 'lt')]);
    const room = await createRoom(srv, a, [b]);
    const room2 = await createRoom(srv, a, [b]);
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      for (let i = 0; i < 6; i++) ca.send({ type: 'typing', id: `ty${i}`, room: room.id });
      const err = await ca.next((m) => m.type === 'error');
      assertWsRateLimited(err);
      assert.match(err.id, /^ty[2-5]$/, 'the first two fit the burst');
      await sleep(300);
      const errors = ca.ofType('error');
      assert.ok(errors.length >= 3 && errors.length <= 4, `${errors.length} of 6 typing requests limited`);
      const seenByB = cb.ofType('typing', (m) => m.room === room.id && m.typing === true);
      assert.equal(seenByB.length, 6 - errors.length, 'every accepted typing was fanned out, no limited one');
      // the bucket is per room
      const mark = ca.messages.length;
      ca.send({ type: 'typing', id: 'ty-other', room: room2.id });
      await cb.next((m) => m.type === 'typing' && m.room === room2.id);
      await expectNothing(ca, (m) => m.id === 'ty-other', 200, 'reply to typing in another room', mark);
    });
  });

  it('connections per user: --max-conns-per-user 2, the third upgrade is HTTP 429 rate_limited', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'lc'), newUser(srv, 'lc')]);
    const c1 = await connect(srv, a);
    const c2 = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([c1, c2, cb], async () => {
      const err = await wsConnect(srv.wsUrl, { token: a.token }).then(
        (c) => {
          c.terminate();
          return null;
        },
        (e) => e,
      );
      assert.ok(err, 'the third connection was accepted');
      assert.equal(err.statusCode, 429, String(err));
      assert.equal(err.body && err.body.error && err.body.error.code, 'rate_limited', err.text);
      assert.match(String(err.headers['retry-after']), /^\d+$/);
      // the open ones keep working
      assert.equal((await c1.req({ type: 'ping' })).type, 'pong');
      assert.equal((await c2.req({ type: 'ping' })).type, 'pong');
      // once one closes, a new one is accepted
      await c2.close();
      let c3 = null;
      for (let i = 0; i < 20 && !c3; i++) {
        c3 = await connect(srv, a).catch((e) => {
          if (e.statusCode !== 429) throw e;
          return null;
        });
        if (!c3) await sleep(100);
      }
      assert.ok(c3, 'no connection accepted after one closed');
      await c3.close();
    });
  });
});

describe('login rate limit per username (real account)', () => {
  let srv;
  before(async () => {
    // --auth-rate 3: per IP 3/s burst 12; failures per (username, IP) 0.3/s burst 3
    srv = await startChat({ 'auth-rate': 3 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('correct logins are not limited per username; after the failure burst this client gets 429 even with the right password; others are unaffected; it recovers after Retry-After', T, async () => {
    const [a, b] = await Promise.all([newUser(srv, 'lu'), newUser(srv, 'lu')]);
    const login = (u, password = u.password, localAddress = undefined) =>
      post(srv, '/v1/auth/login', { username: u.username, password }, { localAddress });
    // 7 correct logins from another client IP: more than any per-username burst would allow
    for (let i = 0; i < 7; i++) {
      const r = await login(a, a.password, '127.0.0.2');
      assert.equal(r.status, 200, `correct login ${i}: ${r.text}`);
    }
    let limited = null;
    let failed = 0;
    for (let i = 0; i < 6 && !limited; i++) {
      const r = await login(a, 'wrong password');
      if (r.status === 429) limited = r;
      else {
        expectError(assert, r, 401, 'invalid_credentials');
        failed++;
      }
    }
    assert.ok(limited, 'no 429 after 6 failed logins for one username from one IP');
    assert.equal(failed, 3, 'limited after the burst of 3 failures');
    assertRetryAfter(limited);
    // this client has failed: refused before the password is checked; the other one has not
    assertRetryAfter(await login(a));
    assert.equal((await login(a, a.password, '127.0.0.2')).status, 200);
    // b logs in fine from the same IP
    const rb = await login(b);
    assert.equal(rb.status, 200, rb.text);
    await sleep(Number(limited.headers['retry-after']) * 1000 + 100);
    const again = await login(a);
    assert.equal(again.status, 200, again.text);
  });
});

describe('requests in flight per connection', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'rate-limits': 'off', 'ws-max-inflight': 8 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--ws-max-inflight 8: 200 pipelined sends are read 8 at a time, all acked in order; a ping behind them waits', T, async () => {
    const a = await newUser(srv, 'inf');
    const room = await createRoom(srv, a);
    const c = await connect(srv, a);
    await withClients([c], async () => {
      const n = 200;
      let pongAt = -1;
      // A pong is not a message: wake the waiters ourselves, or a pong arriving after the
      // last ack would never be seen.
      c.ws.on('pong', () => {
        pongAt = c.messages.length;
        c.notify();
      });
      for (let i = 0; i < n; i++) c.send({ type: 'send', id: `if${i}`, room: room.id, body: `m${i}`, client_msg_id: `if-${i}` });
      c.ws.ping();
      const acks = await c.waitFor((cl) => {
        const got = cl.ofType('ack');
        return got.length >= n && got;
      }, 20000, `${n} acks`);
      await c.waitFor(() => pongAt >= 0, 5000, 'pong');
      // The ping is read after the 200th send, and by then at most 8 sends are unanswered:
      // without the limit every send would be queued at once and the pong would come first.
      const acksBeforePong = c.messages.slice(0, pongAt).filter((m) => m.type === 'ack').length;
      assert.ok(acksBeforePong >= n - 8, `only ${acksBeforePong} acks before the pong`);
      assert.deepEqual(acks.map((m) => m.id), Array.from({ length: n }, (_, i) => `if${i}`));
      assert.ok(acks.every((m) => m.duplicate === false));
      assertContiguous(acks.map((m) => m.seq), acks[0].seq, 'ack seqs');
    });
  });
});

describe('requests in flight on the node', () => {
  let srv;
  before(async () => {
    // Per connection practically unbounded, node-wide 4 jobs awaiting the writer.
    srv = await startChat({ 'rate-limits': 'off', 'ws-max-inflight': 65535, 'ws-max-inflight-total': 4 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('--ws-max-inflight-total 4: two pipelining clients are read a request at a time once 4 wait; all acked in order', T, async () => {
    const a = await newUser(srv, 'mq');
    const room = await createRoom(srv, a);
    const clients = [await connect(srv, a), await connect(srv, a)];
    await withClients(clients, async () => {
      const n = 150;
      const pongAt = [-1, -1];
      clients.forEach((c, k) =>
        c.ws.on('pong', () => {
          pongAt[k] = c.messages.length;
          c.notify();
        }),
      );
      clients.forEach((c, k) => {
        for (let i = 0; i < n; i++) c.send({ type: 'send', id: `q${k}-${i}`, room: room.id, body: `m${i}`, client_msg_id: `q${k}-${i}` });
        c.ws.ping();
      });
      for (const [k, c] of clients.entries()) {
        const acks = await c.waitFor((cl) => {
          const got = cl.ofType('ack');
          return got.length >= n && got;
        }, 20000, `${n} acks`);
        await c.waitFor(() => pongAt[k] >= 0, 5000, 'pong');
        assert.deepEqual(acks.map((m) => m.id), Array.from({ length: n }, (_, i) => `q${k}-${i}`));
        // Each client's ping waits behind its sends, which are let in a few at a time.
        const before = c.messages.slice(0, pongAt[k]).filter((m) => m.type === 'ack').length;
        assert.ok(before >= n - 8, `client ${k}: only ${before} acks before the pong`);
      }
      const seqs = clients.flatMap((c) => c.ofType('ack').map((m) => m.seq)).sort((x, y) => x - y);
      assertContiguous(seqs, seqs[0], 'both clients\' seqs');
    });
  });
});
