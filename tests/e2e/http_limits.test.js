'use strict';
// HTTP/1.1 limits and framing, driven over raw sockets: malformed requests, header and URL
// limits, body limit, slowloris timeout, 404/405, keep-alive and pipelining.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { rawConnect, parseResponses, get, request, registerUser, expectError } = require('./lib/http');

const T = { timeout: 20000 };

const LIMITS = {
  'http-max-header': 4096,
  'http-max-headers': 20,
  'http-max-body': 1024,
  'http-timeout': 2,
  'http-keepalive': 3,
};

/** Write `text`, wait until `n` responses arrived (or the socket closed). */
async function exchange(srv, text, n = 1, timeoutMs = 5000) {
  const c = await rawConnect(srv.port);
  c.write(text);
  await c.waitFor((b) => parseResponses(b).length >= n, timeoutMs);
  return { c, responses: parseResponses(c.data) };
}

function assertErrorResponse(r, status, code) {
  assert.ok(r, `no response (expected ${status})`);
  assert.equal(r.status, status, r.body);
  assert.match(r.headers['content-type'] || '', /^application\/json/);
  assert.ok(r.json && r.json.error, `error body expected: ${r.body}`);
  assert.equal(r.json.error.code, code);
  assert.equal(typeof r.json.error.message, 'string');
}

async function assertClosedAfter(c, r) {
  assert.equal((r.headers.connection || '').toLowerCase(), 'close', 'response must say Connection: close');
  assert.ok(await c.waitClose(5000), 'server did not close the connection');
}

describe('HTTP limits', () => {
  let srv;
  before(async () => {
    srv = await startServer({ args: LIMITS });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('a malformed request line is 400 bad_request and the connection is closed', T, async () => {
    const { c, responses } = await exchange(srv, 'THIS IS NOT HTTP\r\n\r\n');
    assertErrorResponse(responses[0], 400, 'bad_request');
    await assertClosedAfter(c, responses[0]);
  });

  it('binary garbage is 400 and closed', T, async () => {
    const { c, responses } = await exchange(srv, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x00, 0x0d, 0x0a, 0x0d, 0x0a]));
    assertErrorResponse(responses[0], 400, 'bad_request');
    await assertClosedAfter(c, responses[0]);
  });

  it('a non-numeric Content-Length is 400 and closed', T, async () => {
    const { c, responses } = await exchange(srv, 'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n');
    assertErrorResponse(responses[0], 400, 'bad_request');
    await assertClosedAfter(c, responses[0]);
  });

  it('Content-Length together with Transfer-Encoding (smuggling) is 400 and closed', T, async () => {
    const { c, responses } = await exchange(
      srv,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 4\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    );
    assertErrorResponse(responses[0], 400, 'bad_request');
    await assertClosedAfter(c, responses[0]);
  });

  it('a header name with a space or a separator in it is 400 and closed', T, async () => {
    // "Content Length" must not pass as some other header, nor be folded into one.
    for (const name of ['Content Length', 'X(y)', 'Bad"Name', 'A\tB']) {
      const { c, responses } = await exchange(srv, `GET /healthz HTTP/1.1\r\nHost: x\r\n${name}: 1\r\n\r\n`);
      assertErrorResponse(responses[0], 400, 'bad_request');
      await assertClosedAfter(c, responses[0]);
    }
    // Every token character is still a valid name.
    const { responses } = await exchange(srv, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-a.b_c~!#$%&'*+^`|: 1\r\nConnection: close\r\n\r\n");
    assert.equal(responses[0].status, 200);
  });

  it('two different Content-Length headers are 400 and closed', T, async () => {
    const { c, responses } = await exchange(
      srv,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n{}x',
    );
    assertErrorResponse(responses[0], 400, 'bad_request');
    await assertClosedAfter(c, responses[0]);
  });

  it('nothing pipelined behind a request that was refused with 400 is executed', T, async () => {
    const { c, responses } = await exchange(srv, 'BROKEN\r\n\r\nGET /healthz HTTP/1.1\r\nHost: x\r\n\r\n', 2, 1500);
    assert.equal(responses.length, 1, `expected only the 400, got ${responses.map((r) => r.status)}`);
    assert.equal(responses[0].status, 400);
    c.destroy();
  });

  it('the header count limit (--http-max-headers 20) is enforced: 20 pass, 21 is 431', T, async () => {
    const hdrs = (n) => Array.from({ length: n }, (_, i) => `X-H${i}: v\r\n`).join('');
    // 20 headers in total (Host + 19) is allowed.
    const ok = await exchange(srv, `GET /healthz HTTP/1.1\r\nHost: x\r\n${hdrs(19)}\r\n`);
    assert.equal(ok.responses[0]?.status, 200);
    ok.c.destroy();
    const { c, responses } = await exchange(srv, `GET /healthz HTTP/1.1\r\nHost: x\r\n${hdrs(20)}\r\n`);
    assertErrorResponse(responses[0], 431, 'headers_too_large');
    await assertClosedAfter(c, responses[0]);
  });

  it('a header over --http-max-header (4096) is 431 and closed', T, async () => {
    const { c, responses } = await exchange(srv, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(5000)}\r\n\r\n`);
    assertErrorResponse(responses[0], 431, 'headers_too_large');
    await assertClosedAfter(c, responses[0]);
  });

  it('headers just under --http-max-header are accepted', T, async () => {
    const { c, responses } = await exchange(srv, `GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(3500)}\r\n\r\n`);
    assert.equal(responses[0]?.status, 200);
    c.destroy();
  });

  it('an over-long URL is 414 and closed', T, async () => {
    const { c, responses } = await exchange(srv, `GET /${'a'.repeat(5000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    assertErrorResponse(responses[0], 414, 'headers_too_large');
    await assertClosedAfter(c, responses[0]);
  });

  it('a declared body over --http-max-body (1024) is 413 and closed, without reading it', T, async () => {
    const { c, responses } = await exchange(
      srv,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2000\r\n\r\n',
    );
    assertErrorResponse(responses[0], 413, 'payload_too_large');
    await assertClosedAfter(c, responses[0]);
  });

  it('a chunked body that grows over --http-max-body is 413 and closed', T, async () => {
    const chunk = 'x'.repeat(600);
    const { c, responses } = await exchange(
      srv,
      'POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n' +
        `258\r\n${chunk}\r\n258\r\n${chunk}\r\n0\r\n\r\n`,
    );
    assertErrorResponse(responses[0], 413, 'payload_too_large');
    await assertClosedAfter(c, responses[0]);
  });

  it('a body of exactly --http-max-body bytes is accepted', T, async () => {
    const base = JSON.stringify({ username: 'NotValid', password: 'password123', pad: '' });
    const body = JSON.stringify({ username: 'NotValid', password: 'password123', pad: 'p'.repeat(1024 - base.length) });
    assert.equal(Buffer.byteLength(body), 1024);
    const r = await request(srv, 'POST', '/v1/auth/register', { body, headers: { 'Content-Type': 'application/json' } });
    expectError(assert, r, 400, 'invalid_username'); // got past the size limit to validation
  });

  it('slowloris: half a request, then silence past --http-timeout (2 s) -> 408 and closed', T, async () => {
    const c = await rawConnect(srv.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n');
    await sleep(500);
    c.write('X-Slow: 1\r\n'); // trickling bytes does not extend the deadline
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1, 6000), 'no 408 within 6 s');
    const r = parseResponses(c.data)[0];
    assertErrorResponse(r, 408, 'request_timeout');
    await assertClosedAfter(c, r);
  });

  it('a connection that never sends anything is closed after --http-timeout', T, async () => {
    const c = await rawConnect(srv.port);
    assert.ok(await c.waitClose(6000), 'silent connection not closed within 6 s');
    const rs = parseResponses(c.data);
    if (rs.length) assert.equal(rs[0].status, 408);
  });

  it('an idle keep-alive connection is closed after --http-keepalive (3 s)', T, async () => {
    const { c, responses } = await exchange(srv, 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(responses[0]?.status, 200);
    assert.equal((responses[0].headers.connection || '').toLowerCase(), 'keep-alive');
    assert.ok(await c.waitClose(7000), 'idle keep-alive connection not closed within 7 s');
    assert.equal(parseResponses(c.data).length, 1, 'no extra response on an idle keep-alive close');
  });

  it('an unknown path is 404 not_found JSON, and the connection stays usable', T, async () => {
    const c = await rawConnect(srv.port);
    c.write('GET /no/such/thing HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1));
    const r = parseResponses(c.data)[0];
    assertErrorResponse(r, 404, 'not_found');
    assert.equal((r.headers.connection || '').toLowerCase(), 'keep-alive');
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 2));
    assert.equal(parseResponses(c.data)[1].status, 200);
    c.destroy();
  });

  for (const [method, path] of [
    ['DELETE', '/healthz'],
    ['POST', '/metrics'],
    ['GET', '/v1/auth/login'],
    ['PUT', '/v1/me'],
    ['POST', '/v1/users/u_1'],
  ]) {
    it(`${method} ${path} is 405 method_not_allowed`, T, async () => {
      const r = await request(srv, method, path, { body: method === 'GET' ? undefined : '' });
      expectError(assert, r, 405, 'method_not_allowed');
    });
  }

  it('paths that only resemble a route (empty id, extra segment, trailing slash) are 404', T, async () => {
    const u = await registerUser(srv);
    for (const p of ['/v1/users/', '/v1/users/u_1/extra', '/v1', '/v1/me/']) {
      const r = await get(srv, p, { token: u.access_token });
      expectError(assert, r, 404, 'not_found');
    }
  });

  it('keep-alive: two requests one after the other on one socket are both answered', T, async () => {
    const c = await rawConnect(srv.port);
    c.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1));
    c.write('GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 2));
    const [a, b] = parseResponses(c.data);
    assert.equal(a.status, 200);
    assert.deepEqual(a.json, { status: 'ok' });
    assert.equal(b.status, 200);
    assert.deepEqual(b.json, { status: 'ready' });
    assert.equal(c.closed, false);
    c.destroy();
  });

  it('pipelining: requests written at once are answered in order', T, async () => {
    const { c, responses } = await exchange(
      srv,
      'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /nope HTTP/1.1\r\nHost: x\r\n\r\n' +
        'GET /readyz HTTP/1.1\r\nHost: x\r\n\r\n',
      3,
    );
    assert.deepEqual(
      responses.map((r) => r.status),
      [200, 404, 200],
    );
    assert.deepEqual(responses[0].json, { status: 'ok' });
    assert.deepEqual(responses[2].json, { status: 'ready' });
    c.destroy();
  });

  it('pipelining behind a slow request (login hashes a password) keeps the order', T, async () => {
    const u = await registerUser(srv);
    const body = JSON.stringify({ username: u.username, password: u.password });
    const { c, responses } = await exchange(
      srv,
      `POST /v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}` +
        'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n' +
        `GET /v1/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${u.access_token}\r\n\r\n`,
      3,
    );
    assert.equal(responses.length, 3, `got ${responses.length} responses`);
    assert.equal(responses[0].status, 200);
    assert.equal(responses[0].json.user.id, u.user.id);
    assert.equal(responses[1].status, 200);
    assert.deepEqual(responses[1].json, { status: 'ok' });
    assert.equal(responses[2].status, 200);
    assert.equal(responses[2].json.user.username, u.username);
    c.destroy();
  });

  it('a request split into many small writes is assembled', T, async () => {
    const c = await rawConnect(srv.port);
    const req = 'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n';
    for (const ch of req) {
      c.write(ch);
      await sleep(5);
    }
    assert.ok(await c.waitFor((b) => parseResponses(b).length >= 1));
    assert.equal(parseResponses(c.data)[0].status, 200);
    c.destroy();
  });

  it('Connection: close is honoured', T, async () => {
    const { c, responses } = await exchange(srv, 'GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    assert.equal(responses[0]?.status, 200);
    await assertClosedAfter(c, responses[0]);
  });

  it('HTTP/1.0 without keep-alive gets one response and a close', T, async () => {
    const { c, responses } = await exchange(srv, 'GET /healthz HTTP/1.0\r\n\r\n');
    assert.equal(responses[0]?.status, 200);
    await assertClosedAfter(c, responses[0]);
  });

  it('the server is healthy after all of the above', T, async () => {
    assert.equal((await get(srv, '/healthz')).status, 200);
    assert.equal((await get(srv, '/readyz')).status, 200);
  });
});
