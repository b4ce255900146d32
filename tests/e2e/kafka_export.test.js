'use strict';
// The Kafka exporter (docs/INTEGRATIONS.md, "Kafka export") over the wire: librdkafka's mock
// cluster runs as its own process (build-test/kafka_mock, no broker can be installed here) and
// kcat (Debian) is the independent consumer. 10,000 messages over 20 rooms arrive, each room's
// in seq order within its partition (key = room id); chatd is killed with SIGKILL mid-stream and
// restarted on the same data: the exporter resumes from its saved position with no gap
// (duplicates are allowed and counted).
//
// Order across a failed request: 5,000 messages of 1 KB (incompressible) are written while no
// exporter runs, then the exporter starts on that backlog (one batch of 4,000 events, about 1 MB
// per partition: more than one Produce request each, a partition's batch holds at most
// batch.size, 1 MB) with the mock told to fail the next Produce
// request with a permanent error (INVALID_RECORD). Without the gapless guarantee
// librdkafka carries on with the later requests, the whole batch is produced again and the failed
// messages land after later ones of their rooms; with it the producer stops, the exporter keeps
// the delivered prefix and a new producer resumes from the first failed event: every room in seq
// order, nothing missing. /metrics shows the failure, the restart, and the consumer caught up.

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawn, spawnSync, execFile } = require('node:child_process');
const path = require('node:path');
const crypto = require('node:crypto');
const { startChat, newUser, api, createRoom, sleep } = require('./lib/chat');
const { BIN } = require('./lib/server');
const { metrics, metricSum } = require('./lib/http');

const MOCK = path.join(path.dirname(BIN), 'kafka_mock');
const TOPIC = 'chatd.events';
const ROOMS = 20;
const PER_ROOM = 500; // 10,000 messages
const FAST = { 'msg-rate': 1000000, 'msg-burst': 1000000, 'rate-limits': 'off' };

function startMock() {
  return new Promise((resolve, reject) => {
    const p = spawn(MOCK, ['--topic', TOPIC, '--partitions', '4'], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let answered = 0;
    const waiting = [];
    // A control command on the mock's stdin; resolves with its answer line ("OK" / "ERR ...").
    const command = (line) =>
      new Promise((res) => {
        waiting.push(res);
        p.stdin.write(`${line}\n`);
      });
    p.stdout.setEncoding('utf8');
    p.stdout.on('data', (d) => {
      out += d;
      const m = /BOOTSTRAP (\S+)/.exec(out);
      if (m) resolve({ proc: p, bootstrap: m[1], command });
      const answers = out.split('\n').filter((l) => l === 'OK' || l.startsWith('ERR'));
      while (answered < answers.length && waiting.length) waiting.shift()(answers[answered++]);
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

async function sendMessages(srv, u, rooms, from, to, pad = '') {
  await Promise.all(
    rooms.map(async (room) => {
      for (let i = from; i < to; i++) {
        const r = await api(srv, u).post(`/v1/rooms/${room}/messages`, { body: `m${i}${pad}`, client_msg_id: `k${room}-${i}` });
        assert.ok(r.status === 201 || r.status === 200, `post: ${r.status} ${r.text}`);
      }
    }),
  );
}

/** kcat's view once `want` distinct messages are there (or after 2 minutes: the asserts say). */
async function waitExported(bootstrap, want) {
  const deadline = Date.now() + 120000;
  for (;;) {
    const a = analyse(await kcatAll(bootstrap));
    if (a.distinct >= want || Date.now() > deadline) return a;
    await sleep(500);
  }
}

/** Every room has its `per` messages once (first copies), in seq order, with no gap. */
function checkRooms(a, per) {
  assert.equal(a.distinct, ROOMS * per, 'every message exported');
  assert.equal(a.byRoom.size, ROOMS);
  for (const [room, seqs] of a.byRoom) {
    // A room's log: seq 1 is the room's creation, 2.. its messages (one member: the owner).
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], `${room}: seq order at ${i} (${seqs[i - 1]} then ${seqs[i]})`);
    assert.equal(seqs.length, per, `${room}: every message`);
    assert.equal(seqs[seqs.length - 1] - seqs[0] + 1, per, `${room}: no gap`);
  }
}

describe('Kafka exporter', () => {
  const mocks = []; // one mock cluster (one topic) per test
  let srv;

  after(async () => {
    if (srv) await srv.kill();
    for (const m of mocks) m.proc.kill('SIGTERM');
  });

  it('exports 10,000 messages over 20 rooms in per-room order, and resumes after kill -9 with no gap', async () => {
    const mock = await startMock();
    mocks.push(mock);
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

    const a = await waitExported(mock.bootstrap, ROOMS * PER_ROOM);
    console.log(
      `kafka export: ${a.distinct} distinct messages (${beforeKill} before the kill), ${a.duplicates} duplicates`,
    );
    checkRooms(a, PER_ROOM);
    await srv.stop();
    srv = null;
  });

  it('keeps every room in seq order with nothing missing across a failed Produce request; /metrics shows the failure and the restart', async () => {
    const mock = await startMock();
    mocks.push(mock);
    const per = 250; // 5,000 messages: the exporter's first batch spans several requests
    srv = await startChat(FAST); // no exporter yet: the backlog builds up
    const dataDir = srv.dataDir;
    const u = await newUser(srv, 'kf');
    const rooms = [];
    for (let i = 0; i < ROOMS; i++) rooms.push((await createRoom(srv, u)).id);
    await sendMessages(srv, u, rooms, 0, per, ` ${crypto.randomBytes(500).toString('hex')}`);
    assert.equal(metricSum((await metrics(srv)).values, 'chatd_exporter_events_produced_total'), undefined, 'no exporter, no series');
    await srv.stop({ removeDataDir: false });

    assert.equal(await mock.command('produce-errors 1 87'), 'OK'); // INVALID_RECORD: permanent
    srv = await startChat({ ...FAST, 'kafka-brokers': mock.bootstrap }, { dataDir });

    const want = ROOMS * per;
    const a = await waitExported(mock.bootstrap, want);
    console.log(`kafka export after a failed request: ${a.distinct} distinct messages, ${a.duplicates} duplicates`);
    checkRooms(a, per);

    // The consumer catches up: position = head, lag 0 (polled: the save follows the last batch).
    let v;
    let text;
    for (let i = 0; ; i++) {
      ({ values: v, text } = await metrics(srv));
      const lag = metricSum(v, 'chatd_outbox_consumer_lag_events', { consumer: 'exporter' });
      if (lag === 0 || i > 100) break;
      await sleep(200);
    }
    const c = { consumer: 'exporter' };
    assert.equal(metricSum(v, 'chatd_outbox_consumer_lag_events', c), 0);
    const pos = metricSum(v, 'chatd_outbox_consumer_position', c);
    assert.ok(pos >= want, `position ${pos}`);
    assert.equal(metricSum(v, 'chatd_outbox_head_position', c), pos);
    assert.ok(metricSum(v, 'chatd_outbox_batches_refused_total', c) >= 1, 'the failed batch was refused (in part)');
    assert.ok(metricSum(v, 'chatd_outbox_batches_handled_total', c) >= 1);
    assert.ok(metricSum(v, 'chatd_exporter_delivery_failures_total') >= 1, 'delivery failures counted');
    assert.ok(metricSum(v, 'chatd_exporter_producer_restarts_total') >= 1, 'the producer was replaced');
    assert.ok(metricSum(v, 'chatd_exporter_events_produced_total') >= pos, 'every event produced');
    const pt = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.equal(pt.status, 0, `promtool check metrics:\n${pt.stdout}${pt.stderr}`);
    await srv.stop();
    srv = null;
  });
});
