'use strict';
// Command line and configuration: --version, --help, bad flags, and the precedence
// flag > environment > config file > default, observed from outside (where chatd listens, and
// the expires_in it hands out for --access-ttl).

const { describe, it, afterEach } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const { startServer, runOnce, freePort } = require('./lib/server');
const { registerUser } = require('./lib/http');
const { wsConnectHello } = require('./lib/ws');

const T = { timeout: 20000 };

function listening(port) {
  return new Promise((resolve) => {
    const s = net.connect({ host: '127.0.0.1', port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

describe('command line', () => {
  it('--version prints the version and exits 0', T, async () => {
    const r = await runOnce(['--version']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^chatd \d+\.\d+\.\d+\s*$/);
  });

  it('--help exits 0 and documents every setting with its env name and default', T, async () => {
    const r = await runOnce(['--help']);
    assert.equal(r.code, 0, r.stderr);
    for (const flag of [
      'config', 'listen', 'data-dir', 'jwt-keys', 'access-ttl', 'refresh-ttl', 'pwhash-ops', 'pwhash-mem-kib',
      'http-max-header', 'http-max-headers', 'http-max-body', 'http-timeout', 'http-keepalive',
      'ws-max-frame', 'ws-max-message', 'ws-idle', 'ws-max-outq', 'max-conns', 'auth-rate', 'drain-timeout',
    ]) {
      assert.match(r.stdout, new RegExp(`--${flag}\\b`), `--help does not mention --${flag}`);
    }
    // The documented defaults of PROTOCOL.md's limits table.
    for (const [env, def] of [
      ['CHATD_LISTEN', '0.0.0.0:8080'],
      ['CHATD_HTTP_MAX_HEADER', '8192'],
      ['CHATD_HTTP_MAX_HEADERS', '64'],
      ['CHATD_HTTP_MAX_BODY', '65536'],
      ['CHATD_HTTP_TIMEOUT', '10'],
      ['CHATD_HTTP_KEEPALIVE', '60'],
      ['CHATD_WS_MAX_FRAME', '65536'],
      ['CHATD_WS_MAX_MESSAGE', '65536'],
      ['CHATD_WS_IDLE', '60'],
      ['CHATD_WS_MAX_OUTQ', '4194304'],
      ['CHATD_MAX_CONNS', '100000'],
      ['CHATD_AUTH_RATE', '5'],
      ['CHATD_ACCESS_TTL', '900'],
      ['CHATD_REFRESH_TTL', '2592000'],
    ]) {
      assert.match(r.stdout, new RegExp(`env ${env}, default '${def.replace(/\./g, '\\.')}'`), `${env} default ${def}`);
    }
  });

  for (const [what, args, re] of [
    ['an unknown flag', ['--no-such-flag', '1'], /unknown option '--no-such-flag'/],
    ['a flag without its value', ['--listen'], /needs a value/],
    ['a non-numeric integer', ['--ws-idle', 'soon'], /non-negative integer/],
    ['a negative integer', ['--http-timeout', '-1'], /non-negative integer/],
    ['a bad boolean', ['--rate-limits', 'maybe'], /on or off/],
    ['a positional argument', ['serve'], /unexpected argument/],
    ['a missing config file', ['--config', '/nonexistent/chatd.conf'], /cannot read config file/],
  ]) {
    it(`${what} exits non-zero with a message`, T, async () => {
      const r = await runOnce(args);
      assert.notEqual(r.code, 0);
      assert.equal(r.signal, null);
      assert.match(r.stderr, re);
    });
  }
});

describe('configuration precedence', () => {
  const servers = [];
  const files = [];
  afterEach(async () => {
    for (const s of servers.splice(0)) await s.stop();
    for (const f of files.splice(0)) fs.rmSync(f, { force: true });
  });

  function configFile(lines) {
    const f = path.join(os.tmpdir(), `chatd-e2e-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}.conf`);
    fs.writeFileSync(f, lines.join('\n') + '\n');
    files.push(f);
    return f;
  }

  async function start(opts) {
    const s = await startServer({ readyTimeoutMs: 8000, ...opts });
    servers.push(s);
    return s;
  }

  it('--listen beats CHATD_LISTEN', T, async () => {
    const envPort = await freePort();
    const srv = await start({ env: { CHATD_LISTEN: `127.0.0.1:${envPort}` } }); // helper passes --listen
    assert.equal(await listening(envPort), false, 'chatd listens on the env address too');
    const u = await registerUser(srv);
    assert.ok(u.user.id);
  });

  it('CHATD_LISTEN is used without a flag', T, async () => {
    const port = await freePort();
    const srv = await start({ listen: false, port, env: { CHATD_LISTEN: `127.0.0.1:${port}` } });
    assert.ok(await listening(srv.port));
  });

  it('a --config file is read; CHATD_* beats the file; the flag beats both', T, async () => {
    const filePort = await freePort();
    const envPort = await freePort();
    const conf = configFile([
      '# chatd test config',
      `listen = 127.0.0.1:${filePort}`,
      'access_ttl = 111',
      'ws-idle = "7"',
    ]);
    // Environment beats the file: listens on envPort, not filePort; access-ttl from the file.
    const a = await start({ listen: false, port: envPort, env: { CHATD_LISTEN: `127.0.0.1:${envPort}` }, args: { config: conf } });
    assert.equal(await listening(filePort), false, 'file listen address used although CHATD_LISTEN is set');
    assert.equal((await registerUser(a)).expires_in, 111, 'access_ttl from the config file not applied');
    await a.stop();
    servers.length = 0;

    // File only.
    const b = await start({ listen: false, port: filePort, args: { config: conf } });
    const ub = await registerUser(b);
    assert.equal(ub.expires_in, 111);
    const { client, hello } = await wsConnectHello(b.wsUrl, { token: ub.access_token });
    client.terminate();
    assert.equal(hello.limits.idle_timeout, 7, 'quoted ws-idle from the config file not applied');
    await b.stop();
    servers.length = 0;

    // Env beats file for access-ttl; flag beats env.
    const c = await start({ listen: false, port: filePort, env: { CHATD_ACCESS_TTL: '222' }, args: { config: conf } });
    assert.equal((await registerUser(c)).expires_in, 222, 'CHATD_ACCESS_TTL did not beat the file');
    await c.stop();
    servers.length = 0;

    const d = await start({ listen: false, port: filePort, env: { CHATD_ACCESS_TTL: '222' }, args: { config: conf, 'access-ttl': 333 } });
    assert.equal((await registerUser(d)).expires_in, 333, '--access-ttl did not beat CHATD_ACCESS_TTL');
  });

  it('CHATD_CONFIG names the config file', T, async () => {
    const port = await freePort();
    const conf = configFile([`listen = 127.0.0.1:${port}`, 'access-ttl = 444']);
    const srv = await start({ listen: false, port, env: { CHATD_CONFIG: conf } });
    assert.equal((await registerUser(srv)).expires_in, 444);
  });

  it('a config file with an unknown setting is refused with its line number', T, async () => {
    const conf = configFile(['listen = 127.0.0.1:1', '', 'no_such_setting = 1']);
    const r = await runOnce(['--config', conf]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, new RegExp(`${conf.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3: unknown setting 'no_such_setting'`));
  });

  it('a bad value in CHATD_* is refused, naming the variable', T, async () => {
    const r = await runOnce(['--version'], { env: { CHATD_WS_IDLE: 'x' } });
    assert.equal(r.code, 0, '--version does not need a valid configuration');
    const r2 = await runOnce(['--listen', '127.0.0.1:1'], { env: { CHATD_WS_IDLE: 'x' } });
    assert.notEqual(r2.code, 0);
    assert.match(r2.stderr, /CHATD_WS_IDLE/);
  });
});
