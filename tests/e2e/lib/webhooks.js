'use strict';
// A webhook receiver for the tests: an HTTP server on 127.0.0.1 that verifies every request's
// X-Chatd-Signature (HMAC-SHA256 of "<t>.<body>" with the shared secret, the way
// docs/INTEGRATIONS.md tells integrators to), dedupes by X-Chatd-Event-Id and counts
// duplicates, and answers 500 to the first `failFirst` attempts of every event id (or to all of
// them with failAll) so the engine's retries are exercised.

const crypto = require('node:crypto');
const http = require('node:http');
const { sleep } = require('./server');

/** true when header "t=<unix>,v1=<hex>" signs body with secret (and t is within toleranceS). */
function verifySignature(secret, header, body, toleranceS = 300) {
  const parts = Object.fromEntries(
    String(header || '')
      .split(',')
      .map((kv) => kv.split('=', 2)),
  );
  if (!parts.t || !parts.v1) return false;
  const expected = crypto.createHmac('sha256', secret).update(`${parts.t}.${body}`).digest('hex');
  const a = Buffer.from(expected);
  const b = Buffer.from(parts.v1);
  if (a.length !== b.length || !crypto.timingSafeEqual(a, b)) return false;
  return Math.abs(Date.now() / 1000 - Number(parts.t)) <= toleranceS;
}

class WebhookReceiver {
  constructor({ secret, failFirst = 0, failAll = false } = {}) {
    this.secret = secret;
    this.failFirst = failFirst;
    this.failAll = failAll;
    this.events = new Map(); // event id -> parsed body (first successful delivery)
    this.attempts = new Map(); // event id -> requests seen
    this.duplicates = 0; // successful deliveries of an id already delivered
    this.badSignatures = 0;
    this.requests = 0;
    this.server = null;
    this.port = 0;
  }

  async start() {
    this.server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        this.requests++;
        if (!verifySignature(this.secret, req.headers['x-chatd-signature'], body)) {
          this.badSignatures++;
          res.writeHead(401).end();
          return;
        }
        const id = req.headers['x-chatd-event-id'];
        const n = (this.attempts.get(id) || 0) + 1;
        this.attempts.set(id, n);
        if (this.failAll || n <= this.failFirst) {
          res.writeHead(500).end('try again');
          return;
        }
        if (this.events.has(id)) this.duplicates++;
        else this.events.set(id, JSON.parse(body));
        res.writeHead(204).end();
      });
    });
    await new Promise((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = this.server.address().port;
    return this;
  }

  get url() {
    return `http://127.0.0.1:${this.port}/hook`;
  }

  /** Resolves once pred(this) holds; rejects after timeoutMs with what was received. */
  async waitFor(pred, timeoutMs = 20000, what = 'condition') {
    const deadline = Date.now() + timeoutMs;
    while (!pred(this)) {
      if (Date.now() > deadline) {
        throw new Error(
          `webhook receiver: ${what} not met in ${timeoutMs} ms (events ${this.events.size}, ` +
            `requests ${this.requests}, bad signatures ${this.badSignatures})`,
        );
      }
      await sleep(50);
    }
  }

  close() {
    if (!this.server) return Promise.resolve();
    const done = new Promise((resolve) => this.server.close(() => resolve()));
    this.server.closeAllConnections();
    return done;
  }
}

module.exports = { WebhookReceiver, verifySignature };
