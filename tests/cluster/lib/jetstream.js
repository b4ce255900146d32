'use strict';
// Reading a JetStream stream in the cluster tests with build-test/js_dump (Debian has no `nats`
// CLI, and the tests use no NATS client library): dump() gives {info, msgs} or null while the
// stream does not exist; waitDump() polls until pred holds.

const { execFile } = require('node:child_process');
const path = require('node:path');
const { sleep, BIN } = require('../../e2e/lib/server');

const JS_DUMP = path.join(path.dirname(BIN), 'js_dump');

function dump(urls, stream = 'CHATD_EVENTS') {
  return new Promise((resolve) => {
    execFile(JS_DUMP, [urls, stream], { maxBuffer: 64 * 1024 * 1024, timeout: 30000 }, (err, stdout) => {
      if (err) return resolve(null); // not created yet
      const lines = stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      resolve({ info: lines[0], msgs: lines.slice(1) });
    });
  });
}

async function waitDump(urls, pred, ms, what) {
  const end = Date.now() + ms;
  let d;
  for (;;) {
    d = await dump(urls);
    if (d && pred(d)) return d;
    if (Date.now() > end) throw new Error(`JetStream: ${what} not seen in ${ms} ms: ${d ? JSON.stringify(d.info) : 'no stream'}`);
    await sleep(500);
  }
}

module.exports = { JS_DUMP, dump, waitDump };
