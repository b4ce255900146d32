'use strict';
// Accounts and tokens over REST: register, login, /v1/me, /v1/users/{id}, refresh rotation and
// reuse detection, logout (which ends the session's access tokens too), and the JWT verifier
// (expired, alg none, HS512, unknown kid, tampered).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { request, get, post, uniqueName, registerUser, expectError } = require('./lib/http');
const jwt = require('./lib/jwt');

const T = { timeout: 20000 };
const KEY = jwt.makeKey('k1');

describe('auth', () => {
  let srv;
  before(async () => {
    // Known signing key so the tests can forge tokens; cheap Argon2id (see lib/server.js).
    srv = await startServer({ args: { 'jwt-keys': KEY.spec } });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  describe('register', () => {
    it('returns 201 with user, token pair, Bearer and expires_in', T, async () => {
      const name = uniqueName('reg');
      const r = await post(srv, '/v1/auth/register', { username: name, password: 'password123' });
      assert.equal(r.status, 201, r.text);
      assert.match(r.headers['content-type'], /^application\/json/);
      const b = r.body;
      assert.equal(typeof b.user.id, 'string');
      assert.ok(b.user.id.length > 0);
      assert.equal(b.user.username, name);
      assert.equal(b.token_type, 'Bearer');
      assert.equal(b.expires_in, 900);
      assert.equal(typeof b.access_token, 'string');
      assert.match(b.access_token, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
      assert.match(b.refresh_token, /^[A-Za-z0-9_-]{43}$/);
      const { header, payload } = jwt.decode(b.access_token);
      assert.equal(header.alg, 'HS256');
      assert.equal(header.kid, 'k1');
      assert.equal(`u_${payload.sub}`, b.user.id);
      assert.equal(payload.exp - payload.iat, 900);
    });

    it('concurrent registrations of one username: exactly one 201, the rest 409', T, async () => {
      const name = uniqueName('race');
      const rs = await Promise.all(
        Array.from({ length: 6 }, () => post(srv, '/v1/auth/register', { username: name, password: 'password123' })),
      );
      const statuses = rs.map((r) => r.status).sort();
      assert.deepEqual(statuses, [201, 409, 409, 409, 409, 409], rs.map((r) => r.text).join('\n'));
      for (const r of rs.filter((x) => x.status === 409)) expectError(assert, r, 409, 'username_taken');
    });

    it('gives each user a distinct id', T, async () => {
      const a = await registerUser(srv);
      const b = await registerUser(srv);
      assert.notEqual(a.user.id, b.user.id);
    });

    it('refuses a duplicate username with 409 username_taken', T, async () => {
      const u = await registerUser(srv);
      const r = await post(srv, '/v1/auth/register', { username: u.username, password: 'other password' });
      expectError(assert, r, 409, 'username_taken');
    });

    for (const [what, name] of [
      ['too short', 'ab'],
      ['uppercase', 'Alice'],
      ['a space', 'al ice'],
      ['a bad character', 'al!ce'],
      ['a leading underscore', '_alice'],
      ['non-ASCII', 'alicé'],
      ['33 characters', 'a'.repeat(33)],
      ['empty', ''],
    ]) {
      it(`refuses a username with ${what} with 400 invalid_username`, T, async () => {
        const r = await post(srv, '/v1/auth/register', { username: name, password: 'password123' });
        expectError(assert, r, 400, 'invalid_username');
      });
    }

    it('accepts the edge cases of the username rule (3 and 32 chars, _ . -)', T, async () => {
      const suffix = String(Math.floor(Math.random() * 1e6)).padStart(6, '0');
      await registerUser(srv, `a${suffix.slice(0, 2)}`.slice(0, 3));
      const long = `z${suffix}`.padEnd(32, 'x');
      assert.equal(long.length, 32);
      await registerUser(srv, long);
      await registerUser(srv, `9a_b.c-d${suffix}`);
    });

    it('refuses a 7-byte password with 400 invalid_password', T, async () => {
      const r = await post(srv, '/v1/auth/register', { username: uniqueName(), password: '1234567' });
      expectError(assert, r, 400, 'invalid_password');
    });

    it('counts the password length in bytes, not characters', T, async () => {
      // 3 characters, 9 bytes: long enough.
      const ok = await post(srv, '/v1/auth/register', { username: uniqueName(), password: '\u20ac\u20ac\u20ac' });
      assert.equal(ok.status, 201, ok.text);
      // 129 characters, 258 bytes: too long.
      const long = await post(srv, '/v1/auth/register', { username: uniqueName(), password: '\u00e9'.repeat(129) });
      expectError(assert, long, 400, 'invalid_password');
      // Exactly 256 bytes is allowed, and the same password logs in.
      const name = uniqueName();
      const pw = '\u00e9'.repeat(128);
      const edge = await post(srv, '/v1/auth/register', { username: name, password: pw });
      assert.equal(edge.status, 201, edge.text);
      const login = await post(srv, '/v1/auth/login', { username: name, password: pw });
      assert.equal(login.status, 200, login.text);
    });

    it('refuses a 257-byte password with 400 invalid_password', T, async () => {
      const r = await post(srv, '/v1/auth/register', { username: uniqueName(), password: 'p'.repeat(257) });
      expectError(assert, r, 400, 'invalid_password');
    });

    for (const [what, body] of [
      ['no username', { password: 'password123' }],
      ['no password', { username: 'someone' }],
      ['an empty object', {}],
      ['a numeric username', { username: 12345, password: 'password123' }],
      ['a null password', { username: 'someone', password: null }],
    ]) {
      it(`refuses ${what} with 400 invalid_field`, T, async () => {
        const r = await post(srv, '/v1/auth/register', body);
        expectError(assert, r, 400, 'invalid_field');
      });
    }

    for (const [what, body] of [
      ['a non-JSON body', 'username=alice&password=x'],
      ['truncated JSON', '{"username":"alice",'],
      ['a JSON array', '["alice","password123"]'],
      ['a JSON string', '"alice"'],
      ['an empty body', ''],
      ['duplicate keys', '{"username":"dupkeys","password":"password123","password":"password456"}'],
    ]) {
      it(`refuses ${what} with 400 invalid_json`, T, async () => {
        const r = await request(srv, 'POST', '/v1/auth/register', {
          body,
          headers: { 'Content-Type': 'application/json' },
        });
        expectError(assert, r, 400, 'invalid_json');
      });
    }

    it('refuses a body without Content-Type with 415', T, async () => {
      const r = await request(srv, 'POST', '/v1/auth/register', {
        body: JSON.stringify({ username: uniqueName(), password: 'password123' }),
      });
      expectError(assert, r, 415, 'unsupported_media_type');
    });

    it('refuses Content-Type text/plain with 415', T, async () => {
      const r = await request(srv, 'POST', '/v1/auth/register', {
        body: JSON.stringify({ username: uniqueName(), password: 'password123' }),
        headers: { 'Content-Type': 'text/plain' },
      });
      expectError(assert, r, 415, 'unsupported_media_type');
    });

    it('accepts Content-Type with a charset parameter', T, async () => {
      const r = await request(srv, 'POST', '/v1/auth/register', {
        body: JSON.stringify({ username: uniqueName(), password: 'password123' }),
        headers: { 'Content-Type': 'application/json; charset=utf-8' },
      });
      assert.equal(r.status, 201, r.text);
    });
  });

  describe('login', () => {
    let user;
    before(async () => {
      user = await registerUser(srv);
    });

    it('returns 200 with the same shape and a new session', T, async () => {
      const r = await post(srv, '/v1/auth/login', { username: user.username, password: user.password });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.user, user.user);
      assert.equal(r.body.token_type, 'Bearer');
      assert.equal(r.body.expires_in, 900);
      assert.match(r.body.refresh_token, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(r.body.refresh_token, user.refresh_token);
      assert.notEqual(jwt.decode(r.body.access_token).payload.sid, jwt.decode(user.access_token).payload.sid);
      const me = await get(srv, '/v1/me', { token: r.body.access_token });
      assert.equal(me.status, 200, me.text);
      assert.equal(me.body.user.id, user.user.id);
    });

    it('answers a wrong password and an unknown user identically: 401 invalid_credentials', T, async () => {
      const wrong = await post(srv, '/v1/auth/login', { username: user.username, password: 'wrong password' });
      const unknown = await post(srv, '/v1/auth/login', { username: uniqueName('ghost'), password: 'wrong password' });
      expectError(assert, wrong, 401, 'invalid_credentials');
      expectError(assert, unknown, 401, 'invalid_credentials');
      assert.equal(wrong.text, unknown.text, 'bodies must not reveal whether the user exists');
    });

    it('refuses missing fields with 400 invalid_field', T, async () => {
      const r = await post(srv, '/v1/auth/login', { username: user.username });
      expectError(assert, r, 400, 'invalid_field');
    });
  });

  describe('users', () => {
    let user;
    before(async () => {
      user = await registerUser(srv);
    });

    it('GET /v1/me with the access token returns the user with created_at', T, async () => {
      const r = await get(srv, '/v1/me', { token: user.access_token });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.user.id, user.user.id);
      assert.equal(r.body.user.username, user.username);
      assert.equal(typeof r.body.user.created_at, 'number');
      const now = Date.now();
      // created_at is a timestamp near now, in seconds or milliseconds.
      const ms = r.body.user.created_at > 1e12 ? r.body.user.created_at : r.body.user.created_at * 1000;
      assert.ok(Math.abs(now - ms) < 10 * 60 * 1000, `created_at ${r.body.user.created_at} not recent`);
    });

    it('GET /v1/me without a token is 401 unauthorized with WWW-Authenticate', T, async () => {
      const r = await get(srv, '/v1/me');
      expectError(assert, r, 401, 'unauthorized');
      assert.match(r.headers['www-authenticate'] || '', /^Bearer/);
    });

    for (const [what, header] of [
      ['a garbage token', 'Bearer not-a-token'],
      ['an empty bearer', 'Bearer '],
      ['a Basic scheme', 'Basic dXNlcjpwYXNz'],
      ['a two-part token', 'Bearer aaaa.bbbb'],
    ]) {
      it(`GET /v1/me with ${what} is 401 unauthorized`, T, async () => {
        const r = await get(srv, '/v1/me', { headers: { Authorization: header } });
        expectError(assert, r, 401, 'unauthorized');
      });
    }

    it('GET /v1/me with a tampered payload (other sub, old signature) is 401', T, async () => {
      const other = await registerUser(srv);
      const [h, , s] = user.access_token.split('.');
      const p = jwt.decode(user.access_token).payload;
      p.sub = jwt.decode(other.access_token).payload.sub;
      const forged = `${h}.${jwt.b64url(JSON.stringify(p))}.${s}`;
      const r = await get(srv, '/v1/me', { token: forged });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('GET /v1/me with one flipped signature character is 401', T, async () => {
      const t = user.access_token;
      const i = t.length - 5;
      const flipped = t.slice(0, i) + (t[i] === 'A' ? 'B' : 'A') + t.slice(i + 1);
      const r = await get(srv, '/v1/me', { token: flipped });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('GET /v1/users/{id} finds another user', T, async () => {
      const other = await registerUser(srv);
      const r = await get(srv, `/v1/users/${other.user.id}`, { token: user.access_token });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.user.id, other.user.id);
      assert.equal(r.body.user.username, other.username);
      assert.equal(typeof r.body.user.created_at, 'number');
      assert.equal(r.body.user.password, undefined);
      assert.equal(r.body.user.pwhash, undefined);
    });

    for (const id of ['u_99999999', 'u_0', 'nonsense', 'u_-1', 'u_1x']) {
      it(`GET /v1/users/${id} is 404 not_found`, T, async () => {
        const r = await get(srv, `/v1/users/${id}`, { token: user.access_token });
        expectError(assert, r, 404, 'not_found');
      });
    }

    it('GET /v1/users/{id} needs a token', T, async () => {
      const r = await get(srv, `/v1/users/${user.user.id}`);
      expectError(assert, r, 401, 'unauthorized');
    });
  });

  describe('refresh and logout', () => {
    it('rotates: a new pair that differs, and the old refresh token is spent', T, async () => {
      const u = await registerUser(srv);
      const r = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      assert.equal(r.status, 200, r.text);
      assert.deepEqual(r.body.user, u.user);
      assert.equal(r.body.token_type, 'Bearer');
      assert.match(r.body.refresh_token, /^[A-Za-z0-9_-]{43}$/);
      assert.notEqual(r.body.refresh_token, u.refresh_token);
      // The access token is a deterministic JWT (sub, iat, exp, sid): issued in the same second
      // for the same session it may be byte-identical, so only its validity is checked.
      // The new access token belongs to the same session.
      assert.equal(jwt.decode(r.body.access_token).payload.sid, jwt.decode(u.access_token).payload.sid);
      const me = await get(srv, '/v1/me', { token: r.body.access_token });
      assert.equal(me.status, 200);
      const again = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      expectError(assert, again, 401, 'invalid_refresh_token');
    });

    it('detects reuse: A->B, reuse A is 401, then B is revoked too', T, async () => {
      const u = await registerUser(srv);
      const a = u.refresh_token;
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: a });
      assert.equal(r1.status, 200, r1.text);
      const b = r1.body.refresh_token;
      const reuse = await post(srv, '/v1/auth/refresh', { refresh_token: a });
      expectError(assert, reuse, 401, 'invalid_refresh_token');
      const rb = await post(srv, '/v1/auth/refresh', { refresh_token: b });
      expectError(assert, rb, 401, 'invalid_refresh_token');
    });

    it('reuse revokes only that session, not the user\'s other logins', T, async () => {
      const u = await registerUser(srv);
      const other = await post(srv, '/v1/auth/login', { username: u.username, password: u.password });
      assert.equal(other.status, 200);
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      assert.equal(r1.status, 200);
      await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token }); // theft signal
      const r2 = await post(srv, '/v1/auth/refresh', { refresh_token: other.body.refresh_token });
      assert.equal(r2.status, 200, r2.text);
    });

    it('two concurrent refreshes with one token never both succeed', T, async () => {
      const u = await registerUser(srv);
      const rs = await Promise.all([
        post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token }),
        post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token }),
      ]);
      const ok = rs.filter((r) => r.status === 200);
      assert.ok(ok.length <= 1, 'one refresh token was rotated twice');
      for (const r of rs.filter((x) => x.status !== 200)) expectError(assert, r, 401, 'invalid_refresh_token');
    });

    it('a chain of rotations keeps working', T, async () => {
      const u = await registerUser(srv);
      let tok = u.refresh_token;
      for (let i = 0; i < 5; i++) {
        const r = await post(srv, '/v1/auth/refresh', { refresh_token: tok });
        assert.equal(r.status, 200, `rotation ${i}: ${r.text}`);
        tok = r.body.refresh_token;
      }
    });

    it('refuses an unknown or malformed refresh token with 401 invalid_refresh_token', T, async () => {
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: 'A'.repeat(43) });
      expectError(assert, r1, 401, 'invalid_refresh_token');
      const r2 = await post(srv, '/v1/auth/refresh', { refresh_token: 'short' });
      expectError(assert, r2, 401, 'invalid_refresh_token');
      const r3 = await post(srv, '/v1/auth/refresh', {});
      expectError(assert, r3, 400, 'invalid_field');
    });

    it('logout is 204, then that refresh token is 401', T, async () => {
      const u = await registerUser(srv);
      const r = await post(srv, '/v1/auth/logout', { refresh_token: u.refresh_token });
      assert.equal(r.status, 204, r.text);
      assert.equal(r.text, '');
      const after = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      expectError(assert, after, 401, 'invalid_refresh_token');
    });

    it("logout ends the session's access tokens at once; the user's other sessions go on", T, async () => {
      const u = await registerUser(srv);
      const other = await post(srv, '/v1/auth/login', { username: u.username, password: u.password });
      assert.equal(other.status, 200, other.text);
      assert.equal((await get(srv, '/v1/me', { token: u.access_token })).status, 200);
      const out = await post(srv, '/v1/auth/logout', { refresh_token: u.refresh_token });
      assert.equal(out.status, 204, out.text);
      expectError(assert, await get(srv, '/v1/me', { token: u.access_token }), 401, 'unauthorized');
      expectError(assert, await get(srv, `/v1/users/${u.user.id}`, { token: u.access_token }), 401, 'unauthorized');
      const me = await get(srv, '/v1/me', { token: other.body.access_token });
      assert.equal(me.status, 200, me.text);
    });

    it('logout after a rotation ends the access tokens of both generations', T, async () => {
      const u = await registerUser(srv);
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      assert.equal(r1.status, 200, r1.text);
      const out = await post(srv, '/v1/auth/logout', { refresh_token: r1.body.refresh_token });
      assert.equal(out.status, 204, out.text);
      for (const t of [u.access_token, r1.body.access_token])
        expectError(assert, await get(srv, '/v1/me', { token: t }), 401, 'unauthorized');
    });

    it("a reused refresh token ends the family's access tokens too (theft)", T, async () => {
      const u = await registerUser(srv);
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      assert.equal(r1.status, 200, r1.text);
      assert.equal((await get(srv, '/v1/me', { token: r1.body.access_token })).status, 200);
      const reuse = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      expectError(assert, reuse, 401, 'invalid_refresh_token');
      expectError(assert, await get(srv, '/v1/me', { token: r1.body.access_token }), 401, 'unauthorized');
    });

    it('logout revokes the whole session, including a rotated token', T, async () => {
      const u = await registerUser(srv);
      const r1 = await post(srv, '/v1/auth/refresh', { refresh_token: u.refresh_token });
      assert.equal(r1.status, 200);
      const out = await post(srv, '/v1/auth/logout', { refresh_token: r1.body.refresh_token });
      assert.equal(out.status, 204, out.text);
      const after = await post(srv, '/v1/auth/refresh', { refresh_token: r1.body.refresh_token });
      expectError(assert, after, 401, 'invalid_refresh_token');
    });
  });

  describe('access token verification (forged with the known key)', () => {
    let user;
    let sub;
    before(async () => {
      user = await registerUser(srv);
      sub = jwt.decode(user.access_token).payload.sub;
    });
    const hdr = (extra = {}) => ({ alg: 'HS256', typ: 'JWT', kid: 'k1', ...extra });

    it('a token forged with the right key and HS256 is accepted (control)', T, async () => {
      const tok = jwt.forge(hdr(), jwt.claims(sub), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      assert.equal(r.status, 200, r.text);
      assert.equal(r.body.user.id, user.user.id);
    });

    it('exp more than 60 s in the past is 401 token_expired', T, async () => {
      const now = Math.floor(Date.now() / 1000);
      const tok = jwt.forge(hdr(), jwt.claims(sub, { iat: now - 1000, exp: now - 90 }), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'token_expired');
      assert.match(r.headers['www-authenticate'] || '', /^Bearer/);
    });

    it('exp 10 s in the past is still accepted (30 s leeway)', T, async () => {
      const now = Math.floor(Date.now() / 1000);
      const tok = jwt.forge(hdr(), jwt.claims(sub, { iat: now - 100, exp: now - 10 }), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      assert.equal(r.status, 200, r.text);
    });

    it('alg "none" with an empty signature is 401 unauthorized', T, async () => {
      const tok = jwt.forge({ alg: 'none', typ: 'JWT', kid: 'k1' }, jwt.claims(sub), KEY.hex);
      assert.ok(tok.endsWith('.'));
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('alg "none" carrying a valid HS256 signature is still 401', T, async () => {
      const tok = jwt.forge({ alg: 'none', typ: 'JWT', kid: 'k1' }, jwt.claims(sub), KEY.hex, { alg: 'HS256' });
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('HS512 signed with the right key is 401 unauthorized', T, async () => {
      const tok = jwt.forge(hdr({ alg: 'HS512' }), jwt.claims(sub), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('an unknown kid is 401 unauthorized', T, async () => {
      const tok = jwt.forge(hdr({ kid: 'k2' }), jwt.claims(sub), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('a token signed with another key is 401 unauthorized', T, async () => {
      const tok = jwt.forge(hdr(), jwt.claims(sub), jwt.makeKey().hex);
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('iat far in the future is 401 unauthorized', T, async () => {
      const now = Math.floor(Date.now() / 1000);
      const tok = jwt.forge(hdr(), jwt.claims(sub, { iat: now + 3600, exp: now + 7200 }), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      expectError(assert, r, 401, 'unauthorized');
    });

    it('a valid token for a user that does not exist is 404 on /v1/me, not 200', T, async () => {
      const tok = jwt.forge(hdr(), jwt.claims(987654321), KEY.hex);
      const r = await get(srv, '/v1/me', { token: tok });
      assert.ok(r.status === 404 || r.status === 401, `got ${r.status} ${r.text}`);
    });
  });
});
