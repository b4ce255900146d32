'use strict';
// The deployment files: deploy/systemd/chatd.service passes `systemd-analyze verify` with no
// complaint about the unit and scores as hardened in `systemd-analyze security --offline`;
// deploy/nginx/chatd.conf passes `nginx -t` with a self-signed certificate made here, and a chat
// works through it over TLS (REST, WebSocket upgrade, the forwarded client address).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const https = require('node:https');
const { spawn, spawnSync } = require('node:child_process');
const { BIN, startServer, freePort, sleep } = require('./lib/server');
const { wsConnect } = require('./lib/ws');

const ROOT = path.resolve(__dirname, '../..');
const UNIT = path.join(ROOT, 'deploy/systemd/chatd.service');
const NGINX = path.join(ROOT, 'deploy/nginx/chatd.conf');

function run(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 60000, ...opts });
  if (r.error) throw new Error(`${cmd} not runnable (scripts/deps.sh installs it): ${r.error.message}`);
  return r;
}

test('systemd unit: verifies cleanly and is hardened', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-unit-'));
  try {
    const unit = path.join(dir, 'chatd.service');
    fs.writeFileSync(unit, fs.readFileSync(UNIT, 'utf8').replaceAll('/usr/local/bin/chatd', BIN));
    const v = run('systemd-analyze', ['verify', unit]);
    const about = (v.stderr + v.stdout).split('\n').filter((l) => l.includes('chatd.service'));
    assert.equal(v.status, 0, v.stderr);
    assert.deepEqual(about, [], `systemd-analyze verify:\n${v.stderr}`);
    const s = run('systemd-analyze', ['security', '--offline=true', unit]);
    const m = /Overall exposure level for chatd\.service: ([\d.]+)/.exec(s.stdout + s.stderr);
    assert.ok(m, s.stdout + s.stderr);
    assert.ok(Number(m[1]) <= 2.5, `exposure ${m[1]}`);
    const text = fs.readFileSync(UNIT, 'utf8');
    for (const k of ['User=chatd', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'StateDirectory=chatd', 'LimitNOFILE=', 'ProtectHome=yes'])
      assert.ok(text.includes(k), k);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

function httpsReq(port, method, p, { json, headers = {} } = {}) {
  return new Promise((resolve, reject) => {
    const body = json === undefined ? null : JSON.stringify(json);
    const h = { ...headers };
    if (body) h['Content-Type'] = 'application/json';
    const req = https.request({ host: '127.0.0.1', port, method, path: p, headers: h, rejectUnauthorized: false, agent: false }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => {
        let parsed;
        try {
          parsed = JSON.parse(text);
        } catch {
          parsed = undefined;
        }
        resolve({ status: res.statusCode, headers: res.headers, text, body: parsed });
      });
    });
    req.on('error', reject);
    if (body) req.write(body);
    req.end();
  });
}

test('nginx example: nginx -t passes, and a chat works through it over TLS', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-nginx-'));
  let nginx = null;
  let srv = null;
  try {
    const key = path.join(dir, 'key.pem');
    const cert = path.join(dir, 'cert.pem');
    const o = run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost']);
    assert.equal(o.status, 0, o.stderr);
    srv = await startServer({ args: { 'trusted-proxies': '127.0.0.1/32' } });
    const tls = await freePort();
    const plain = await freePort();
    const site = fs
      .readFileSync(NGINX, 'utf8')
      .replaceAll('/etc/ssl/chatd/fullchain.pem', cert)
      .replaceAll('/etc/ssl/chatd/privkey.pem', key)
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${srv.port}`)
      .replace(/listen \[::\]:\d+[^;]*;\n/g, '')
      .replace('listen 443 ssl http2;', `listen 127.0.0.1:${tls} ssl http2;`)
      .replace('listen 80;', `listen 127.0.0.1:${plain};`);
    fs.writeFileSync(path.join(dir, 'site.conf'), site);
    fs.mkdirSync(path.join(dir, 'tmp'));
    const user = process.getuid && process.getuid() === 0 ? 'user root;\n' : '';
    fs.writeFileSync(
      path.join(dir, 'nginx.conf'),
      `${user}pid ${dir}/nginx.pid;\nerror_log ${dir}/error.log;\nworker_processes 1;\nevents {}\n` +
        `http { access_log off; client_body_temp_path ${dir}/tmp; proxy_temp_path ${dir}/tmp; ` +
        `fastcgi_temp_path ${dir}/tmp; uwsgi_temp_path ${dir}/tmp; scgi_temp_path ${dir}/tmp; include ${dir}/site.conf; }\n`,
    );
    const t = run('nginx', ['-t', '-e', `${dir}/error.log`, '-p', dir, '-c', `${dir}/nginx.conf`]);
    assert.equal(t.status, 0, t.stderr);
    assert.match(t.stderr, /test is successful/);

    nginx = spawn('nginx', ['-e', `${dir}/error.log`, '-p', dir, '-c', `${dir}/nginx.conf`, '-g', 'daemon off;'], { stdio: 'ignore' });
    let up = null;
    for (let i = 0; i < 100 && !up; i++) {
      await sleep(100);
      up = await httpsReq(tls, 'GET', '/healthz').catch(() => null);
    }
    assert.ok(up, `nginx did not come up: ${fs.existsSync(`${dir}/error.log`) ? fs.readFileSync(`${dir}/error.log`, 'utf8') : ''}`);
    assert.equal(up.status, 200);
    assert.match(up.headers['strict-transport-security'] || '', /max-age/);

    // The plain-HTTP server redirects to HTTPS.
    const redirect = await new Promise((resolve, reject) => {
      require('node:http')
        .get({ host: '127.0.0.1', port: plain, path: '/x', agent: false }, (res) => {
          res.resume();
          resolve(res);
        })
        .on('error', reject);
    });
    assert.equal(redirect.statusCode, 301);
    assert.match(redirect.headers.location, /^https:\/\//);

    const reg = await httpsReq(tls, 'POST', '/v1/auth/register', {
      json: { username: `ngx${Date.now() % 100000}`, password: 'correct horse battery' },
      headers: { 'X-Forwarded-For': '203.0.113.50' },
    });
    assert.equal(reg.status, 201, reg.text);
    const token = reg.body.access_token;
    const room = await httpsReq(tls, 'POST', '/v1/rooms', { json: { name: 'through nginx', members: [] }, headers: { Authorization: `Bearer ${token}` } });
    assert.equal(room.status, 201, room.text);

    const c = await wsConnect(`wss://127.0.0.1:${tls}/v1/ws`, { token, wsOptions: { rejectUnauthorized: false } });
    try {
      await c.next((m) => m.type === 'hello');
      c.send({ type: 'send', id: 'n1', room: room.body.room.id, body: 'over TLS', client_msg_id: 'n1' });
      const ack = await c.next((m) => m.id === 'n1');
      assert.equal(ack.type, 'ack', JSON.stringify(ack));
    } finally {
      c.ws.close(1000);
      await c.closed(5000).catch(() => {});
    }
    await sleep(150);
    const line = srv.logs().find((l) => l.msg === 'http' && l.path === '/v1/auth/register');
    assert.ok(line, 'access line of the register');
    // nginx appended its peer (127.0.0.1, trusted) to the header: the client is the entry before.
    assert.equal(line.client, '203.0.113.50');
    const ws = srv.logs().find((l) => l.msg === 'http' && l.path === '/v1/ws');
    assert.equal(ws.status, 101);
  } finally {
    if (nginx) {
      nginx.kill('SIGTERM'); // our own nginx master, by PID (fast shutdown)
      await new Promise((r) => (nginx.exitCode !== null ? r() : nginx.on('exit', r)));
    }
    if (srv) await srv.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
