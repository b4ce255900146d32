'use strict';
// Engines for the cluster tests, started once per test file: PostgreSQL (scripts/pg.sh, one
// fresh database per file), a cluster of nats-server processes on free loopback ports, and
// chatd nodes sharing both (and the same JWT keys).

const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const crypto = require('node:crypto');
const { startServer, freePort, sleep } = require('../../e2e/lib/server');

const ROOT = path.resolve(__dirname, '../../..');

/** Start (or reuse) the private PostgreSQL and create a fresh database; returns its URL. */
function pgDatabase() {
  const base = execFileSync(path.join(ROOT, 'scripts/pg.sh'), ['start'], { encoding: 'utf8' }).trim().split('\n').pop();
  const u = new URL(base);
  const name = `chatd_cl_${process.pid}_${crypto.randomBytes(3).toString('hex')}`;
  execFileSync('psql', ['-X', '-q', '-h', u.hostname, '-p', u.port, '-U', 'postgres', '-d', 'postgres', '-c', `CREATE DATABASE ${name}`]);
  u.pathname = '/' + name;
  return u.toString();
}

async function waitPort(port, ms = 10000) {
  const net = require('node:net');
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((res) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`port ${port} not listening within ${ms} ms`);
}

/**
 * n nats-server processes in one cluster (with JetStream when {jetstream: true}, as
 * scripts/cluster.sh runs them). Returns {urls, servers: [{port, proc, kill()}], stop()}.
 */
async function natsCluster(n = 3, { jetstream = false } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-nats-'));
  const ports = [];
  const routes = [];
  for (let i = 0; i < n; i++) {
    ports.push(await freePort());
    routes.push(await freePort());
  }
  const servers = [];
  for (let i = 0; i < n; i++) {
    const conf = path.join(dir, `n${i}.conf`);
    const others = routes.map((p) => `nats-route://127.0.0.1:${p}`).join(', ');
    fs.writeFileSync(
      conf,
      `server_name: t${i}\nlisten: 127.0.0.1:${ports[i]}\n` +
        (n > 1 ? `cluster { name: t, listen: 127.0.0.1:${routes[i]}, routes: [ ${others} ] }\n` : '') +
        (jetstream ? `jetstream { store_dir: "${path.join(dir, `js${i}`)}" }\n` : ''),
    );
    const proc = spawn('nats-server', ['-c', conf], { stdio: ['ignore', 'ignore', 'pipe'] });
    proc.stderr.resume();
    const s = {
      port: ports[i],
      proc,
      url: `nats://127.0.0.1:${ports[i]}`,
      alive: true,
      async kill() {
        if (!s.alive) return;
        s.alive = false;
        const done = new Promise((res) => proc.once('exit', res));
        proc.kill('SIGKILL'); // our own child, by PID
        await done;
      },
    };
    servers.push(s);
  }
  for (const s of servers) await waitPort(s.port);
  await sleep(n > 1 ? (jetstream ? 3000 : 1500) : 100); // routes form (and JetStream elects)
  return {
    servers,
    urls: servers.map((s) => s.url).join(','),
    async stop() {
      for (const s of servers) await s.kill();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A redis-server on a free loopback port (no persistence). Returns {url, port, kill()}. */
async function redisServer(fixedPort) {
  const port = fixedPort || (await freePort());
  const proc = spawn('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  proc.stderr.resume();
  let alive = true;
  const exited = new Promise((res) => proc.once('exit', res));
  await waitPort(port);
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      if (!alive) return;
      alive = false;
      proc.kill('SIGKILL'); // our own child, by PID
      await exited;
    },
  };
}

function jwtKeys() {
  return `k1:${crypto.randomBytes(32).toString('hex')}`;
}

/** Start a chatd node of the cluster. */
function startNode({ storeUrl, natsUrl, redisUrl, keys, id, args = {}, env }) {
  return startServer({
    env,
    args: {
      'auth-rate': 1000,
      'store-url': storeUrl,
      'nats-url': natsUrl,
      'jwt-keys': keys,
      'node-id': id,
      'reconcile-ms': 500,
      ...(redisUrl ? { 'redis-url': redisUrl, 'presence-ttl-ms': 2000 } : {}),
      ...args,
    },
    readyTimeoutMs: 30000,
  });
}

/**
 * Stop everything given (chatd nodes with stop(), engines with stop()/kill()), each even when an
 * earlier one fails (a node's sanitizer report must not leave the others running); then throw
 * the first failure.
 */
async function stopAll(...parts) {
  let first = null;
  for (const p of parts) {
    if (!p) continue;
    try {
      if (p.exitInfo) await p.kill(); // a node the test killed: only clean up
      else if (typeof p.stop === 'function') await p.stop();
      else await p.kill();
    } catch (e) {
      first = first || e;
      if (typeof p.kill === 'function') await p.kill().catch(() => {});
    }
  }
  if (first) throw first;
}

module.exports = { pgDatabase, natsCluster, redisServer, jwtKeys, startNode, waitPort, stopAll };
