'use strict';
// Metrics for operators: the exposition passes `promtool check metrics` (Debian's prometheus,
// installed by scripts/deps.sh), the chat-level series move with what the test does (messages
// stored, deliveries, online users, syncs, commit and fanout histograms), build info and process
// metrics are there, /metrics can move to an internal listener (--metrics-listen), the alert
// rules pass `promtool check rules`, and every query of the Grafana dashboard (and of the rules)
// names a series chatd exports.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const http = require('node:http');
const { execFileSync, spawnSync } = require('node:child_process');
const { startServer, freePort, sleep } = require('./lib/server');
const { get, metrics, metricSum } = require('./lib/http');
const { startChat, newUser, createRoom, connect } = require('./lib/chat');

const ROOT = path.resolve(__dirname, '../..');
const RULES = path.join(ROOT, 'deploy/prometheus/alerts.yml');
const DASHBOARD = path.join(ROOT, 'deploy/grafana/chatd.json');

function promtool(args, input) {
  const r = spawnSync('promtool', args, { input, encoding: 'utf8' });
  if (r.error) throw new Error(`promtool not runnable (scripts/deps.sh installs Debian's prometheus): ${r.error.message}`);
  return r;
}

function checkMetrics(text) {
  const r = promtool(['check', 'metrics'], text);
  assert.equal(r.status, 0, `promtool check metrics:\n${r.stdout}${r.stderr}`);
}

/** Metric families of an exposition: name -> type (from the # TYPE lines). */
function families(text) {
  const out = new Map();
  for (const m of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) out.set(m[1], m[2]);
  return out;
}

/** Does a series name belong to one of the families? (histograms: _bucket, _sum, _count) */
function exported(fams, name) {
  if (fams.has(name)) return true;
  const m = /^(.*)_(bucket|sum|count)$/.exec(name);
  return !!m && fams.get(m[1]) === 'histogram';
}

const PROMQL_WORDS = new Set([
  'sum', 'min', 'max', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'time', 'by', 'without',
  'or', 'and', 'unless', 'on', 'ignoring', 'group_left', 'group_right', 'bool', 'offset', 'label_values', 'topk',
  'delta', 'deriv', 'abs', 'clamp_min', 'clamp_max', 'vector', 'scalar',
  'instance', // label_values(metric, label)'s label
]);

/** The metric names a PromQL expression reads (label matchers, strings, ranges and by() lists removed). */
function metricNames(expr) {
  const bare = expr
    .replace(/"(?:[^"\\]|\\.)*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set();
  for (const m of bare.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const w = m[0];
    if (PROMQL_WORDS.has(w) || /^\d/.test(w)) continue;
    names.add(w);
  }
  return [...names];
}

test('the exposition passes promtool and the chat series move with the traffic', async () => {
  const srv = await startChat();
  try {
    const before = await metrics(srv);
    checkMetrics(before.text);
    const fams = families(before.text);
    for (const [name, type] of [
      ['chatd_build_info', 'gauge'],
      ['chatd_messages_stored_total', 'counter'],
      ['chatd_deliveries_total', 'counter'],
      ['chatd_sync_requests_total', 'counter'],
      ['chatd_sync_replayed_entries_total', 'counter'],
      ['chatd_online_users', 'gauge'],
      ['chatd_ready', 'gauge'],
      ['chatd_component_up', 'gauge'],
      ['chatd_store_commit_duration_seconds', 'histogram'],
      ['chatd_fanout_duration_seconds', 'histogram'],
      ['chatd_trace_spans_dropped_total', 'counter'],
      ['process_cpu_seconds_total', 'counter'],
      ['process_resident_memory_bytes', 'gauge'],
      ['process_open_fds', 'gauge'],
      ['process_max_fds', 'gauge'],
      ['process_start_time_seconds', 'gauge'],
    ])
      assert.equal(fams.get(name), type, `${name} ${type}`);
    const v0 = before.values;
    assert.equal(metricSum(v0, 'chatd_build_info', { store: process.env.CHATD_TEST_STORE_URL ? 'postgres' : 'sqlite' }) ?? metricSum(v0, 'chatd_build_info'), 1);
    assert.ok(before.text.includes('chatd_build_info{version="'));
    assert.equal(metricSum(v0, 'chatd_component_up', { component: 'store' }), 1);
    assert.equal(metricSum(v0, 'chatd_ready'), 1);
    assert.ok(metricSum(v0, 'process_resident_memory_bytes') > 1e6);
    assert.ok(metricSum(v0, 'process_open_fds') >= 3);
    const start = metricSum(v0, 'process_start_time_seconds');
    assert.ok(Math.abs(start - Date.now() / 1000) < 600, `start time ${start}`);

    const a = await newUser(srv, 'ma');
    const b = await newUser(srv, 'mb');
    const room = await createRoom(srv, a, [b]);
    const ca = await connect(srv, a);
    const cb = await connect(srv, b);
    try {
      const mid = (await metrics(srv)).values;
      assert.equal(metricSum(mid, 'chatd_online_users'), metricSum(v0, 'chatd_online_users') + 2);
      for (let i = 0; i < 5; i++) await ca.sendMsg(room.id, `m${i}`, `cm-${i}`);
      await ca.sendMsg(room.id, 'm0 again', 'cm-0'); // a resend: not stored twice
      await cb.waitFor(() => cb.entries(room.id).filter((m) => m.type === 'message').length >= 5, 10000, 'five messages');
      await sleep(100); // the delivery counters are published once per loop iteration
      const after = await metrics(srv);
      checkMetrics(after.text);
      const v1 = after.values;
      const d = (name) => metricSum(v1, name) - (metricSum(v0, name) ?? 0);
      assert.equal(d('chatd_messages_stored_total'), 5);
      assert.ok(d('chatd_deliveries_total') >= 10, `deliveries +${d('chatd_deliveries_total')}`); // 5 messages to b, 6 acks to a
      assert.ok(d('chatd_sync_requests_total') >= 0);
      assert.ok(d('chatd_store_commit_duration_seconds_count') >= 1);
      assert.ok(d('chatd_fanout_duration_seconds_count') >= 1);
      assert.equal(metricSum(v1, 'chatd_store_commit_duration_seconds_bucket', { le: '+Inf' }), metricSum(v1, 'chatd_store_commit_duration_seconds_count'));
      // A sync of the room from seq 0 replays what is stored.
      const r = await ca.req({ type: 'sync', rooms: { [room.id]: 0 } });
      assert.equal(r.type, 'synced', JSON.stringify(r));
      const v2 = (await metrics(srv)).values;
      assert.ok(metricSum(v2, 'chatd_sync_requests_total') > metricSum(v1, 'chatd_sync_requests_total'));
      assert.ok(metricSum(v2, 'chatd_sync_replayed_entries_total') >= metricSum(v1, 'chatd_sync_replayed_entries_total') + 5);
    } finally {
      await ca.close();
      await cb.close();
    }
    const end = (await metrics(srv)).values;
    await sleep(100);
    assert.equal(metricSum((await metrics(srv)).values, 'chatd_online_users'), metricSum(v0, 'chatd_online_users'), JSON.stringify(metricSum(end, 'chatd_online_users')));
  } finally {
    await srv.stop();
  }
});

function rawGet(port, p) {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path: p, agent: false }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode, text, headers: res.headers }));
      })
      .on('error', reject);
  });
}

test('--metrics-listen serves /metrics on its own address only', async () => {
  const port = await freePort();
  const srv = await startServer({ args: { 'metrics-listen': `127.0.0.1:${port}` } });
  try {
    assert.equal((await get(srv, '/metrics')).status, 404);
    const r = await rawGet(port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.headers['content-type'], /^text\/plain/);
    checkMetrics(r.text);
    assert.ok(r.text.includes('chatd_build_info'));
    assert.equal((await rawGet(port, '/other')).status, 404);
    assert.equal((await get(srv, '/healthz')).status, 200);
  } finally {
    await srv.stop();
  }
  // A bad address refuses to start.
  await assert.rejects(startServer({ args: { 'metrics-listen': 'nonsense' }, readyTimeoutMs: 3000 }));
});

test('alert rules pass promtool; the dashboard and the rules only read series chatd exports', async () => {
  const r = promtool(['check', 'rules', RULES]);
  assert.equal(r.status, 0, `promtool check rules:\n${r.stdout}${r.stderr}`);

  // With a notification receiver configured, an outbox consumer (the notifier) runs: the
  // consumers' series exist (ChatdOutboxLagging reads them). Nothing listens there.
  const srv = await startServer({ args: { 'notify-webhook-url': 'http://127.0.0.1:9/notify', 'webhook-secret': 'rules-test-secret' } });
  let fams;
  try {
    fams = families((await metrics(srv)).text);
  } finally {
    await srv.stop();
  }
  const dash = JSON.parse(fs.readFileSync(DASHBOARD, 'utf8'));
  assert.equal(typeof dash.title, 'string');
  assert.ok(Array.isArray(dash.panels) && dash.panels.length >= 10);
  let queries = 0;
  for (const p of dash.panels) {
    assert.ok(Array.isArray(p.targets) && p.targets.length > 0, `panel ${p.title} has queries`);
    for (const t of p.targets) {
      const names = metricNames(t.expr);
      assert.ok(names.length > 0, `panel ${p.title}: ${t.expr} names no metric`);
      for (const n of names) assert.ok(exported(fams, n), `panel ${p.title}: ${n} is not exported by chatd`);
      queries++;
    }
  }
  for (const v of dash.templating.list)
    if (v.query && v.query.query) for (const n of metricNames(v.query.query)) assert.ok(exported(fams, n), `variable ${v.name}: ${n}`);
  assert.ok(queries >= 20);

  // The rules: every series but Prometheus's own `up` is chatd's.
  const rules = fs.readFileSync(RULES, 'utf8');
  const exprs = [...rules.matchAll(/expr: (?:\|\n((?:\s{10,}.*\n)+)|(.*))/g)].map((m) => (m[1] || m[2]).trim());
  assert.ok(exprs.length >= 10);
  for (const e of exprs)
    for (const n of metricNames(e)) if (n !== 'up') assert.ok(exported(fams, n), `rule ${e}: ${n} is not exported`);
  // metricNames itself: a sanity check on one known expression.
  assert.deepEqual(metricNames('histogram_quantile(0.99, sum by (le) (rate(chatd_fanout_duration_seconds_bucket{instance=~"$i"}[5m])))'), [
    'chatd_fanout_duration_seconds_bucket',
  ]);
  execFileSync('promtool', ['--version'], { stdio: 'ignore' });
});
