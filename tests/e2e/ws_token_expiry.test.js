'use strict';
// An open WebSocket lives as long as its access token: at the token's expiry (plus
// --token-leeway, 0 here) it is closed with 4002 "token expired", unless the client sent
// {"type":"refresh","access_token":...} with a newer valid token of the same user before then
// (answered {"type":"refreshed","exp":...}). A token of another user, a bad, expired or revoked
// one is refused and the socket keeps its old expiry. After a refresh, the socket belongs to the
// new token's session: ending that session closes it, ending the old one does not.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { post, registerUser } = require('./lib/http');
const { wsConnectHello } = require('./lib/ws');
const jwt = require('./lib/jwt');

const T = { timeout: 30000 };
const KEY = jwt.makeKey('tk');
const nowS = () => Math.floor(Date.now() / 1000);
const num = (id) => Number(id.slice(2)); // "u_12" -> 12
const token = (user, exp, sid = 0) =>
  jwt.forge({ alg: 'HS256', typ: 'JWT', kid: KEY.kid }, jwt.claims(num(user.user.id), { iat: nowS() - 1, exp, sid }), KEY.hex);

async function request(client, msg) {
  client.send(msg);
  return client.next((m) => m.id === msg.id && m.type !== 'message', 5000);
}

/** Wait for the close and check it came with 4002, not before the token's expiry. */
async function expectExpiredClose(client, exp) {
  const info = await client.closed(15000);
  assert.equal(info.code, 4002, `close ${info.code} ${info.reason}`);
  assert.equal(info.reason, 'token expired');
  assert.ok(Date.now() >= exp * 1000, `closed ${exp * 1000 - Date.now()} ms before the token expired`);
}

describe('WebSocket access-token expiry and refresh', () => {
  let srv;
  let alice;
  let bob;
  before(async () => {
    srv = await startServer({ args: { 'jwt-keys': KEY.spec, 'access-ttl': 2, 'token-leeway': 0 } });
    alice = await registerUser(srv);
    bob = await registerUser(srv);
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('a socket opened with a login token (--access-ttl 2) closes 4002 when it expires', T, async () => {
    const exp = jwt.decode(alice.access_token).payload.exp;
    const { client } = await wsConnectHello(srv.wsUrl, { token: alice.access_token });
    await expectExpiredClose(client, exp);
  });

  it('refresh with a newer token keeps the socket open past the old expiry, then it expires at the new one', T, async () => {
    const exp1 = nowS() + 2;
    const { client } = await wsConnectHello(srv.wsUrl, { token: token(alice, exp1) });
    try {
      const exp2 = nowS() + 6;
      const r = await request(client, { type: 'refresh', id: 'r1', access_token: token(alice, exp2) });
      assert.deepEqual(r, { type: 'refreshed', id: 'r1', exp: exp2 });
      // Well past the first token's expiry (and the tick's second): still open and answering.
      while (Date.now() < exp1 * 1000 + 2500) await sleep(200);
      const pong = await request(client, { type: 'ping', id: 'p1' });
      assert.equal(pong.type, 'pong');
      assert.equal(client.closeInfo, null);
      await expectExpiredClose(client, exp2);
    } finally {
      client.terminate();
    }
  });

  it("another user's token is forbidden, a bad, expired or revoked one unauthorized: the old expiry stays", T, async () => {
    const exp = nowS() + 3;
    const { client } = await wsConnectHello(srv.wsUrl, { token: token(alice, exp) });
    try {
      let r = await request(client, { type: 'refresh', id: 1, access_token: token(bob, nowS() + 600) });
      assert.equal(r.type, 'error');
      assert.equal(r.code, 'forbidden');
      assert.equal(r.id, 1);
      r = await request(client, { type: 'refresh', id: 2, access_token: 'not.a.token' });
      assert.equal(r.code, 'unauthorized');
      r = await request(client, { type: 'refresh', id: 3, access_token: token(alice, nowS() - 5) });
      assert.equal(r.code, 'unauthorized');
      const bobNow = await post(srv, '/v1/auth/login', { username: bob.username, password: bob.password });
      r = await request(client, { type: 'refresh', id: 4, access_token: bobNow.body.access_token });
      assert.equal(r.code, 'forbidden');
      r = await request(client, { type: 'refresh', id: 5 });
      assert.equal(r.code, 'invalid_field');
      // A token of a session that ended (logout) is refused like a bad one.
      const s2 = await post(srv, '/v1/auth/login', { username: alice.username, password: alice.password });
      assert.equal(s2.status, 200, s2.text);
      assert.equal((await post(srv, '/v1/auth/logout', { refresh_token: s2.body.refresh_token })).status, 204);
      r = await request(client, { type: 'refresh', id: 6, access_token: s2.body.access_token });
      assert.equal(r.code, 'unauthorized');
      await expectExpiredClose(client, exp);
    } finally {
      client.terminate();
    }
  });

  it("after a refresh the socket follows the new token's session (logout closes it 4001)", T, async () => {
    const s1 = await post(srv, '/v1/auth/login', { username: alice.username, password: alice.password });
    const sid1 = jwt.decode(s1.body.access_token).payload.sid;
    const { client } = await wsConnectHello(srv.wsUrl, { token: token(alice, nowS() + 600, sid1) });
    try {
      const s2 = await post(srv, '/v1/auth/login', { username: alice.username, password: alice.password });
      const sid2 = jwt.decode(s2.body.access_token).payload.sid;
      const r = await request(client, { type: 'refresh', id: 'x', access_token: token(alice, nowS() + 600, sid2) });
      assert.equal(r.type, 'refreshed', JSON.stringify(r));
      // Ending the old session leaves the socket alone...
      assert.equal((await post(srv, '/v1/auth/logout', { refresh_token: s1.body.refresh_token })).status, 204);
      assert.equal((await request(client, { type: 'ping', id: 'p' })).type, 'pong');
      // ...ending the new one closes it.
      assert.equal((await post(srv, '/v1/auth/logout', { refresh_token: s2.body.refresh_token })).status, 204);
      const info = await client.closed(5000);
      assert.equal(info.code, 4001);
    } finally {
      client.terminate();
    }
  });
});
