'use strict';
// /metrics for the outbox consumers (docs/OPERATIONS.md): with a webhook endpoint and the notifier
// configured, the consumers `webhooks` and `notifier` show their position, the outbox head they
// last read and the lag between them, and their batches; messages move the head, then the
// positions catch up (lag 0) with more batches handled. No relay or exporter runs here: their
// series are absent. The exposition passes `promtool check metrics`. (The exporter's series
// under failure: kafka_export.test.js; the relay's: tests/cluster/relay_order.test.js.)

const { describe, it, after } = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { startChat, newUser, api, createRoom, sleep } = require('./lib/chat');
const { metrics, metricSum } = require('./lib/http');
const { WebhookReceiver } = require('./lib/webhooks');

const SECRET = 'whsec-test-0123456789';
const CONSUMERS = ['webhooks', 'notifier'];

async function caughtUp(srv, minPos) {
  for (let i = 0; ; i++) {
    const m = await metrics(srv);
    const ok = CONSUMERS.every(
      (c) =>
        metricSum(m.values, 'chatd_outbox_consumer_lag_events', { consumer: c }) === 0 &&
        metricSum(m.values, 'chatd_outbox_consumer_position', { consumer: c }) >= minPos,
    );
    if (ok) return m;
    if (i > 300) assert.fail(`consumers not caught up:\n${m.text.split('\n').filter((l) => l.startsWith('chatd_outbox')).join('\n')}`);
    await sleep(100);
  }
}

describe('outbox consumer metrics', () => {
  let srv;
  let rcv;
  after(async () => {
    if (srv) await srv.kill();
    if (rcv) await rcv.close();
  });

  it('show each consumer position, head and lag, and move as events are handled', async () => {
    rcv = await new WebhookReceiver({ secret: SECRET }).start();
    srv = await startChat({
      'msg-rate': 100000,
      'msg-burst': 100000,
      'webhook-secret': SECRET,
      'webhook-url': rcv.url,
      'webhook-poll-ms': 50,
      'notify-webhook-url': rcv.url,
    });
    const a = await newUser(srv, 'om');
    const b = await newUser(srv, 'on');
    const room = await createRoom(srv, a, [b]);
    const first = await caughtUp(srv, 1);
    const pos0 = metricSum(first.values, 'chatd_outbox_consumer_position', { consumer: 'webhooks' });
    const handled0 = metricSum(first.values, 'chatd_outbox_batches_handled_total', { consumer: 'webhooks' });
    for (const c of CONSUMERS) {
      assert.equal(
        metricSum(first.values, 'chatd_outbox_head_position', { consumer: c }),
        metricSum(first.values, 'chatd_outbox_consumer_position', { consumer: c }),
      );
      assert.equal(metricSum(first.values, 'chatd_outbox_batches_refused_total', { consumer: c }), 0);
    }
    assert.equal(metricSum(first.values, 'chatd_relay_events_published_total'), undefined);
    assert.equal(metricSum(first.values, 'chatd_exporter_events_produced_total'), undefined);

    for (let i = 0; i < 30; i++) {
      const r = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: `m${i}`, client_msg_id: `om${i}` });
      assert.equal(r.status, 201, r.text);
    }
    const m = await caughtUp(srv, pos0 + 30);
    for (const c of CONSUMERS) {
      const pos = metricSum(m.values, 'chatd_outbox_consumer_position', { consumer: c });
      assert.ok(pos >= pos0 + 30, `${c}: position ${pos} moved past the 30 messages`);
      assert.equal(metricSum(m.values, 'chatd_outbox_head_position', { consumer: c }), pos);
    }
    assert.ok(metricSum(m.values, 'chatd_outbox_batches_handled_total', { consumer: 'webhooks' }) > handled0);
    const pt = spawnSync('promtool', ['check', 'metrics'], { input: m.text, encoding: 'utf8' });
    assert.equal(pt.status, 0, `promtool check metrics:\n${pt.stdout}${pt.stderr}`);
    await srv.stop();
    srv = null;
  });
});
