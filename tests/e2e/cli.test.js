'use strict';
// The administration commands of the chatd binary, run beside a live server on the same
// storage: user create|list|passwd|disable, token mint, config check, backup and restore.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { BIN, PG_BASE, startServer, sleep } = require('./lib/server');
const { request } = require('./lib/http');
const { startChat, newUser, createRoom, connect, fullHistory } = require('./lib/chat');

/** Run `chatd ARGS` with the server's storage settings; returns {status, stdout, stderr}. */
function cli(srv, args, { input = '', env = {}, storage = true } = {}) {
  const extra = [];
  if (storage && srv) {
    extra.push('--data-dir', srv.dataDir);
    const i = srv.args.indexOf('--store-url');
    if (i >= 0) extra.push('--store-url', srv.args[i + 1]);
  }
  const cleanEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHATD_') && !k.startsWith('OTEL_')) cleanEnv[k] = v;
  const r = spawnSync(BIN, [...args, ...extra, '--pwhash-ops', '1', '--pwhash-mem-kib', '8192'], {
    input,
    encoding: 'utf8',
    env: { ...cleanEnv, ...env },
    timeout: 30000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

const login = (srv, username, password) => request(srv, 'POST', '/v1/auth/login', { json: { username, password } });

test('user create, list, passwd and disable on a running server', async () => {
  const srv = await startChat();
  try {
    let r = cli(srv, ['user', 'create', 'alice'], { input: 'correct horse\n' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /created user alice \(u_\d+\)/);
    assert.equal((await login(srv, 'alice', 'correct horse')).status, 200);

    assert.equal(cli(srv, ['user', 'create', 'alice'], { input: 'another one\n' }).status, 1);
    assert.equal(cli(srv, ['user', 'create', 'Bad Name'], { input: 'correct horse\n' }).status, 2);
    assert.equal(cli(srv, ['user', 'create', 'bob'], { input: 'short\n' }).status, 2);
    assert.equal(cli(srv, ['user', 'create', 'bob'], { input: '' }).status, 2);
    assert.equal(cli(srv, ['user', 'frobnicate', 'bob']).status, 2);

    const web = await newUser(srv, 'cl');
    r = cli(srv, ['user', 'list']);
    assert.equal(r.status, 0, r.stderr);
    const rows = r.stdout.trim().split('\n').map((l) => l.split('\t'));
    assert.deepEqual(rows[0], ['id', 'username', 'created', 'last_seen', 'status']);
    const alice = rows.find((x) => x[1] === 'alice');
    assert.ok(alice && /^u_\d+$/.test(alice[0]) && alice[4] === 'active', r.stdout);
    assert.ok(rows.some((x) => x[1] === web.username && x[0] === web.id));

    // passwd: the old password stops working, and so do the user's refresh tokens.
    const before = await login(srv, 'alice', 'correct horse');
    r = cli(srv, ['user', 'passwd', 'alice'], { input: 'battery staple\n' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /new password for alice .*: [1-9]\d* session\(s\) ended/);
    assert.equal((await login(srv, 'alice', 'correct horse')).status, 401);
    assert.equal((await login(srv, 'alice', 'battery staple')).status, 200);
    const refreshed = await request(srv, 'POST', '/v1/auth/refresh', { json: { refresh_token: before.body.refresh_token } });
    assert.equal(refreshed.status, 401);
    assert.equal(cli(srv, ['user', 'passwd', 'nobody'], { input: 'whatever12\n' }).status, 1);

    // disable: no password works; the list says so; passwd enables again.
    r = cli(srv, ['user', 'disable', 'alice']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal((await login(srv, 'alice', 'battery staple')).status, 401);
    assert.match(cli(srv, ['user', 'list']).stdout, /\talice\t.*\tdisabled\n/);
    assert.equal(cli(srv, ['token', 'mint', 'alice']).status, 1);
    assert.equal(cli(srv, ['user', 'passwd', 'alice'], { input: 'third password\n' }).status, 0);
    assert.equal((await login(srv, 'alice', 'third password')).status, 200);
  } finally {
    await srv.stop();
  }
});

test('token mint: a working access token of a new session', async () => {
  const srv = await startChat();
  try {
    const u = await newUser(srv, 'tm');
    const r = cli(srv, ['token', 'mint', u.username, '--ttl', '120']);
    assert.equal(r.status, 0, r.stderr);
    const tok = r.stdout.trim();
    assert.match(tok, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    const me = await request(srv, 'GET', '/v1/me', { token: tok });
    assert.equal(me.status, 200, me.text);
    assert.equal((me.body.user || me.body).id, u.id);
    const claims = JSON.parse(Buffer.from(tok.split('.')[1], 'base64url').toString());
    assert.equal(claims.exp - claims.iat, 120);
    assert.equal(cli(srv, ['token', 'mint', 'nobody']).status, 1);
    assert.equal(cli(srv, ['token', 'mint', u.username, '--ttl', 'x']).status, 2);
  } finally {
    await srv.stop();
  }
});

test('config check: the effective settings with secrets redacted; errors exit 2', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-cli-'));
  try {
    const file = path.join(dir, 'chatd.conf');
    fs.writeFileSync(file, 'listen = 127.0.0.1:9999\nmsg-rate = 7\n');
    const key = 'k1:' + 'ab'.repeat(32);
    let r = cli(null, ['config', 'check', '--config', file, '--msg-rate', '9', '--jwt-keys', key,
      '--redis-url', 'redis://:hunter2@127.0.0.1:6379/0'], { env: { CHATD_MSG_BURST: '77' }, storage: false });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^listen = "127\.0\.0\.1:9999"$/m);
    assert.match(r.stdout, /^msg-rate = 9$/m); // flag over file
    assert.match(r.stdout, /^msg-burst = 77$/m); // environment
    assert.match(r.stdout, /^jwt-keys = "<redacted>"$/m);
    assert.match(r.stdout, /^redis-url = "redis:\/\/:\*\*\*@127\.0\.0\.1:6379\/0"$/m);
    assert.ok(!r.stdout.includes('abab') && !r.stdout.includes('hunter2'));
    assert.match(r.stdout, /# tracing: off/);

    r = cli(null, ['config', 'check'], { env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_TRACES_SAMPLER: 'always_on' }, storage: false });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /# tracing: on, http:\/\/127\.0\.0\.1:4318\/v1\/traces, sampler always_on/);

    for (const [args, env, what] of [
      [['--log-level', 'loud'], {}, /--log-level/],
      [['--no-such-flag', '1'], {}, /unknown option/],
      [['--listen', 'nowhere'], {}, /--listen/],
      [['--store-url', 'mysql://x'], {}, /--store-url/],
      [['--msg-rate', 'fast'], {}, /non-negative integer/],
      [[], { OTEL_TRACES_SAMPLER: 'sometimes' }, /OTEL_TRACES_SAMPLER/],
      [['--config', path.join(dir, 'missing.conf')], {}, /cannot read config file/],
    ]) {
      r = cli(null, ['config', 'check', ...args], { env, storage: false });
      assert.equal(r.status, 2, `${args} ${JSON.stringify(env)}: ${r.stdout}`);
      assert.match(r.stderr, what);
    }
    r = cli(null, ['config', '--help'], { storage: false });
    assert.equal(r.status, 0);
    assert.match(r.stdout, /config check/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('a JSON config file: same keys as the line format, checked and used by the server', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-json-'));
  try {
    const file = path.join(dir, 'chatd.json');
    fs.writeFileSync(file, JSON.stringify({ 'msg-rate': 11, rate_limits: false, 'allowed-origins': 'https://app.example', web: true }, null, 2));
    let r = cli(null, ['config', 'check', '--config', file], { storage: false });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^msg-rate = 11$/m);
    assert.match(r.stdout, /^rate-limits = off$/m);
    assert.match(r.stdout, /^allowed-origins = "https:\/\/app\.example"$/m);
    fs.writeFileSync(file, '{"msg-rate": "many"}');
    r = cli(null, ['config', 'check', '--config', file], { storage: false });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /msg-rate/);
    fs.writeFileSync(file, '{"msg-rate": 1,}');
    r = cli(null, ['config', 'check', '--config', file], { storage: false });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /chatd\.json:1:/);
    // The server reads it the same way.
    fs.writeFileSync(file, JSON.stringify({ 'max-message-body': 5 }));
    const srv = await startChat({ config: file });
    try {
      const u = await newUser(srv, 'js');
      const room = await createRoom(srv, u, []);
      const c = await connect(srv, u);
      try {
        const reply = await c.req({ type: 'send', room: room.id, body: 'too long', client_msg_id: 'j1' });
        assert.equal(reply.type, 'error');
        assert.equal(reply.code, 'payload_too_large');
      } finally {
        await c.close();
      }
    } finally {
      await srv.stop();
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('backup while messages flow, restore into a stopped node: history intact', async () => {
  const srv = await startChat();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-backup-'));
  const file = path.join(dir, 'chatd.backup');
  if (PG_BASE) {
    try {
      const r = cli(srv, ['backup', '--to', file]);
      assert.equal(r.status, 1);
      assert.match(r.stderr, /pg_dump/);
      assert.equal(cli(srv, ['restore', '--from', file]).status, 1);
    } finally {
      await srv.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
    return;
  }
  let restored;
  try {
    const a = await newUser(srv, 'bk');
    const room = await createRoom(srv, a, []);
    const c = await connect(srv, a);
    const acked = []; // bodies the server acknowledged, in order (others were rate-limited)
    let n = 0;
    let stop = false;
    const sender = (async () => {
      while (!stop) {
        const body = `msg ${n++}`;
        if ((await c.sendMsg(room.id, body)).type === 'ack') acked.push(body);
      }
    })();
    await sleep(200);
    const r = cli(srv, ['backup', '--to', file]);
    stop = true;
    await sender;
    await c.close();
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /integrity ok/);
    assert.match(r.stdout, /jwt\.keys/);
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);
    assert.equal(cli(srv, ['backup', '--to', file]).status, 1); // never over a file
    assert.equal(cli(srv, ['backup']).status, 2);
    assert.equal(cli(srv, ['restore', '--from', file, '--force']).status, 1); // chatd runs there

    // Restore into a fresh data directory with the same keys; the room's log is a prefix of
    // what was sent, contiguous, taken at one instant.
    const target = path.join(dir, 'data');
    fs.mkdirSync(target, { mode: 0o700 });
    fs.copyFileSync(path.join(srv.dataDir, 'jwt.keys'), path.join(target, 'jwt.keys'));
    const rr = spawnSync(BIN, ['restore', '--from', file, '--data-dir', target], { encoding: 'utf8' });
    assert.equal(rr.status, 0, rr.stderr);
    assert.equal(spawnSync(BIN, ['restore', '--from', file, '--data-dir', target], { encoding: 'utf8' }).status, 1);
    assert.equal(spawnSync(BIN, ['restore', '--from', path.join(dir, 'nothing'), '--data-dir', target], { encoding: 'utf8' }).status, 1);
    restored = await startChat({}, { dataDir: target });
    const hist = await fullHistory(restored, a, room.id);
    const bodies = hist.filter((m) => m.type === 'message').map((m) => m.body);
    assert.ok(bodies.length >= 1 && bodies.length <= acked.length, `${bodies.length} of ${acked.length}`);
    assert.deepEqual(bodies, acked.slice(0, bodies.length)); // a prefix: one instant of the log
    assert.equal((await login(restored, a.username, a.password)).status, 200);
  } finally {
    if (restored) await restored.stop();
    await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
