'use strict';
// Webhooks and offline notifications (docs/INTEGRATIONS.md): a receiver that fails the first
// attempts of every event and verifies every signature gets each event exactly once by id;
// deliveries survive kill -9 between commit and delivery; the last failed retry dead-letters a
// delivery, which the server API lists and replays (and manages endpoints, API key only); offline members get one notification
// (coalesced per user and room, none when muted, none for the sender or an online member,
// mention flag), and the window holds across a restart (it is stored); delivered rows are
// pruned after --webhook-retention while dead letters stay until replayed or deleted; the
// delivery and notification series of /metrics move; PATCH /v1/rooms/{id}/settings is for
// members only.

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { startChat, newUser, api, createRoom, connect, sleep } = require('./lib/chat');
const { request, metrics, metricSum } = require('./lib/http');
const crypto = require('node:crypto');
const { WebhookReceiver } = require('./lib/webhooks');
const { createKey, serverApi } = require('./lib/server_api');

const SECRET = 'whsec-test-0123456789';
const FAST = { 'msg-rate': 1000000, 'msg-burst': 1000000 };
// Retries in tens of ms instead of seconds (documented flags); polling as often.
const QUICK = {
  'webhook-secret': SECRET,
  'webhook-retry-base-ms': 50,
  'webhook-retry-max-ms': 200,
  'webhook-poll-ms': 50,
  'webhook-timeout-ms': 1000, // also the lease of a claimed row (8 rows: 10 s at most)
};

const metric = async (srv, name) => metricSum((await metrics(srv)).values, name);
/** Polls /metrics until pred(values) holds; returns the values. */
async function waitMetrics(srv, pred, what, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = (await metrics(srv)).values;
    if (pred((name) => metricSum(v, name))) return (name) => metricSum(v, name);
    if (Date.now() > deadline) throw new Error(`metrics: ${what} not met in ${timeoutMs} ms`);
    await sleep(50);
  }
}

const messageIds = (rcv) => [...rcv.events.values()].filter((e) => e.type === 'message').map((e) => e.id);

describe('webhooks', () => {
  const servers = [];
  const receivers = [];
  after(async () => {
    for (const s of servers) await s.kill();
    for (const r of receivers) await r.close();
  });

  it('retries failed attempts, signs every request, delivers each event once by id', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET, failFirst: 2 }).start();
    receivers.push(rcv);
    const srv = await startChat({ ...FAST, ...QUICK, 'webhook-url': rcv.url, 'webhook-types': 'message,member' });
    servers.push(srv);
    const alice = await newUser(srv, 'wa');
    const bob = await newUser(srv, 'wb');
    const room = await createRoom(srv, alice, [bob]);
    const sent = [];
    for (let i = 0; i < 20; i++) {
      const r = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: `hello ${i}`, client_msg_id: `w${i}` });
      assert.equal(r.status, 201, r.text);
      sent.push(r.body.msg_id);
    }
    await rcv.waitFor((r) => sent.every((id) => r.events.has(id)), 30000, 'all messages');
    assert.equal(rcv.badSignatures, 0);
    assert.equal(rcv.duplicates, 0);
    for (const id of sent) assert.equal(rcv.attempts.get(id), 3, `${id}: two failures then a success`);
    const ev = rcv.events.get(sent[0]);
    assert.equal(ev.type, 'message');
    assert.equal(ev.room, room.id);
    assert.equal(ev.data.body, 'hello 0');
    // The type filter: member events yes, user and room creations no.
    assert.ok([...rcv.events.values()].some((e) => e.type === 'member'));
    assert.ok(![...rcv.events.values()].some((e) => e.type === 'user.created' || e.type === 'room.created'));
    await srv.stop();
  });

  it('loses nothing when killed between commit and delivery', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET, failAll: true }).start();
    receivers.push(rcv);
    const args = { ...FAST, ...QUICK, 'webhook-url': rcv.url, 'webhook-types': 'message' };
    let srv = await startChat(args);
    servers.push(srv);
    const alice = await newUser(srv, 'wk');
    const room = await createRoom(srv, alice);
    const sent = [];
    for (let i = 0; i < 30; i++) {
      const r = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: `k${i}`, client_msg_id: `k${i}` });
      sent.push(r.body.msg_id);
    }
    // Some deliveries were attempted (and refused): the rows exist; others may not be queued yet.
    await rcv.waitFor((r) => r.attempts.size > 0, 20000, 'a first attempt');
    srv.proc.kill('SIGKILL');
    await srv.exited;
    rcv.failAll = false;
    srv = await startChat(args, { dataDir: srv.dataDir });
    servers.push(srv);
    await rcv.waitFor((r) => sent.every((id) => r.events.has(id)), 30000, 'every message after the restart');
    console.log(`webhooks after kill -9: ${sent.length} delivered, ${rcv.duplicates} duplicates`);
    assert.equal(rcv.badSignatures, 0);
    assert.deepEqual(messageIds(rcv).sort(), [...sent].sort());
    await srv.stop();
  });

  it('dead-letters after the last attempt; the server API lists, replays and manages endpoints', async () => {
    const flagRcv = await new WebhookReceiver({ secret: SECRET, failAll: true }).start();
    const apiRcv = await new WebhookReceiver({ secret: 'api-endpoint-secret-1', failAll: true }).start();
    receivers.push(flagRcv, apiRcv);
    const srv = await startChat({
      ...FAST,
      ...QUICK,
      'webhook-url': flagRcv.url,
      'webhook-types': 'message',
      'webhook-max-attempts': 3,
    });
    servers.push(srv);
    const { key } = createKey(srv, 'webhooks');
    const sapi = serverApi(srv, key);
    const alice = await newUser(srv, 'da');

    // Endpoints: the flag's, then one registered here (validated).
    assert.equal((await sapi.post('/v1/server/webhooks', { url: 'ftp://x', secret: 'x'.repeat(20) })).status, 400);
    assert.equal((await sapi.post('/v1/server/webhooks', { url: apiRcv.url, secret: 'short' })).status, 400);
    const created = await sapi.post('/v1/server/webhooks', { url: apiRcv.url, secret: 'api-endpoint-secret-1', types: 'message' });
    assert.equal(created.status, 201, created.text);
    const wid = created.body.webhook.id;
    assert.match(wid, /^w_\d+$/);
    assert.equal(created.body.webhook.secret, undefined, 'the secret is never returned');
    const list = await sapi.get('/v1/server/webhooks');
    assert.deepEqual(list.body.webhooks.map((w) => [w.id, w.source]), [['default', 'flag'], [wid, 'api']]);
    // A user token is not a key.
    assert.equal((await request(srv, 'GET', '/v1/server/webhooks', { token: alice.token })).status, 401);

    const room = await createRoom(srv, alice);
    const r = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'doomed', client_msg_id: 'd1' });
    const id = r.body.msg_id;
    // 3 attempts each, then dead on both endpoints.
    const deadNow = async () => (await sapi.get('/v1/server/webhooks/dead')).body.deliveries.filter((d) => d.event_id === id);
    const deadline = Date.now() + 30000;
    let dead = [];
    while (Date.now() < deadline && (dead = await deadNow()).length < 2) await sleep(100);
    assert.equal(dead.length, 2, 'dead on both endpoints');
    assert.equal(flagRcv.attempts.get(id), 3);
    assert.equal(apiRcv.attempts.get(id), 3);
    for (const d of dead) {
      assert.equal(d.attempts, 3);
      assert.equal(d.last_error, 'HTTP 500');
      assert.equal(d.event.id, id);
    }
    assert.deepEqual(dead.map((d) => d.endpoint).sort(), ['default', wid].sort());
    assert.equal((await sapi.get('/v1/server/webhooks/dead?limit=0')).status, 400);

    // Replay the default endpoint's dead delivery once the receiver is back.
    flagRcv.failAll = false;
    const fromFlag = dead.find((d) => d.endpoint === 'default');
    const rep = await sapi.post(`/v1/server/webhooks/dead/${fromFlag.id}/replay`);
    assert.equal(rep.status, 202, rep.text);
    await flagRcv.waitFor((x) => x.events.has(id), 20000, 'the replayed delivery');
    assert.equal(flagRcv.events.get(id).data.body, 'doomed');
    assert.equal((await sapi.post(`/v1/server/webhooks/dead/${fromFlag.id}/replay`)).status, 404, 'no longer dead');
    assert.deepEqual((await deadNow()).map((d) => d.endpoint), [wid]);

    // Deleting the endpoint stops its deliveries.
    assert.equal((await sapi.del(`/v1/server/webhooks/${wid}`)).status, 204);
    assert.equal((await sapi.del(`/v1/server/webhooks/${wid}`)).status, 404);
    assert.equal((await sapi.del('/v1/server/webhooks/default')).status, 404);
    const before = apiRcv.requests;
    await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'after delete', client_msg_id: 'd2' });
    await flagRcv.waitFor((x) => x.events.size >= 2, 20000, 'the next message on the flag endpoint');
    assert.equal(apiRcv.requests, before, 'nothing more to a deleted endpoint');
    assert.equal(flagRcv.badSignatures + apiRcv.badSignatures, 0);
    await srv.stop();
  });

  it('an endpoint registered on a node without webhooks gets the events from its registration on', async () => {
    const rcv = await new WebhookReceiver({ secret: 'registered-later-0123' }).start();
    receivers.push(rcv);
    const srv = await startChat({ ...FAST, ...QUICK });
    servers.push(srv);
    const { key } = createKey(srv, 'later');
    const alice = await newUser(srv, 'la');
    const room = await createRoom(srv, alice);
    const before = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'before', client_msg_id: 'l0' });
    const created = await serverApi(srv, key).post('/v1/server/webhooks', { url: rcv.url, secret: 'registered-later-0123' });
    assert.equal(created.status, 201, created.text);
    const after = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'after', client_msg_id: 'l1' });
    await rcv.waitFor((x) => x.events.has(after.body.msg_id), 20000, 'the message after the registration');
    assert.equal(rcv.events.has(before.body.msg_id), false, 'nothing from before the registration');
    assert.equal(rcv.badSignatures, 0);
    await srv.stop();
  });

  it('notifies offline members once per window, not muted, online or the sender', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET }).start();
    receivers.push(rcv);
    const srv = await startChat({ ...FAST, ...QUICK, 'notify-webhook-url': rcv.url, 'notify-window-ms': 3000 });
    servers.push(srv);
    const alice = await newUser(srv, 'na');
    const bob = await newUser(srv, 'nb'); // offline
    const carol = await newUser(srv, 'nc'); // offline, mutes the room
    const dave = await newUser(srv, 'nd'); // online
    const room = await createRoom(srv, alice, [bob, carol, dave]);
    const eve = await newUser(srv, 'ne'); // not a member
    const m = await api(srv, carol).patch(`/v1/rooms/${room.id}/settings`, { muted: true });
    assert.equal(m.status, 200, m.text);
    assert.deepEqual(m.body, { settings: { muted: true } });
    const bad = await api(srv, eve).patch(`/v1/rooms/${room.id}/settings`, { muted: true });
    assert.equal(bad.status, 403);
    const bad2 = await api(srv, carol).patch(`/v1/rooms/${room.id}/settings`, { muted: 'yes' });
    assert.equal(bad2.status, 400);
    const dc = await connect(srv, dave);
    try {
      const post = (body, cmid) => api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body, client_msg_id: cmid });
      const first = await post(`hey @${bob.username}, lunch?`, 'n1');
      await post('second, coalesced', 'n2');
      await post('third, coalesced', 'n3');
      const notes = () => [...rcv.events.values()].filter((e) => e.type === 'notification');
      await rcv.waitFor(() => notes().length >= 1, 20000, "bob's notification");
      // Everything of a message is decided in one pass: wait a little for stragglers anyway.
      await sleep(500);
      let n = notes();
      assert.equal(n.length, 1, JSON.stringify(n));
      assert.equal(n[0].user, bob.id);
      assert.equal(n[0].room, room.id);
      assert.equal(n[0].sender, alice.id);
      assert.equal(n[0].seq, first.body.seq);
      assert.equal(n[0].mention, true);
      assert.equal(n[0].excerpt, `hey @${bob.username}, lunch?`);
      // After the window: one more, without a mention.
      await sleep(3100);
      const later = await post('after the window', 'n4');
      await rcv.waitFor(() => notes().length >= 2, 20000, 'the next window');
      await sleep(300);
      n = notes();
      assert.equal(n.length, 2);
      assert.equal(n[1].user, bob.id);
      assert.equal(n[1].seq, later.body.seq);
      assert.equal(n[1].mention, false);
      assert.equal(rcv.badSignatures, 0);
      // The log has them too.
      assert.equal(srv.logs().filter((l) => l.msg === 'notification').length, 2);
    } finally {
      dc.ws.close();
    }
    await srv.stop();
  });

  it('prunes delivered rows after --webhook-retention; dead letters stay until deleted; the series move', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET, failFirst: 1 }).start();
    const deadRcv = await new WebhookReceiver({ secret: 'dead-endpoint-secret-1', failAll: true }).start();
    receivers.push(rcv, deadRcv);
    const srv = await startChat({
      ...FAST,
      ...QUICK,
      'webhook-url': rcv.url,
      'webhook-types': 'message',
      'webhook-max-attempts': 2,
      'webhook-retention': 1, // seconds: a tiny retention (documented flag), default 3 days
    });
    servers.push(srv);
    const { key } = createKey(srv, 'retention');
    const sapi = serverApi(srv, key);
    // Every webhook route checks its key (an unknown ck_ key is refused, not only a malformed one).
    const unknown = 'ck_' + crypto.randomBytes(32).toString('base64url');
    for (const [m, p] of [['GET', '/v1/server/webhooks'], ['GET', '/v1/server/webhooks/dead'], ['DELETE', '/v1/server/webhooks/dead/d_1'], ['POST', '/v1/server/webhooks/dead/d_1/replay'], ['DELETE', '/v1/server/webhooks/w_1']]) {
      assert.equal((await request(srv, m, p, { token: unknown })).status, 401, `${m} ${p}`);
    }
    const created = await sapi.post('/v1/server/webhooks', { url: deadRcv.url, secret: 'dead-endpoint-secret-1', types: 'message' });
    assert.equal(created.status, 201, created.text);
    const alice = await newUser(srv, 'ra');
    const room = await createRoom(srv, alice);
    const sent = [];
    for (let i = 0; i < 3; i++) {
      const r = await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: `r${i}`, client_msg_id: `r${i}` });
      sent.push(r.body.msg_id);
    }
    await rcv.waitFor((x) => sent.every((id) => x.events.has(id)), 20000, 'every message');
    // Delivered rows (3) disappear after the retention; the 3 dead letters stay.
    const m = await waitMetrics(
      srv,
      (g) => g('chatd_webhook_deliveries_pruned_total') >= 3 && g('chatd_webhook_delivered_rows') === 0 && g('chatd_webhook_dead_rows') === 3,
      'delivered rows pruned, dead letters kept',
    );
    assert.equal(m('chatd_webhook_pending_rows'), 0);
    // 3 events x (1 failure + 1 success) on the flag endpoint, 3 x 2 failures on the other one.
    assert.equal(m('chatd_webhook_attempts_total'), 12);
    assert.equal(m('chatd_webhook_deliveries_succeeded_total'), 3);
    assert.equal(m('chatd_webhook_deliveries_failed_total'), 9);
    assert.equal(m('chatd_webhook_dead_letters_total'), 3);
    await sleep(1500); // longer than the retention: dead letters are not pruned
    let dead = (await sapi.get('/v1/server/webhooks/dead')).body.deliveries;
    assert.deepEqual(dead.map((d) => d.event_id).sort(), [...sent].sort());
    // DELETE drops a dead letter for good (and only a dead one).
    const del = await sapi.del(`/v1/server/webhooks/dead/${dead[0].id}`);
    assert.equal(del.status, 204, del.text);
    assert.equal((await sapi.del(`/v1/server/webhooks/dead/${dead[0].id}`)).status, 404);
    assert.equal((await sapi.del('/v1/server/webhooks/dead/nope')).status, 404);
    dead = (await sapi.get('/v1/server/webhooks/dead')).body.deliveries;
    assert.equal(dead.length, 2);
    await waitMetrics(srv, (g) => g('chatd_webhook_dead_rows') === 2, 'the dead-letter gauge follows');
    assert.equal(rcv.badSignatures + deadRcv.badSignatures, 0);
    await srv.stop();
  });

  it('the coalescing window holds across a restart (stored, not in memory); the series move', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET }).start();
    receivers.push(rcv);
    const args = { ...FAST, ...QUICK, 'notify-webhook-url': rcv.url, 'notify-window-ms': 600000 };
    let srv = await startChat(args);
    servers.push(srv);
    const alice = await newUser(srv, 'wa');
    const bob = await newUser(srv, 'wb'); // offline throughout
    const carol = await newUser(srv, 'wc'); // offline, muted
    const room = await createRoom(srv, alice, [bob, carol]);
    assert.equal((await api(srv, carol).patch(`/v1/rooms/${room.id}/settings`, { muted: true })).status, 200);
    const notes = () => [...rcv.events.values()].filter((e) => e.type === 'notification');
    await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'first', client_msg_id: 'x1' });
    await rcv.waitFor(() => notes().length >= 1, 20000, "bob's notification");
    let g = await waitMetrics(srv, (m) => m('chatd_notifications_total') === 1 && m('chatd_notifications_muted_total') === 1, 'produced 1, muted 1');
    assert.equal(g('chatd_notifications_coalesced_total'), 0);
    // A clean stop, then the same storage again: the notifier's memory is gone, the window not.
    srv.proc.kill('SIGTERM');
    await srv.exited;
    srv = await startChat(args, { dataDir: srv.dataDir });
    servers.push(srv);
    await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'second, inside the window', client_msg_id: 'x2' });
    g = await waitMetrics(srv, (m) => m('chatd_notifications_coalesced_total') >= 1, 'the second message coalesced');
    assert.equal(g('chatd_notifications_total'), 0);
    // Another room is another window: the notifier is alive and sends that one.
    const room2 = await createRoom(srv, alice, [bob]);
    await api(srv, alice).post(`/v1/rooms/${room2.id}/messages`, { body: 'elsewhere', client_msg_id: 'x3' });
    await rcv.waitFor(() => notes().length >= 2, 20000, 'the notification of the other room');
    await sleep(300);
    assert.deepEqual(notes().map((n) => n.room), [room.id, room2.id]);
    assert.equal(await metric(srv, 'chatd_notifications_total'), 1);
    await srv.stop();
  });

  it('cuts a long excerpt on a UTF-8 boundary', async () => {
    const rcv = await new WebhookReceiver({ secret: SECRET }).start();
    receivers.push(rcv);
    const srv = await startChat({ ...FAST, ...QUICK, 'notify-webhook-url': rcv.url, 'notify-excerpt': 10 });
    servers.push(srv);
    const alice = await newUser(srv, 'ua');
    const bob = await newUser(srv, 'ub');
    const room = await createRoom(srv, alice, [bob]);
    await api(srv, alice).post(`/v1/rooms/${room.id}/messages`, { body: 'ab€€€€€', client_msg_id: 'u1' });
    await rcv.waitFor((r) => r.events.size >= 1, 20000, 'the notification');
    const n = [...rcv.events.values()][0];
    assert.equal(n.excerpt, 'ab€€'); // 2 + 3 + 3 = 8 bytes; a third € would make 11
    await srv.stop();
  });
});
