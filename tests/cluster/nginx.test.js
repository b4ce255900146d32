'use strict';
// The way a new user meets the cluster: scripts/cluster.sh up starts PostgreSQL, three NATS
// servers, Redis, three chatd nodes and nginx; clients on different nodes chat through nginx's
// one port; a node is killed and nothing acknowledged is lost; scripts/cluster.sh down.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sleep, freePort } = require('../e2e/lib/server');
const { newUser, createRoom, connect, fullHistory, assertContiguous } = require('../e2e/lib/chat');
const { request } = require('../e2e/lib/http');

const T = { timeout: 180000 };
const ROOT = path.resolve(__dirname, '../..');

describe('scripts/cluster.sh: three nodes behind nginx', () => {
  let env, dir, front;
  const script = path.join(ROOT, 'scripts/cluster.sh');
  // NATS client ports base.., routes +1000, monitoring +4000 (scripts/cluster.sh): all free,
  // all below the ephemeral range (see freePort).
  const natsBase = async () => {
    for (;;) {
      const base = await freePort(3);
      if (base + 4003 < 32768 && (await freePort.free(base + 1000, 3)) && (await freePort.free(base + 4000, 3))) return base;
    }
  };
  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-cl-'));
    const port = await freePort();
    env = {
      ...process.env,
      CHATD_CLUSTER_DIR: dir,
      CHATD_CLUSTER_PORT: String(port),
      CHATD_NODE_BASE: String(await freePort(8)), // base + 1.. for the nodes and the roles process
      CHATD_NATS_BASE: String(await natsBase()),
      CHATD_REDIS_PORT: String(await freePort()),
      CHATD_NODE_ARGS: '--pwhash-ops 1 --pwhash-mem-kib 8192 --auth-rate 1000 --room-rate 1000 --reconcile-ms 500',
    };
    if (process.env.CHATD_BIN) env.CHATD_BIN = process.env.CHATD_BIN;
    delete env.CHATD_PG_DIR; // the cluster's own PostgreSQL, under its state directory
    execFileSync(script, ['up', '3'], { env, stdio: ['ignore', 'inherit', 'inherit'], timeout: 170000 });
    front = { port, base: `http://127.0.0.1:${port}`, wsUrl: `ws://127.0.0.1:${port}/v1/ws` };
  });
  after(() => {
    if (env) execFileSync(script, ['down'], { env, stdio: 'inherit' });
    if (dir) fs.rmSync(dir, { recursive: true, force: true });
  });

  const node = (i) => ({ port: Number(env.CHATD_NODE_BASE) + i, get base() { return `http://127.0.0.1:${this.port}`; }, get wsUrl() { return `ws://127.0.0.1:${this.port}/v1/ws`; } });

  it('status reports every part running and ready', T, () => {
    const out = execFileSync(script, ['status'], { env, encoding: 'utf8' });
    for (const part of ['nats0: running', 'nats1: running', 'nats2: running', 'redis: running', 'nginx: running'])
      assert.ok(out.includes(part), out);
    assert.equal((out.match(/^node\d+: .*readyz 200$/gm) || []).length, 3, out);
    // the other roles in a process of their own (--roles relay,notifier,exporter,indexer)
    assert.match(out, /^workers: .*readyz 200$/m);
  });

  it('clients through nginx and on different nodes chat; a killed node loses nothing acknowledged', T, async () => {
    const alice = await newUser(front, 'na');
    const bob = await newUser(front, 'nb');
    const room = await createRoom(front, alice, [bob]);
    const cb = await connect(node(1), bob); // bob on node 1
    const ca = await connect(node(2), alice); // alice on node 2
    const cf = await connect(front, bob); // bob again, wherever nginx puts him
    try {
      const acks = [];
      for (let i = 0; i < 10; i++) acks.push(await ca.sendMsg(room.id, `via 2: ${i}`));
      const top = acks[acks.length - 1].seq;
      for (const c of [cb, cf]) await c.waitFor((x) => x.entries(room.id).some((m) => m.seq === top), 15000, 'cross-node');
      // kill node 2 (alice's) with SIGKILL, by its PID file; alice goes on through nginx
      const pid = Number(fs.readFileSync(path.join(dir, 'node2.pid'), 'utf8'));
      process.kill(pid, 'SIGKILL');
      await ca.closed(10000).catch(() => {});
      await sleep(500);
      const ca2 = await connect(front, alice, { sync: { [room.id]: top } });
      try {
        for (let i = 0; i < 10; i++) acks.push(await ca2.sendMsg(room.id, `via nginx: ${i}`));
      } finally {
        await ca2.close();
      }
      const last = acks[acks.length - 1].seq;
      await cb.waitFor((x) => x.entries(room.id).some((m) => m.seq === last), 15000, 'after the kill');
      assertContiguous(cb.entries(room.id).map((m) => m.seq), cb.entries(room.id)[0].seq, 'bob on node 1');
      const h = await fullHistory(front, bob, room.id);
      assert.deepEqual(h.map((m) => m.seq), h.map((_, i) => i + 1));
      for (const a of acks) assert.equal(h.filter((m) => m.seq === a.seq && m.type === 'message').length, 1);
      const r = await request(front, 'GET', '/readyz');
      assert.equal(r.status, 200, 'nginx skips the dead node');
    } finally {
      await ca.close();
      await cb.close();
      await cf.close();
    }
  });
});
