'use strict';
// The query side of bench/search.sh: sequential GET /v1/search requests over one keep-alive
// connection, one word at a time, and the latency percentiles per word (JSON on stdout).
//   node bench/search_query.js PORT TOKEN QUERIES WORD[:label] ...
const http = require('node:http');

const [port, token, queries, ...words] = process.argv.slice(2);
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

function get(path) {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const req = http.get({ host: '127.0.0.1', port: Number(port), path, agent, headers: { Authorization: `Bearer ${token}` } }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (res.statusCode !== 200) return reject(new Error(`${res.statusCode} ${Buffer.concat(chunks)}`));
        resolve({ ms, body: JSON.parse(Buffer.concat(chunks).toString()) });
      });
    });
    req.on('error', reject);
  });
}

const pct = (sorted, p) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];

(async () => {
  const out = [];
  for (const spec of words) {
    const [word, label = word] = spec.split(':');
    const lat = [];
    let hits = 0;
    await get(`/v1/search?q=${encodeURIComponent(word)}&limit=20`); // warm-up
    for (let i = 0; i < Number(queries); i++) {
      const r = await get(`/v1/search?q=${encodeURIComponent(word)}&limit=20`);
      lat.push(r.ms);
      hits = r.body.messages.length;
    }
    lat.sort((a, b) => a - b);
    out.push({ word, label, queries: lat.length, page_hits: hits, p50_ms: +pct(lat, 50).toFixed(2),
      p99_ms: +pct(lat, 99).toFixed(2), max_ms: +lat[lat.length - 1].toFixed(2) });
  }
  console.log(JSON.stringify(out, null, 1));
  agent.destroy();
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
