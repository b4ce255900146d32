'use strict';
// The Kafka exporter (docs/INTEGRATIONS.md, "Kafka export") over the wire: librdkafka's mock
// cluster runs as its own process (build-test/kafka_mock, no broker can be installed here) and
// kcat (Debian) is the independent consumer. 10,000 messages over 20 rooms arrive, each room's
// in seq order within its partition (key = room id); chatd is killed with SIGKILL mid-stream and
// restarted on the same data: the exporter resumes from its saved position with no gap
// (duplicates are allowed and counted).

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const path = require('node:path');
const { startChat, newUser, api, createRoom, sleep } = require('./lib/chat');
const { BIN } = require('./lib/server');

const MOCK = path.join(path.dirname(BIN), 'kafka_mock');
const TOPIC = 'chatd.events';
const ROOMS = 20;
const PER_ROOM = 500; // 10,000 messages
const FAST = { 'msg-rate': 1000000, 'msg-burst': 1000000, 'rate-limits': 'off' };

function startMock() {
  return new Promise((resolve, reject) => {
    const p = spawn(MOCK, ['--topic', TOPIC, '--partitions', '4'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      out += d;
      const m = /BOOTSTRAP (\S+)/.exec(out);
      if (m) resolve({ proc: p, bootstrap: m[1] });
    });
    p.on('error', reject);
    p.on('exit', (code) => reject(new Error(`kafka_mock exited ${code}`)));
  });
}

/** Every record of the topic, read by kcat: [{partition, offset, key, value}]. */
function kcatAll(bootstrap) {
  return new Promise((resolve, reject) => {
    execFile(
      'kcat',
      ['-C', '-b', bootstrap, '-t', TOPIC, '-e', '-q', '-f', '%p\t%o\t%k\t%s\n'],
      { maxBuffer: 256 * 1024 * 1024, timeout: 60000 },
      (err, stdout) => {
        if (err) return reject(err);
        const rows = [];
        for (const line of stdout.split('\n')) {
          if (!line) continue;
          const [p, o, k, ...v] = line.split('\t');
          rows.push({ partition: Number(p), offset: Number(o), key: k, value: JSON.parse(v.join('\t')) });
        }
        resolve(rows);
      },
    );
  });
}

/** Messages per room as kcat saw them (partition order), first copies only; duplicates counted. */
function analyse(rows) {
  const byRoom = new Map();
  const seen = new Set();
  let duplicates = 0;
  const sorted = [...rows].sort((a, b) => a.partition - b.partition || a.offset - b.offset);
  const partitionOfRoom = new Map();
  for (const r of sorted) {
    if (r.value.type !== 'message') continue;
    const room = r.value.room;
    assert.equal(r.key, room.slice(2), 'key = room id');
    if (partitionOfRoom.has(room)) assert.equal(partitionOfRoom.get(room), r.partition, 'one partition per room');
    partitionOfRoom.set(room, r.partition);
    if (seen.has(r.value.id)) {
      duplicates++;
      continue;
    }
    seen.add(r.value.id);
    if (!byRoom.has(room)) byRoom.set(room, []);
    byRoom.get(room).push(r.value.data.seq);
  }
  return { byRoom, distinct: seen.size, duplicates };
}

async function sendMessages(srv, u, rooms, from, to) {
  await Promise.all(
    rooms.map(async (room) => {
      for (let i = from; i < to; i++) {
        const r = await api(srv, u).post(`/v1/rooms/${room}/messages`, { body: `m${i}`, client_msg_id: `k${room}-${i}` });
        assert.ok(r.status === 201 || r.status === 200, `post: ${r.status} ${r.text}`);
      }
    }),
  );
}

describe('Kafka exporter', () => {
  let mock;
  let srv;

  before(async () => {
    mock = await startMock();
  });

  after(async () => {
    if (srv) await srv.kill();
    if (mock) mock.proc.kill('SIGTERM');
  });

  it('exports 10,000 messages over 20 rooms in per-room order, and resumes after kill -9 with no gap', async () => {
    const args = { ...FAST, 'kafka-brokers': mock.bootstrap };
    srv = await startChat(args);
    const dataDir = srv.dataDir;
    const u = await newUser(srv, 'kx');
    const rooms = [];
    for (let i = 0; i < ROOMS; i++) rooms.push((await createRoom(srv, u)).id);

    // First half, then SIGKILL while the exporter is (most likely) still behind.
    await sendMessages(srv, u, rooms, 0, PER_ROOM / 2);
    srv.proc.kill('SIGKILL');
    await srv.exited;
    const beforeKill = analyse(await kcatAll(mock.bootstrap)).distinct;

    srv = await startChat(args, { dataDir });
    await sendMessages(srv, u, rooms, PER_ROOM / 2, PER_ROOM);

    const want = ROOMS * PER_ROOM;
    let a;
    const deadline = Date.now() + 120000;
    for (;;) {
      a = analyse(await kcatAll(mock.bootstrap));
      if (a.distinct >= want || Date.now() > deadline) break;
      await sleep(500);
    }
    console.log(
      `kafka export: ${a.distinct} distinct messages (${beforeKill} before the kill), ${a.duplicates} duplicates`,
    );
    assert.equal(a.distinct, want, 'every message exported');
    assert.equal(a.byRoom.size, ROOMS);
    for (const [room, seqs] of a.byRoom) {
      // A room's log: seq 1 is the room's creation, 2.. its messages (one member: the owner).
      for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${room}: seq order at ${i}`);
      assert.equal(seqs.length, PER_ROOM, `${room}: every message`);
      assert.equal(seqs[seqs.length - 1] - seqs[0] + 1, PER_ROOM, `${room}: no gap`);
    }
    await srv.stop();
    srv = null;
  });
});
