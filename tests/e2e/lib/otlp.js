'use strict';
// A minimal OTLP/HTTP JSON trace receiver for the tracing tests: every POST body is parsed and
// its spans kept, flattened with their resource attributes (span.resource, span.attrs as plain
// objects). Listens on 127.0.0.1, a free port.

const http = require('node:http');
const { sleep } = require('./server');

/** A minimal OTLP/HTTP JSON receiver: every span it got, flattened with its resource. */
async function startReceiver() {
  const spans = [];
  const posts = [];
  const srv = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch (e) {
        posts.push({ url: req.url, error: e.message });
        res.writeHead(400).end();
        return;
      }
      posts.push({ url: req.url, contentType: req.headers['content-type'] });
      for (const rs of body.resourceSpans || []) {
        const resource = attrs(rs.resource && rs.resource.attributes);
        for (const ss of rs.scopeSpans || [])
          for (const s of ss.spans || []) spans.push({ ...s, resource, attrs: attrs(s.attributes) });
      }
      res.writeHead(200, { 'Content-Type': 'application/json' }).end('{}');
    });
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return {
    spans,
    posts,
    url: `http://127.0.0.1:${srv.address().port}`,
    close: () => new Promise((r) => srv.close(r)),
    async waitFor(pred, what, timeoutMs = 10000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const s = spans.find(pred);
        if (s) return s;
        if (Date.now() > until) throw new Error(`no span ${what}; got ${JSON.stringify(spans.map((x) => x.name))}`);
        await sleep(50);
      }
    },
  };
}

function attrs(list) {
  const o = {};
  for (const a of list || []) {
    const v = a.value || {};
    o[a.key] = 'stringValue' in v ? v.stringValue : 'intValue' in v ? Number(v.intValue) : v;
  }
  return o;
}

module.exports = { startReceiver, attrs };
