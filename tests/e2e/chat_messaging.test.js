'use strict';
// Messages (docs/PROTOCOL.md, "WebSocket" send/ack, "Rooms" REST send and history): fanout to
// every connection of every member, acks, body and client_msg_id limits, idempotent resend, REST
// send, history paging both ways, and seq order under concurrent senders.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startChat,
  newUser,
  api,
  createRoom,
  fullHistory,
  connect,
  expectNothing,
  expectWsError,
  expectError,
  assertContiguous,
  withClients,
  nextId,
} = require('./lib/chat');

const T = { timeout: 30000 };
const MAX_BODY = 100;

describe('chat messaging', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'max-message-body': MAX_BODY, 'msg-rate': 100000, 'msg-burst': 100000 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n, prefix = 'ms') => Promise.all(Array.from({ length: n }, () => newUser(srv, prefix)));

  it('fanout: every connection of every member gets the message, the sending connection gets the ack instead', T, async () => {
    const [a, b, c] = await users(3);
    const room = await createRoom(srv, a, [b, c]);
    const conns = {
      a1: await connect(srv, a),
      a2: await connect(srv, a),
      b1: await connect(srv, b),
      b2: await connect(srv, b),
      c1: await connect(srv, c),
      c2: await connect(srv, c),
      c3: await connect(srv, c),
    };
    const all = Object.values(conns);
    await withClients(all, async () => {
      for (const cl of all) assert.equal(cl.hello.rooms, 1);
      const t0 = Date.now();
      const ack = await conns.a1.req({ type: 'send', id: 'snd-1', room: room.id, body: 'hello all', client_msg_id: 'cm-fan-1' });
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      assert.equal(ack.id, 'snd-1');
      assert.equal(ack.room, room.id);
      assert.equal(ack.seq, 4);
      assert.equal(typeof ack.msg_id, 'string');
      assert.ok(ack.msg_id.length > 0);
      assert.equal(typeof ack.ts, 'number');
      assert.ok(Math.abs(ack.ts - t0) < 60000, `ts ${ack.ts} is not unix ms`);
      assert.equal(ack.client_msg_id, 'cm-fan-1');
      assert.equal(ack.duplicate, false);

      for (const [name, cl] of Object.entries(conns)) {
        if (name === 'a1') continue;
        const m = await cl.next((x) => x.type === 'message' && x.room === room.id);
        assert.deepEqual(
          m,
          { type: 'message', room: room.id, seq: 4, msg_id: ack.msg_id, sender: a.id, body: 'hello all', ts: ack.ts, client_msg_id: 'cm-fan-1' },
          `${name} got ${JSON.stringify(m)}`,
        );
      }
      // the sender's connection got the ack, not the message
      await expectNothing(conns.a1, (m) => m.type === 'message', 300, 'message on the sending connection');

      // the other way round: b2 sends, a1 receives, b2 only acks
      const ack2 = await conns.b2.sendMsg(room.id, 'hi back', 'cm-fan-2');
      assert.equal(ack2.seq, 5);
      for (const cl of [conns.a1, conns.a2, conns.b1, conns.c3]) {
        const m = await cl.next((x) => x.type === 'message' && x.seq === 5);
        assert.equal(m.sender, b.id);
        assert.equal(m.body, 'hi back');
      }
      await expectNothing(conns.b2, (m) => m.type === 'message', 200, 'message on the sending connection');
      // acks without id are fine too
      conns.c1.send({ type: 'send', room: room.id, body: 'no id', client_msg_id: 'cm-fan-3' });
      const ack3 = await conns.c1.next((m) => m.type === 'ack');
      assert.equal(ack3.seq, 6);
      assert.equal(ack3.id, undefined);
      // history agrees
      const h = await fullHistory(srv, b, room.id);
      assert.deepEqual(h.slice(3).map((m) => [m.seq, m.body, m.sender]), [[4, 'hello all', a.id], [5, 'hi back', b.id], [6, 'no id', c.id]]);
    });
  });

  it('body limits: empty or missing -> invalid_field, over --max-message-body bytes -> payload_too_large (WS and REST)', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const send = (body, id) => ca.req({ type: 'send', id, room: room.id, body, client_msg_id: nextId('bl') });
      expectWsError(await send('', 'e1'), 'invalid_field', 'e1');
      expectWsError(await ca.req({ type: 'send', id: 'e2', room: room.id, client_msg_id: 'x' }), 'invalid_field', 'e2');
      expectWsError(await send(42, 'e3'), 'invalid_field', 'e3');
      expectWsError(await send('x'.repeat(MAX_BODY + 1), 'e4'), 'payload_too_large', 'e4');
      expectWsError(await send('é'.repeat(MAX_BODY / 2 + 1), 'e5'), 'payload_too_large', 'e5'); // 102 bytes, 51 chars
      const ok1 = await send('x'.repeat(MAX_BODY), 'o1');
      assert.equal(ok1.type, 'ack', JSON.stringify(ok1));
      const ok2 = await send('é'.repeat(MAX_BODY / 2), 'o2'); // exactly 100 bytes
      assert.equal(ok2.type, 'ack', JSON.stringify(ok2));
      const ok3 = await send('日本語 ✓ \u{1F600}', 'o3');
      assert.equal(ok3.type, 'ack', JSON.stringify(ok3));
      const m3 = await cb.next((m) => m.type === 'message' && m.seq === ok3.seq);
      assert.equal(m3.body, '日本語 ✓ \u{1F600}');

      const rest = (body) => api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body, client_msg_id: nextId('blr') });
      expectError(assert, await rest(''), 400, 'invalid_field');
      expectError(assert, await rest(undefined), 400, 'invalid_field');
      expectError(assert, await rest('x'.repeat(MAX_BODY + 1)), 413, 'payload_too_large');
      assert.equal((await rest('x'.repeat(MAX_BODY))).status, 201);

      // only the accepted ones were stored and delivered
      const h = await fullHistory(srv, a, room.id);
      assert.deepEqual(h.filter((m) => m.type === 'message').map((m) => m.body), [
        'x'.repeat(MAX_BODY),
        'é'.repeat(MAX_BODY / 2),
        '日本語 ✓ \u{1F600}',
        'x'.repeat(MAX_BODY),
      ]);
      // the connection is still fine
      assert.equal((await ca.req({ type: 'ping' })).type, 'pong');
    });
  });

  it('client_msg_id: required, 1-64 bytes (invalid_field otherwise)', T, async () => {
    const [a] = await users(1);
    const room = await createRoom(srv, a, []);
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const send = (cmid) => {
        const o = { type: 'send', room: room.id, body: 'b' };
        if (cmid !== undefined) o.client_msg_id = cmid;
        return ca.req(o);
      };
      expectWsError(await send(undefined), 'invalid_field');
      expectWsError(await send(''), 'invalid_field');
      expectWsError(await send(7), 'invalid_field');
      expectWsError(await send('k'.repeat(65)), 'invalid_field');
      const ok = await send('k'.repeat(64));
      assert.equal(ok.type, 'ack', JSON.stringify(ok));
      assert.equal(ok.client_msg_id, 'k'.repeat(64));
      const one = await send('k');
      assert.equal(one.type, 'ack', JSON.stringify(one));
      const rest = (cmid) => api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'b', client_msg_id: cmid });
      expectError(assert, await rest(undefined), 400, 'invalid_field');
      expectError(assert, await rest(''), 400, 'invalid_field');
      expectError(assert, await rest('r'.repeat(65)), 400, 'invalid_field');
      assert.equal((await rest('r'.repeat(64))).status, 201);
      expectWsError(await ca.req({ type: 'send', body: 'b', client_msg_id: 'no-room' }), 'invalid_field');
      expectWsError(await ca.req({ type: 'send', room: 17, body: 'b', client_msg_id: 'bad-room' }), 'invalid_field');
    });
  });

  // chatd reads plain sends without a JSON DOM and everything else with jansson: whatever the
  // spelling, the answers must be the ones the JSON means.
  it('send in any JSON spelling (order, spaces, escapes, integer ids, extra keys) gets the same answers', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, []);
    const other = await createRoom(srv, b, []);
    const ca = await connect(srv, a);
    await withClients([ca], async () => {
      const raw = (text, id) => {
        ca.send(text);
        return ca.next((m) => m.id === id && m.type !== 'message');
      };
      const r = room.id;
      let ack = await raw(`{"type":"send","id":"s1","room":"${r}","client_msg_id":"sp-1","body":"plain"}`, 's1');
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      ack = await raw(` {\n "body" : "reordered" , "client_msg_id":"sp-2","room":"${r}", "id" : 77 ,"type":"send"}\t`, 77);
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      assert.equal(ack.id, 77);
      ack = await raw(`{"type":"send","id":"s3","room":"${r}","client_msg_id":"sp-3","body":"quote \\" newline \\n \\u00e9","extra":[1,{"x":null}]}`, 's3');
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      ack = await raw(`{"type":"send","id":-5,"room":"${r}","client_msg_id":"sp-4","body":"caf\u00e9 \u{1F600}"}`, -5);
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
      const hist = await fullHistory(srv, a, r);
      const bodies = hist.filter((m) => m.type === 'message').map((m) => m.body);
      assert.deepEqual(bodies, ['plain', 'reordered', 'quote " newline \n \u00e9', 'caf\u00e9 \u{1F600}']);
      // errors, whichever parser reads them
      expectWsError(await raw(`{"type":"send","id":"e1","room":"${other.id}","client_msg_id":"sp-5","body":"x"}`, 'e1'), 'not_member', 'e1');
      expectWsError(await raw(`{"type":"send","id":"e2","room":"${r}","client_msg_id":"sp-6","body":""}`, 'e2'), 'invalid_field', 'e2');
      expectWsError(await raw(`{"type":"send","id":"e3","room":"${r}","client_msg_id":"","body":"x"}`, 'e3'), 'invalid_field', 'e3');
      expectWsError(await raw(`{"type":"send","id":"e4","room":"r_x","client_msg_id":"sp-7","body":"x"}`, 'e4'), 'invalid_field', 'e4');
      expectWsError(await raw(`{"type":"send","id":"e5","room":"${r}","client_msg_id":"sp-8","body":"${'y'.repeat(MAX_BODY + 1)}"}`, 'e5'), 'payload_too_large', 'e5');
      // a duplicate key or a second value is not a send at all
      ca.send(`{"type":"send","room":"${r}","client_msg_id":"sp-9","body":"x","body":"y"}`);
      expectWsError(await ca.next((m) => m.type === 'error'), 'invalid_json');
      ca.send(`{"type":"send","room":"${r}","client_msg_id":"sp-10","body":"x"} {}`);
      expectWsError(await ca.next((m) => m.type === 'error'), 'invalid_json');
      const after = await fullHistory(srv, a, r);
      assert.equal(after.length, hist.length, 'a refused send was stored');
    });
  });

  it('idempotent resend: the same client_msg_id gives the same seq with duplicate:true, one message stored and delivered', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const a1 = await connect(srv, a);
    const a2 = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([a1, a2, cb], async () => {
      const first = await a1.sendMsg(room.id, 'only once', 'idem-1');
      assert.equal(first.type, 'ack', JSON.stringify(first));
      assert.equal(first.duplicate, false);
      const again = await a1.req({ type: 'send', id: 'resend', room: room.id, body: 'only once', client_msg_id: 'idem-1' });
      assert.equal(again.type, 'ack', JSON.stringify(again));
      assert.equal(again.id, 'resend');
      assert.equal(again.duplicate, true);
      assert.equal(again.seq, first.seq);
      assert.equal(again.msg_id, first.msg_id);
      assert.equal(again.ts, first.ts);
      assert.equal(again.room, room.id);
      // from another device, even with another body: still the original
      const other = await a2.sendMsg(room.id, 'changed my mind', 'idem-1');
      assert.equal(other.duplicate, true);
      assert.equal(other.seq, first.seq);
      // over REST too: 200 with duplicate:true
      const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'only once', client_msg_id: 'idem-1' });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.duplicate, true);
      assert.equal(r.body.seq, first.seq);
      // another user may use the same client_msg_id: a new message
      const byB = await cb.sendMsg(room.id, 'mine', 'idem-1');
      assert.equal(byB.duplicate, false);
      assert.equal(byB.seq, first.seq + 1);
      // a marker after the resends: everything before it has been delivered
      const marker = await a1.sendMsg(room.id, 'marker', 'idem-marker');
      assert.equal(marker.seq, first.seq + 2);
      await cb.next((m) => m.type === 'message' && m.seq === marker.seq);
      await a2.next((m) => m.type === 'message' && m.seq === marker.seq);
      const got = cb.entries(room.id).filter((m) => m.type === 'message').map((m) => [m.seq, m.client_msg_id, m.sender]);
      assert.deepEqual(got, [[first.seq, 'idem-1', a.id], [marker.seq, 'idem-marker', a.id]]);
      const gotA2 = a2.entries(room.id).map((m) => m.seq);
      assert.deepEqual(gotA2, [first.seq, byB.seq, marker.seq]);
      const h = await fullHistory(srv, a, room.id);
      const msgs = h.filter((m) => m.type === 'message');
      assert.deepEqual(msgs.map((m) => [m.seq, m.body, m.client_msg_id]), [
        [first.seq, 'only once', 'idem-1'],
        [byB.seq, 'mine', 'idem-1'],
        [marker.seq, 'marker', 'idem-marker'],
      ]);
      assert.equal((await api(srv, a).get(`/v1/rooms/${room.id}`)).body.room.last_seq, marker.seq);
    });
  });

  it('REST send: 201, then 200 duplicate; delivered once to every WebSocket of every member (the sender\'s too)', T, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const a1 = await connect(srv, a);
    const b1 = await connect(srv, b);
    const b2 = await connect(srv, b);
    await withClients([a1, b1, b2], async () => {
      const t0 = Date.now();
      const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'from a bot', client_msg_id: 'rest-1' });
      assert.equal(r.status, 201, r.text);
      const body = r.body;
      assert.equal(body.room, room.id);
      assert.equal(body.seq, 3);
      assert.equal(typeof body.msg_id, 'string');
      assert.ok(Math.abs(body.ts - t0) < 60000);
      assert.equal(body.client_msg_id, 'rest-1');
      assert.equal(body.duplicate, false);
      const r2 = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'from a bot', client_msg_id: 'rest-1' });
      assert.equal(r2.status, 200, r2.text);
      assert.deepEqual(r2.body, { ...body, duplicate: true });
      const marker = await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: 'marker', client_msg_id: 'rest-m' });
      assert.equal(marker.body.seq, 4);
      for (const cl of [a1, b1, b2]) {
        await cl.next((m) => m.type === 'message' && m.seq === 4);
        const ms = cl.entries(room.id);
        assert.deepEqual(ms.map((m) => m.seq), [3, 4]);
        assert.deepEqual(ms[0], {
          type: 'message', room: room.id, seq: 3, msg_id: body.msg_id, sender: a.id, body: 'from a bot', ts: body.ts, client_msg_id: 'rest-1',
        });
      }
    });
  });

  it('history pages both ways by seq (before/after/limit/has_more), always ascending', { timeout: 60000 }, async () => {
    const [a, b] = await users(2);
    const room = await createRoom(srv, a, [b]);
    const ca = await connect(srv, a);
    const N = 120;
    const TOTAL = N + 2; // two member entries first
    await withClients([ca], async () => {
      // pipelined: fire them all, then wait for the acks
      for (let i = 0; i < N; i++) ca.send({ type: 'send', id: `h${i}`, room: room.id, body: `m${i}`, client_msg_id: `hist-${i}` });
      const acks = ca.collect((m) => m.type === 'ack' || m.type === 'error');
      await ca.waitFor(() => acks.update().length >= N, 20000, `${N} acks`);
      assert.ok(acks.items.every((x) => x.type === 'ack'), JSON.stringify(acks.items.find((x) => x.type !== 'ack')));
    });
    const x = api(srv, b);
    const page = async (q) => {
      const r = await x.get(`/v1/rooms/${room.id}/messages${q}`);
      assert.equal(r.status, 200, `${q}: ${r.text}`);
      const seqs = r.body.messages.map((m) => m.seq);
      return { seqs, has_more: r.body.has_more, messages: r.body.messages };
    };
    const range = (lo, hi) => Array.from({ length: hi - lo + 1 }, (_, i) => lo + i);

    let p = await page('');
    assert.deepEqual(p.seqs, range(TOTAL - 49, TOTAL), 'default: the latest 50, ascending');
    assert.equal(p.has_more, true);
    p = await page(`?before=${TOTAL - 49}&limit=50`);
    assert.deepEqual(p.seqs, range(TOTAL - 99, TOTAL - 50));
    assert.equal(p.has_more, true);
    p = await page(`?before=${TOTAL - 99}&limit=50`);
    assert.deepEqual(p.seqs, range(1, TOTAL - 100));
    assert.equal(p.has_more, false);
    p = await page('?before=3&limit=2');
    assert.deepEqual(p.seqs, [1, 2]);
    assert.equal(p.has_more, false);
    p = await page('?before=1');
    assert.deepEqual(p.seqs, []);
    assert.equal(p.has_more, false);

    p = await page('?after=0&limit=50');
    assert.deepEqual(p.seqs, range(1, 50));
    assert.equal(p.has_more, true);
    p = await page('?after=50&limit=50');
    assert.deepEqual(p.seqs, range(51, 100));
    assert.equal(p.has_more, true);
    p = await page('?after=100&limit=50');
    assert.deepEqual(p.seqs, range(101, TOTAL));
    assert.equal(p.has_more, false);
    p = await page(`?after=${TOTAL - 1}&limit=1`);
    assert.deepEqual(p.seqs, [TOTAL]);
    assert.equal(p.has_more, false);
    p = await page(`?after=${TOTAL}`);
    assert.deepEqual(p.seqs, []);
    assert.equal(p.has_more, false);
    p = await page('?after=0&limit=200');
    assert.deepEqual(p.seqs, range(1, TOTAL));
    assert.equal(p.has_more, false);
    p = await page('?limit=1');
    assert.deepEqual(p.seqs, [TOTAL]);
    assert.equal(p.has_more, true);
    // the bodies and client_msg_ids are the ones sent, in order
    assert.deepEqual(p.messages[0].body, `m${N - 1}`);
    const all = (await page('?after=2&limit=200')).messages;
    assert.deepEqual(all.map((m) => m.body), Array.from({ length: N }, (_, i) => `m${i}`));
    assert.deepEqual(all.map((m) => m.client_msg_id), Array.from({ length: N }, (_, i) => `hist-${i}`));

    // walking backwards with small pages and forwards with others sees every entry exactly once
    let back = [];
    let before = 0;
    for (let guard = 0; guard < 100; guard++) {
      const q = await page(before ? `?before=${before}&limit=7` : '?limit=7');
      back = q.seqs.concat(back);
      if (!q.has_more) break;
      before = q.seqs[0];
    }
    assert.deepEqual(back, range(1, TOTAL));
    let fwd = [];
    let after = 0;
    for (let guard = 0; guard < 100; guard++) {
      const q = await page(`?after=${after}&limit=13`);
      fwd = fwd.concat(q.seqs);
      if (!q.has_more) break;
      after = q.seqs[q.seqs.length - 1];
    }
    assert.deepEqual(fwd, range(1, TOTAL));

    for (const q of ['?limit=0', '?limit=201', '?limit=x', '?before=abc', '?after=-1']) {
      expectError(assert, await x.get(`/v1/rooms/${room.id}/messages${q}`), 400, 'invalid_field');
    }
  });

  it('order under concurrency: 10 senders x 200 messages, fired without waiting; every receiver sees contiguous seqs, no duplicates, all 2000', { timeout: 120000 }, async () => {
    const SENDERS = 10;
    const PER = 200;
    const TOTAL = SENDERS * PER;
    const sendUsers = await users(5, 'snd'); // two sender connections per user
    const [r1, r2] = await users(2, 'rcv');
    const room = await createRoom(srv, sendUsers[0], [...sendUsers.slice(1), r1, r2]);
    const MEMBERS = 7;
    assert.equal(room.last_seq, MEMBERS);
    const senders = [];
    for (let i = 0; i < SENDERS; i++) senders.push(await connect(srv, sendUsers[i % 5]));
    const receivers = [
      await connect(srv, r1),
      await connect(srv, r2),
      await connect(srv, r2, { sync: { [room.id]: 0 } }), // this one replays the member entries too
    ];
    await withClients([...senders, ...receivers], async () => {
      const firstMsg = MEMBERS + 1;
      const lastMsg = MEMBERS + TOTAL;
      const acks = senders.map((s) => s.collect((m) => m.type === 'ack' || m.type === 'error'));
      const recv = receivers.map((c) => c.collect((m) => m.room === room.id && (m.type === 'message' || m.type === 'member' || m.type === 'room')));
      const sent = new Map(); // client_msg_id -> {sender user id, body}
      // fire everything, interleaving the senders
      for (let k = 0; k < PER; k++) {
        for (let i = 0; i < SENDERS; i++) {
          const cmid = `c${i}-${k}`;
          const body = `sender ${i} message ${k}`;
          sent.set(cmid, { sender: senders[i].user.id, body });
          senders[i].send({ type: 'send', id: `${i}:${k}`, room: room.id, body, client_msg_id: cmid });
        }
      }
      await Promise.all(senders.map((s, i) => s.waitFor(() => acks[i].update().length >= PER, 90000, `${PER} acks on sender ${i}`)));
      const ackSeqs = [];
      for (const [i, list] of acks.entries()) {
        const errs = list.items.filter((m) => m.type !== 'ack');
        assert.deepEqual(errs, [], `sender ${i} got errors`);
        assert.equal(list.items.length, PER);
        const seqs = list.items.map((m) => m.seq);
        assert.equal(new Set(seqs).size, PER, `sender ${i}: duplicate seqs in acks`);
        // one connection's sends are committed in the order it sent them
        for (let j = 1; j < seqs.length; j++) assert.ok(seqs[j] > seqs[j - 1], `sender ${i}: acks out of order`);
        assert.deepEqual(list.items.map((m) => m.id), Array.from({ length: PER }, (_, k) => `${i}:${k}`));
        assert.ok(list.items.every((m) => m.duplicate === false));
        ackSeqs.push(...seqs);
      }
      ackSeqs.sort((x, y) => x - y);
      assertContiguous(ackSeqs, firstMsg, 'all acks together');

      await Promise.all(receivers.map((c, i) => c.waitFor(() => {
        const items = recv[i].update();
        return items.length && items[items.length - 1].seq >= lastMsg;
      }, 90000, `seq ${lastMsg} on receiver ${i}`)));
      // a short grace period to catch anything doubled after the last one
      await new Promise((r) => setTimeout(r, 300));
      for (const [i, c] of receivers.entries()) {
        const items = recv[i].update();
        const first = i === 2 ? 1 : firstMsg;
        if (i === 2) {
          assert.deepEqual(items.slice(0, MEMBERS).map((m) => m.type), Array(MEMBERS).fill('member'));
        }
        assertContiguous(items.map((m) => m.seq), first, `receiver ${i}`);
        assert.equal(items.length, lastMsg - first + 1, `receiver ${i}: count`);
        const msgs = items.filter((m) => m.type === 'message');
        assert.equal(msgs.length, TOTAL);
        const seen = new Set();
        for (const m of msgs) {
          const s = sent.get(m.client_msg_id);
          assert.ok(s, `receiver ${i}: unknown client_msg_id ${m.client_msg_id}`);
          assert.equal(m.sender, s.sender);
          assert.equal(m.body, s.body);
          seen.add(m.client_msg_id);
        }
        assert.equal(seen.size, TOTAL, `receiver ${i}: every message once`);
        assert.equal(c.messages.filter((m) => m.type === 'error').length, 0);
      }
      // each message's seq is the one its sender was acked with
      const ackBy = new Map();
      for (const list of acks) for (const m of list.items) ackBy.set(m.client_msg_id, m.seq);
      for (const m of recv[0].items) assert.equal(m.seq, ackBy.get(m.client_msg_id));

      // A sender connection sees the whole room in order too: its own messages as acks, the
      // others' as messages, no gap and no duplicate.
      for (const [i, s] of senders.entries()) {
        const isRoomEntry = (m) => m.type === 'ack' || (m.type === 'message' && m.room === room.id);
        await s.waitFor(() => s.messages.filter(isRoomEntry).length >= TOTAL, 30000, `the whole room on sender ${i}`);
        const full = s.messages.filter(isRoomEntry);
        assertContiguous(full.map((m) => m.seq), firstMsg, `sender ${i} stream (acks + messages)`);
        assert.equal(full.length, TOTAL);
        const mine = new Set(acks[i].items.map((m) => m.client_msg_id));
        const own = full.filter((m) => m.type === 'message' && mine.has(m.client_msg_id));
        assert.deepEqual(own, [], `sender ${i} got its own messages besides the acks`);
      }
      const h = await fullHistory(srv, r1, room.id);
      assertContiguous(h.map((m) => m.seq), 1, 'history');
      assert.equal(h.length, lastMsg);
    });
  });
});
