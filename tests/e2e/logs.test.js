'use strict';
// chatd's log is one JSON object per line whatever the requests hold: paths and usernames with
// quotes, backslashes, control characters and invalid UTF-8 are escaped. Every HTTP response
// carries an X-Request-Id, and every log line written for that request carries the same id.

const test = require('node:test');
const assert = require('node:assert/strict');
const { startServer, sleep } = require('./lib/server');
const { request, rawConnect } = require('./lib/http');

/** Every complete line of stderr, each parsed (fails on the first that is not one JSON object). */
const allLines = (srv) => srv.jsonLines();

async function raw(srv, bytes) {
  const c = await rawConnect(srv.port);
  c.write(bytes);
  await c.waitFor((d) => /\r\n\r\n/.test(d.toString('latin1')), 5000);
  c.destroy();
  const text = c.data.toString('latin1');
  const m = /\r\nX-Request-Id: ([0-9a-f]{16})\r\n/i.exec(text);
  assert.ok(m, `no X-Request-Id in ${JSON.stringify(text)}`);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)[1]), rid: m[1] };
}

test('log lines are valid JSON whatever the input, each with its request id', async () => {
  const srv = await startServer();
  try {
    const nasty = 'a"b\\c\u0001\u001f\n\t\u007f\u00e9}';
    const login = await request(srv, 'POST', '/v1/auth/login', { json: { username: nasty, password: 'x'.repeat(10) } });
    assert.equal(login.status, 401);
    const loginRid = login.headers['x-request-id'];
    assert.match(loginRid, /^[0-9a-f]{16}$/);

    const paths = [
      Buffer.from('GET /v1/users/u_1"\\x HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'),
      Buffer.from('GET /a"b\\c\x01d HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'),
      Buffer.from('GET /q"\\\x7f\xc3\xa9\xff\xfe?access_token=secret HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'),
      Buffer.from('GET /%22%5C%00 HTTP/1.1\r\nHost: a\r\n\r\n', 'latin1'),
      Buffer.from('POST /v1/auth/login HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"x":"\\"}', 'latin1'),
    ];
    const rids = [];
    for (const p of paths) rids.push((await raw(srv, p)).rid);
    const ok = await request(srv, 'GET', '/healthz');
    rids.push(ok.headers['x-request-id']);
    assert.equal(new Set([...rids, loginRid]).size, rids.length + 1, 'request ids are unique');
    await sleep(200);

    const lines = allLines(srv);
    const byRid = (rid) => lines.filter((l) => l.request_id === rid);
    // The failed login: its own line and the access line, both with the response's id.
    const failed = byRid(loginRid).find((l) => l.msg === 'login failed');
    assert.ok(failed, JSON.stringify(byRid(loginRid)));
    assert.equal(failed.username, nasty);
    assert.ok(byRid(loginRid).some((l) => l.msg === 'http' && l.status === 401 && l.path === '/v1/auth/login'));
    // One access line per response, quotes and backslashes of the path kept exactly.
    for (const rid of rids) {
      const acc = byRid(rid).filter((l) => l.msg === 'http');
      assert.equal(acc.length, 1, `access lines of ${rid}: ${JSON.stringify(byRid(rid))}`);
    }
    const paths1 = rids.map((rid) => byRid(rid)[0].path);
    assert.ok(paths1.some((p) => p.includes('"') && p.includes('\\')), JSON.stringify(paths1));
    // The query (an access token on /v1/ws) is never logged.
    assert.ok(!srv.stderr.includes('secret'));
    await srv.stop();
    for (const l of allLines(srv)) assert.ok(l.ts && l.level && typeof l.msg === 'string', JSON.stringify(l));
  } catch (e) {
    await srv.kill();
    throw e;
  }
});
