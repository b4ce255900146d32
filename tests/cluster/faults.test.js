'use strict';
// Faults under load in a cluster: a node killed with SIGKILL, PostgreSQL restarted. Nothing
// acknowledged is lost or doubled, every room stays gap-free, service resumes by itself.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { sleep } = require('../e2e/lib/server');
const { newUser, createRoom, connect, fullHistory } = require('../e2e/lib/chat');
const { request } = require('../e2e/lib/http');
const { pgDatabase, natsCluster, jwtKeys, startNode } = require('./lib/engines');

const T = { timeout: 180000 };
const ROOT = path.resolve(__dirname, '../..');

/**
 * A sender that keeps sending into room through whatever node `pick()` gives it, reconnecting
 * after a failure and resending every unacknowledged message with its client_msg_id, as a
 * real client does. acked: cmid -> seq.
 */
function sender(user, room, pick, tag) {
  const s = { acked: new Map(), errors: [], stop: false, sent: 0 };
  s.done = (async () => {
    let c = null;
    let i = 0;
    const pending = []; // cmids sent but not acked
    while (!s.stop) {
      try {
        if (!c || c.closeInfo) {
          c = await connect(pick(), user, { timeoutMs: 5000 });
          // resend what was never acknowledged, same client_msg_id
          for (const cmid of pending.splice(0)) {
            const a = await c.sendMsg(room, `m ${cmid}`, cmid, 5000);
            if (a.type === 'ack') s.acked.set(cmid, a.seq);
            else pending.push(cmid);
          }
        }
        const cmid = `${tag}-${i++}`;
        pending.push(cmid);
        s.sent++;
        const a = await c.sendMsg(room, `m ${cmid}`, cmid, 5000);
        if (a.type === 'ack') {
          s.acked.set(cmid, a.seq);
          pending.splice(pending.indexOf(cmid), 1);
        } else {
          s.errors.push(a.code);
          await sleep(200);
        }
      } catch {
        if (c) c.ws.terminate();
        c = null;
        await sleep(200);
      }
    }
    // drain: everything still pending is resent until acknowledged (bounded)
    for (let tries = 0; pending.length && tries < 50; tries++) {
      try {
        if (!c || c.closeInfo) c = await connect(pick(), user, { timeoutMs: 5000 });
        const cmid = pending[0];
        const a = await c.sendMsg(room, `m ${cmid}`, cmid, 5000);
        if (a.type === 'ack') {
          s.acked.set(cmid, a.seq);
          pending.shift();
        } else await sleep(300);
      } catch {
        if (c) c.ws.terminate();
        c = null;
        await sleep(300);
      }
    }
    s.unacked = pending.length;
    if (c) await c.close();
  })();
  return s;
}

async function audit(node, user, room, senders) {
  const h = await fullHistory(node, user, room);
  assert.deepEqual(h.map((m) => m.seq), h.map((_, i) => i + 1), 'the log is gap-free from 1');
  const byCmid = new Map();
  for (const m of h) if (m.type === 'message') byCmid.set(m.client_msg_id, (byCmid.get(m.client_msg_id) || []).concat(m.seq));
  let acked = 0;
  for (const s of senders) {
    assert.equal(s.unacked, 0, 'every message was finally acknowledged');
    for (const [cmid, seq] of s.acked) {
      acked++;
      assert.deepEqual(byCmid.get(cmid), [seq], `${cmid}: stored exactly once at its acked seq`);
    }
  }
  for (const [cmid, seqs] of byCmid) assert.equal(seqs.length, 1, `${cmid} stored ${seqs.length} times`);
  return acked;
}

describe('cluster faults', () => {
  let nats, storeUrl, keys, A, B;
  before(async () => {
    storeUrl = pgDatabase();
    nats = await natsCluster(1);
    keys = jwtKeys();
    const args = { 'msg-rate': 100000, 'msg-burst': 100000 }; // the senders retry fast
    A = await startNode({ storeUrl, keys, id: 'A', natsUrl: nats.urls, args });
    B = await startNode({ storeUrl, keys, id: 'B', natsUrl: nats.urls, args });
  });
  after(async () => {
    if (A) await A.kill();
    if (B) await B.stop();
    if (nats) await nats.stop();
  });

  it('a node killed with SIGKILL under load: every acked message once, the room gap-free', T, async () => {
    const owner = await newUser(B, 'ko');
    const users = [];
    for (let i = 0; i < 6; i++) users.push(await newUser(B, 'ks'));
    const room = await createRoom(B, owner, users);
    let aAlive = true;
    // half the senders start on A; once A is dead everybody goes to B
    const senders = users.map((u, i) => sender(u, room.id, () => (i % 2 === 0 && aAlive ? A : B), `k${i}`));
    await sleep(2000);
    aAlive = false;
    await A.kill(); // SIGKILL, our own child
    await sleep(2000);
    for (const s of senders) s.stop = true;
    await Promise.all(senders.map((s) => s.done));
    const acked = await audit(B, owner, room.id, senders);
    assert.ok(acked > 20, `enough traffic to mean something (${acked} acked)`);
  });

  it('PostgreSQL restarted under load: no ack without a commit, clear errors, service resumes', T, async () => {
    const owner = await newUser(B, 'po');
    const users = [];
    for (let i = 0; i < 4; i++) users.push(await newUser(B, 'ps'));
    const room = await createRoom(B, owner, users);
    const senders = users.map((u, i) => sender(u, room.id, () => B, `p${i}`));
    await sleep(1500);
    const env = { ...process.env };
    execFileSync(path.join(ROOT, 'scripts/pg.sh'), ['stop'], { env });
    let sawUnready = false;
    for (let i = 0; i < 10; i++) {
      const r = await request(B, 'GET', '/readyz');
      if (r.status === 503) sawUnready = true;
      await sleep(300);
    }
    execFileSync(path.join(ROOT, 'scripts/pg.sh'), ['start'], { env });
    // service resumes by itself: a fresh send is acknowledged
    const probe = await newUser(B, 'pp').catch(() => null);
    await sleep(2000);
    for (const s of senders) s.stop = true;
    await Promise.all(senders.map((s) => s.done));
    const errs = senders.flatMap((s) => s.errors);
    assert.ok(errs.length > 0, 'sends during the outage were refused');
    for (const e of new Set(errs)) assert.ok(['unavailable'].includes(e), `error code ${e}`);
    assert.ok(sawUnready, '/readyz said 503 while the database was down');
    await audit(B, owner, room.id, senders);
    const after = await newUser(B, 'pa');
    assert.ok(after.id && (probe === null || probe.id));
  });
});
