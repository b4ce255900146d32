'use strict';
// Receipts (docs/PROTOCOL.md, "Receipts"): delivered watermarks per device (login session) and
// room, GET /v1/rooms/{id}/receipts, read receipts as `receipt` events to the room's other
// members, and the share_read_receipts privacy setting (GET|PATCH /v1/me/settings).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const {
  startChat,
  newUser,
  loginAgain,
  api,
  createRoom,
  connect,
  expectNothing,
  expectWsError,
  expectError,
  withClients,
} = require('./lib/chat');

const T = { timeout: 30000 };

describe('receipts', () => {
  let srv;
  before(async () => {
    srv = await startChat();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  const users = (n, prefix = 'rc') => Promise.all(Array.from({ length: n }, () => newUser(srv, prefix)));
  const receipts = async (u, room) => {
    const r = await api(srv, u).get(`/v1/rooms/${room}/receipts`);
    assert.equal(r.status, 200, r.text);
    return r.body;
  };
  const of = (body, u) => body.receipts.find((x) => x.user === u.id);

  it('delivered: a monotonic watermark per device and room; the sender sees the lowest over every device', T, async () => {
    const [a, b] = await users(2);
    const b2 = await loginAgain(srv, b); // b's second device (another login session)
    const room = (await createRoom(srv, a, [b])).id;
    const ca = await connect(srv, a);
    const cb1 = await connect(srv, b);
    const cb2 = await connect(srv, b2);
    await withClients([ca, cb1, cb2], async () => {
      const m1 = await ca.sendMsg(room, 'one');
      const m2 = await ca.sendMsg(room, 'two');

      let r = await receipts(a, room);
      assert.equal(of(r, b).delivered_seq, null); // nothing acknowledged yet
      assert.equal(r.delivered_all, 0);

      const d1 = await cb1.req({ type: 'delivered', room, seq: m2.seq });
      assert.equal(d1.type, 'delivered', JSON.stringify(d1));
      assert.deepEqual(d1.rooms, [{ room, seq: m2.seq }]);
      r = await receipts(a, room);
      assert.equal(of(r, b).delivered_seq, m2.seq); // one device so far
      const d2 = await cb2.req({ type: 'delivered', room, seq: m1.seq });
      assert.equal(d2.rooms[0].seq, m1.seq);
      r = await receipts(a, room);
      assert.equal(of(r, b).delivered_seq, m1.seq, 'the lowest of b\'s devices');
      assert.equal(r.delivered_all, m1.seq);

      // monotonic: a lower seq does not move it back; clamped to the room's last seq
      const back = await cb1.req({ type: 'delivered', room, seq: 1 });
      assert.equal(back.rooms[0].seq, m2.seq);
      const ahead = await cb2.req({ type: 'delivered', room, seq: 1e9 });
      assert.equal(ahead.rooms[0].seq, m2.seq);
      r = await receipts(a, room);
      assert.equal(of(r, b).delivered_seq, m2.seq);
      assert.equal(r.delivered_all, m2.seq);
      assert.equal(r.last_seq, m2.seq);

      // ending a session drops its device: the other one counts alone
      const m3 = await ca.sendMsg(room, 'three');
      await cb1.req({ type: 'delivered', room, seq: m3.seq });
      assert.equal(of(await receipts(a, room), b).delivered_seq, m2.seq);
      const lo = await api(srv, b2).post('/v1/auth/logout', { refresh_token: b2.refresh });
      assert.ok(lo.status === 200 || lo.status === 204, lo.text);
      assert.equal(of(await receipts(a, room), b).delivered_seq, m3.seq);
    });
  });

  it('delivered: batched over rooms; members only; bad requests', T, async () => {
    const [a, b] = await users(2);
    const r1 = (await createRoom(srv, a, [b])).id;
    const r2 = (await createRoom(srv, a, [b])).id;
    const mine = (await createRoom(srv, a, [])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const s1 = await ca.sendMsg(r1, 'x');
      const s2 = await ca.sendMsg(r2, 'y');
      const d = await cb.req({ type: 'delivered', rooms: [{ room: r1, seq: s1.seq }, { room: r2, seq: s2.seq }] });
      assert.equal(d.type, 'delivered', JSON.stringify(d));
      assert.deepEqual(d.rooms, [{ room: r1, seq: s1.seq }, { room: r2, seq: s2.seq }]);
      assert.equal(of(await receipts(a, r2), b).delivered_seq, s2.seq);

      expectWsError(await cb.req({ type: 'delivered', room: mine, seq: 1 }), 'not_member');
      expectWsError(await cb.req({ type: 'delivered', rooms: [{ room: r1, seq: 1 }, { room: mine, seq: 1 }] }), 'not_member');
      expectWsError(await cb.req({ type: 'delivered', rooms: [] }), 'invalid_field');
      expectWsError(await cb.req({ type: 'delivered', rooms: Array.from({ length: 101 }, () => ({ room: r1, seq: 1 })) }), 'invalid_field');
      expectWsError(await cb.req({ type: 'delivered', room: r1, seq: -1 }), 'invalid_field');
      expectWsError(await cb.req({ type: 'delivered', room: r1 }), 'invalid_field');
      expectError(assert, await api(srv, b).get(`/v1/rooms/${mine}/receipts`), 403, 'not_member');
    });
  });

  // The REST form of `delivered` (POST /v1/rooms/{id}/delivered, POST /v1/me/delivered): the
  // same rules (members only, monotonic, clamped, one watermark per login session, batched
  // requests all-or-nothing), and the same watermark a WebSocket of that session moves.
  it('delivered over REST: per session, monotonic, members only; batched; shared with the WebSocket', T, async () => {
    const [a, b, c] = await users(3);
    const b2 = await loginAgain(srv, b); // b's second device
    const room = (await createRoom(srv, a, [b])).id;
    const r2 = (await createRoom(srv, a, [b])).id;
    const mine = (await createRoom(srv, a, [])).id;
    const say = async (rm, body) => {
      const r = await api(srv, a).post(`/v1/rooms/${rm}/messages`, { body, client_msg_id: `d${Math.random()}` });
      assert.equal(r.status, 201, r.text);
      return r.body;
    };
    const m1 = await say(room, 'one');
    const m2 = await say(room, 'two');
    const d1 = await api(srv, b).post(`/v1/rooms/${room}/delivered`, { seq: m2.seq });
    assert.equal(d1.status, 200, d1.text);
    assert.deepEqual(d1.body.rooms, [{ room, seq: m2.seq }]);
    assert.equal(of(await receipts(a, room), b).delivered_seq, m2.seq);
    // the second session is another device: the lowest counts
    const d2 = await api(srv, b2).post(`/v1/rooms/${room}/delivered`, { seq: m1.seq });
    assert.deepEqual(d2.body.rooms, [{ room, seq: m1.seq }]);
    let r = await receipts(a, room);
    assert.equal(of(r, b).delivered_seq, m1.seq);
    assert.equal(r.delivered_all, m1.seq);
    // monotonic and clamped
    assert.equal((await api(srv, b).post(`/v1/rooms/${room}/delivered`, { seq: 1 })).body.rooms[0].seq, m2.seq);
    assert.equal((await api(srv, b2).post(`/v1/rooms/${room}/delivered`, { seq: 1e9 })).body.rooms[0].seq, m2.seq);
    assert.equal(of(await receipts(a, room), b).delivered_seq, m2.seq);
    // a WebSocket of the same session moves the same watermark (REST and WS are one device)
    const m3 = await say(room, 'three');
    const cb = await connect(srv, b);
    await withClients([cb], async () => {
      const w = await cb.req({ type: 'delivered', room, seq: 1 });
      assert.deepEqual(w.rooms, [{ room, seq: m2.seq }], 'the REST watermark of this session');
      await cb.req({ type: 'delivered', room, seq: m3.seq });
    });
    assert.equal((await api(srv, b).post(`/v1/rooms/${room}/delivered`, { seq: 0 })).body.rooms[0].seq, m3.seq);
    // batched
    const s2 = await say(r2, 'y');
    const bd = await api(srv, b2).post('/v1/me/delivered', { rooms: [{ room, seq: m3.seq }, { room: r2, seq: s2.seq }] });
    assert.equal(bd.status, 200, bd.text);
    assert.deepEqual(bd.body.rooms, [{ room, seq: m3.seq }, { room: r2, seq: s2.seq }]);
    assert.equal(of(await receipts(a, r2), b).delivered_seq, s2.seq, 'only b2 acknowledged in r2');
    assert.equal((await api(srv, b).post(`/v1/rooms/${r2}/delivered`, { seq: s2.seq - 1 })).status, 200);
    assert.equal(of(await receipts(a, r2), b).delivered_seq, s2.seq - 1, 'b\'s other session is behind');
    assert.equal((await api(srv, b).post(`/v1/rooms/${r2}/delivered`, { seq: s2.seq })).status, 200);
    assert.equal(of(await receipts(a, r2), b).delivered_seq, s2.seq);
    // members only; all or nothing
    const s3 = await say(r2, 'z');
    expectError(assert, await api(srv, c).post(`/v1/rooms/${room}/delivered`, { seq: 1 }), 403, 'not_member');
    expectError(assert, await api(srv, b).post(`/v1/rooms/${mine}/delivered`, { seq: 1 }), 403, 'not_member');
    expectError(assert, await api(srv, b).post('/v1/me/delivered', { rooms: [{ room: r2, seq: s3.seq }, { room: mine, seq: 1 }] }), 403, 'not_member');
    assert.equal(of(await receipts(a, r2), b).delivered_seq, s2.seq, 'the failed batch moved nothing');
    expectError(assert, await api(srv, b).post('/v1/rooms/r_999999999/delivered', { seq: 1 }), 404, 'not_found');
    // bad requests
    expectError(assert, await api(srv, b).post(`/v1/rooms/${room}/delivered`, { seq: -1 }), 400, 'invalid_field');
    expectError(assert, await api(srv, b).post(`/v1/rooms/${room}/delivered`, {}), 400, 'invalid_field');
    expectError(assert, await api(srv, b).post('/v1/me/delivered', { rooms: [] }), 400, 'invalid_field');
    expectError(assert, await api(srv, b).post('/v1/me/delivered', { rooms: Array.from({ length: 101 }, () => ({ room, seq: 1 })) }), 400, 'invalid_field');
    expectError(assert, await api(srv, b).post('/v1/me/delivered', { rooms: [{ room: 'x', seq: 1 }] }), 400, 'invalid_field');
    expectError(assert, await api(srv, b).post('/v1/me/delivered', {}), 400, 'invalid_field');
  });

  it('read receipts: the others get a receipt event when my marker moves; my own devices get read', T, async () => {
    const [a, b, c] = await users(3);
    const room = (await createRoom(srv, a, [b, c])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    const cc = await connect(srv, c);
    await withClients([ca, cb, cc], async () => {
      const m = await ca.sendMsg(room, 'read me');
      const rd = await cb.req({ type: 'read', room, seq: m.seq });
      assert.equal(rd.type, 'read');
      for (const cl of [ca, cc]) {
        const ev = await cl.next((x) => x.type === 'receipt' && x.user === b.id);
        assert.deepEqual(ev, { type: 'receipt', room, user: b.id, seq: m.seq });
      }
      // the marker did not move: no new receipt
      const mark = ca.messages.length;
      await cb.req({ type: 'read', room, seq: m.seq });
      await expectNothing(ca, (x) => x.type === 'receipt', 300, 'receipt', mark);
      assert.equal(cb.ofType('receipt').length, 0, 'no receipt of my own');

      const r = await receipts(c, room);
      assert.equal(of(r, b).read_seq, m.seq);
    });
  });

  it('rooms of more than 100 members: no receipt events, GET receipts is 403; delivered still kept', T, async () => {
    const [a, b] = await users(2);
    const rest = await users(99, 'rb'); // with a and b: 101 members
    const room = (await createRoom(srv, a, [b, ...rest])).id;
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const m = await ca.sendMsg(room, 'big room');
      const mark = ca.messages.length;
      const rd = await cb.req({ type: 'read', room, seq: m.seq });
      assert.equal(rd.type, 'read');
      const d = await cb.req({ type: 'delivered', room, seq: m.seq });
      assert.equal(d.rooms[0].seq, m.seq);
      await expectNothing(ca, (x) => x.type === 'receipt', 400, 'receipt', mark);
      expectError(assert, await api(srv, a).get(`/v1/rooms/${room}/receipts`), 403, 'forbidden');
    });
  });

  it('share_read_receipts off: no receipt events, read_seq hidden from others (not from me); on again restores', T, async () => {
    const [a, b] = await users(2);
    const room = (await createRoom(srv, a, [b])).id;
    let s = await api(srv, b).get('/v1/me/settings');
    assert.equal(s.status, 200, s.text);
    assert.deepEqual(s.body, { settings: { share_read_receipts: true } });
    s = await api(srv, b).patch('/v1/me/settings', { share_read_receipts: false });
    assert.equal(s.status, 200, s.text);
    assert.deepEqual(s.body, { settings: { share_read_receipts: false } });
    expectError(assert, await api(srv, b).patch('/v1/me/settings', { share_read_receipts: 'no' }), 400, 'invalid_field');
    assert.equal((await api(srv, b).get('/v1/me/settings')).body.settings.share_read_receipts, false);

    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    await withClients([ca, cb], async () => {
      const m = await ca.sendMsg(room, 'private');
      const mark = ca.messages.length;
      await cb.req({ type: 'read', room, seq: m.seq });
      await expectNothing(ca, (x) => x.type === 'receipt', 400, 'receipt', mark);
      assert.equal(of(await receipts(a, room), b).read_seq, null);
      assert.equal(of(await receipts(b, room), b).read_seq, m.seq);

      await api(srv, b).patch('/v1/me/settings', { share_read_receipts: true });
      const m2 = await ca.sendMsg(room, 'public');
      await cb.req({ type: 'read', room, seq: m2.seq });
      const ev = await ca.next((x) => x.type === 'receipt' && x.user === b.id);
      assert.equal(ev.seq, m2.seq);
      assert.equal(of(await receipts(a, room), b).read_seq, m2.seq);
    });
  });
});
