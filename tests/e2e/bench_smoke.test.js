'use strict';
// chatbench smoke: a seconds-long run of the load generator against the real chatd, so the
// benchmark tool keeps working (connect, authenticate, send, receive, JSON result). It asserts
// completeness (nothing missing, doubled or failed), never speed: timing belongs in bench/.
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { startServer, BIN } = require('./lib/server');

const CHATBENCH = path.join(path.dirname(BIN), 'bench', 'chatbench');
const SMOKE = path.resolve(__dirname, '../../bench/smoke.sh');

test('chatbench smoke run against chatd (connections + fanout + mix)', { timeout: 120000 }, async (t) => {
  if (!fs.existsSync(CHATBENCH)) {
    assert.fail(`chatbench not built at ${CHATBENCH}`);
  }
  // Benchmark settings are documented flags: no rate limits, many connections per user.
  const srv = await startServer({ args: { 'rate-limits': 'off', 'max-conns-per-user': '100000' } });
  t.after(() => srv.stop());
  const out = await new Promise((resolve) => {
    execFile('bash', [SMOKE, `ws://127.0.0.1:${srv.port}/`, CHATBENCH], { timeout: 100000 },
      (err, stdout, stderr) => resolve({ code: err ? (err.code ?? 1) : 0, stdout, stderr }));
  });
  assert.equal(out.code, 0, `smoke failed:\n${out.stdout}\n${out.stderr.slice(-2000)}`);
  assert.match(out.stdout, /smoke connections: ok/);
  assert.match(out.stdout, /smoke fanout: ok/);
  assert.match(out.stdout, /smoke mix: ok/);
});
