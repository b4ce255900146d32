'use strict';
// Start and stop the real chatd binary for black-box tests.
//
// Each server gets a free 127.0.0.1 port, a fresh temporary --data-dir (unless one is passed),
// and a captured stderr (chatd logs one JSON object per line there). stop() sends SIGTERM to
// the PID we spawned (never anything else), waits for the exit and asserts exit code 0, and
// that no sanitizer report appeared in the log.

const { spawn, execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const assert = require('node:assert/strict');

const BIN = process.env.CHATD_BIN
  ? path.resolve(process.env.CHATD_BIN)
  : path.resolve(__dirname, '../../../build-e2e/chatd');

// Settings every test server gets unless the test overrides them.
// Argon2id is made cheap here so the suite runs fast; production keeps the defaults
// (--pwhash-ops 2 --pwhash-mem-kib 65536). --auth-rate is high so only the rate-limit test
// ever sees a 429.
const FAST_DEFAULTS = {
  'pwhash-ops': '1',
  'pwhash-mem-kib': '8192',
  'auth-rate': '10000',
  'drain-timeout': '5',
  'log-level': 'info',
};

const SANITIZER_RE = /ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|ThreadSanitizer/;

// CHATD_TEST_STORE_URL=postgres://... runs every server on PostgreSQL (scripts/test.sh sets it
// for its second pass over the suite). Each data directory gets its own schema in that database
// (created on first start, dropped with a data directory this file removes), so a server
// restarted on the same --data-dir finds its data again and tests stay independent.
const PG_BASE = process.env.CHATD_TEST_STORE_URL || '';

function pgSql(sql) {
  execFileSync('psql', ['-X', '-q', '-v', 'ON_ERROR_STOP=1', PG_BASE, '-c',
    `SET client_min_messages = warning; ${sql}`], { stdio: ['ignore', 'ignore', 'pipe'] });
}

function pgSchemaOf(dataDir) {
  const h = crypto.createHash('sha1').update(path.resolve(dataDir)).digest('hex');
  return `e2e_${h.slice(0, 24)}`;
}

/** The --store-url of a data directory's schema (created if missing). */
function pgStoreUrl(dataDir) {
  const schema = pgSchemaOf(dataDir);
  pgSql(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
  return `${PG_BASE}${PG_BASE.includes('?') ? '&' : '?'}options=-csearch_path%3D${schema}`;
}

function pgDropSchema(dataDir) {
  try {
    pgSql(`DROP SCHEMA IF EXISTS ${pgSchemaOf(dataDir)} CASCADE`);
  } catch {
    /* best effort: scripts/test.sh drops every e2e_ schema before its run */
  }
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** A port that is free on 127.0.0.1 right now (the kernel picks it). */
function canListen(port) {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.unref();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/**
 * A loopback port nobody listens on, with the `count - 1` ports after it free as well. Drawn
 * below the kernel's ephemeral range (net.ipv4.ip_local_port_range, 32768-60999 by default):
 * a port the kernel handed out by bind(0) can be taken as the source port of any outgoing
 * connection (a node's to PostgreSQL, nginx's to a node) before the server that was meant to
 * listen on it starts, which made a cluster test fail with "address already in use".
 */
async function freePort(count = 1) {
  for (let tries = 0; tries < 200; tries++) {
    const base = 20000 + Math.floor(Math.random() * (12700 - count));
    let ok = true;
    for (let i = 0; i < count && ok; i++) ok = await canListen(base + i);
    if (ok) return base;
  }
  throw new Error('no free loopback port below the ephemeral range');
}
/** Whether port.. port + count - 1 are all free now. */
freePort.free = async (port, count = 1) => {
  for (let i = 0; i < count; i++) if (!(await canListen(port + i))) return false;
  return true;
};

/** Inodes of the sockets listening on `port` (any address), from /proc/net/tcp{,6}. */
function listeningInodes(port) {
  const hex = port.toString(16).toUpperCase().padStart(4, '0');
  const out = new Set();
  for (const f of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/);
      if (cols.length < 10) continue;
      const local = cols[1];
      if (local.endsWith(':' + hex) && cols[3] === '0A') out.add(cols[9]);
    }
  }
  return out;
}

/** Socket inodes held open by process `pid`. */
function processSocketInodes(pid) {
  const out = new Set();
  let fds;
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(fs.readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(m[1]);
    } catch {
      /* fd closed meanwhile */
    }
  }
  return out;
}

function httpGetStatus(port, urlPath, timeoutMs) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v) => {
      clearTimeout(t);
      sock.destroy();
      resolve(v);
    };
    const t = setTimeout(() => done(0), timeoutMs);
    sock.on('error', () => done(0));
    sock.on('data', (d) => {
      buf += d.toString('latin1');
      const m = /^HTTP\/1\.1 (\d{3})/.exec(buf);
      if (m) done(Number(m[1]));
    });
    sock.on('connect', () =>
      sock.write(`GET ${urlPath} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n`));
  });
}

function toArgs(opts) {
  const args = [];
  for (const [k, v] of Object.entries(opts)) {
    if (v === undefined || v === null) continue;
    args.push(`--${k}`, String(v));
  }
  return args;
}

class ChatdServer {
  constructor() {
    this.proc = null;
    this.port = 0;
    this.dataDir = null;
    this.ownDataDir = false;
    this.stderr = '';
    this.stdout = '';
    this.exited = null; // Promise<{code, signal}>
    this.exitInfo = null;
  }

  get base() {
    return `http://127.0.0.1:${this.port}`;
  }

  get wsUrl() {
    return `ws://127.0.0.1:${this.port}/v1/ws`;
  }

  get pid() {
    return this.proc ? this.proc.pid : 0;
  }

  /** Parsed JSON log lines so far (non-JSON lines, e.g. sanitizer output, are skipped). */
  logs() {
    const out = [];
    for (const line of this.stderr.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        out.push(JSON.parse(line));
      } catch {
        /* partial line */
      }
    }
    return out;
  }

  /** Every complete line of stderr, each parsed; throws on the first that is not one JSON object. */
  jsonLines() {
    const text = this.stderr.slice(0, this.stderr.lastIndexOf('\n') + 1);
    return text
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => {
        let o;
        assert.doesNotThrow(() => (o = JSON.parse(l)), `not JSON: ${JSON.stringify(l)}`);
        assert.equal(typeof o, 'object', l);
        return o;
      });
  }

  /** The last `n` lines of stderr, for failure messages. */
  tail(n = 30) {
    return this.stderr.split('\n').slice(-n).join('\n');
  }

  isRunning() {
    return this.proc !== null && this.exitInfo === null;
  }

  /** Wait for the process to exit (without signalling it); rejects after timeoutMs. */
  async waitExit(timeoutMs = 10000) {
    let timer;
    const timeout = new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`chatd (pid ${this.pid}) did not exit within ${timeoutMs} ms\n${this.tail()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * SIGTERM our own child, wait for it, and assert a clean exit (code 0, no sanitizer report).
   * With {expectClean:false} only waits.
   */
  async stop({ timeoutMs = 15000, expectClean = true, removeDataDir = true } = {}) {
    if (!this.proc) return null;
    if (this.exitInfo === null) this.proc.kill('SIGTERM');
    let info;
    try {
      info = await this.waitExit(timeoutMs);
    } catch (e) {
      this.proc.kill('SIGKILL'); // our own child only, by PID
      await this.exited;
      throw e;
    } finally {
      if (removeDataDir && this.ownDataDir) this.removeDataDir();
    }
    if (expectClean) {
      assert.equal(info.signal, null, `chatd died of signal ${info.signal}\n${this.tail()}`);
      assert.equal(info.code, 0, `chatd exit code ${info.code}\n${this.tail()}`);
      this.assertNoSanitizerReport();
    }
    return info;
  }

  /** Kill with SIGKILL (cleanup after a failed test); never asserts. */
  async kill() {
    if (!this.proc) return;
    if (this.exitInfo === null) {
      this.proc.kill('SIGKILL');
      await this.exited;
    }
    if (this.ownDataDir) this.removeDataDir();
  }

  removeDataDir() {
    if (!this.dataDir) return;
    fs.rmSync(this.dataDir, { recursive: true, force: true });
    if (this.pgSchema) pgDropSchema(this.dataDir);
  }

  assertNoSanitizerReport() {
    const m = SANITIZER_RE.exec(this.stderr);
    assert.equal(m, null, `sanitizer report in chatd's stderr:\n${this.tail(60)}`);
  }
}

/**
 * Start chatd. options:
 *   args:      extra flags as an object {'ws-idle': 2, ...} (merged over FAST_DEFAULTS; a value
 *              of null drops a default) or an array of raw arguments appended after them
 *   env:       extra environment variables (CHATD_* from the caller's environment are removed)
 *   dataDir:   use this data directory (kept on stop); default: a fresh temp dir (removed)
 *   listen:    false to not pass --listen (the test sets it some other way); then `port` must be
 *              given so readiness can be checked
 *   port:      port to use (default: a free one)
 *   readyTimeoutMs
 */
async function startServer(options = {}) {
  const { readyTimeoutMs = 15000 } = options;
  let lastErr;
  for (let attempt = 0; attempt < 5; attempt++) {
    const srv = new ChatdServer();
    try {
      await launch(srv, options, readyTimeoutMs);
      return srv;
    } catch (e) {
      lastErr = e;
      await srv.kill();
      if (!e.retryable) throw e;
    }
  }
  throw lastErr;
}

async function launch(srv, options, readyTimeoutMs) {
  const port = options.port || (await freePort());
  srv.port = port;
  if (options.dataDir) {
    srv.dataDir = options.dataDir;
  } else {
    srv.dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-e2e-'));
    srv.ownDataDir = true;
  }
  let flags = { ...FAST_DEFAULTS };
  let extra = [];
  if (Array.isArray(options.args)) extra = options.args;
  else if (options.args) flags = { ...flags, ...options.args };
  if (options.listen !== false) flags.listen = `127.0.0.1:${port}`;
  if (!('data-dir' in flags) && options.dataDirFlag !== false) flags['data-dir'] = srv.dataDir;
  if (PG_BASE && !('store-url' in flags) && !(options.env && 'CHATD_STORE_URL' in options.env)) {
    flags['store-url'] = pgStoreUrl(flags['data-dir'] || srv.dataDir);
    srv.pgSchema = true;
  }
  const args = [...toArgs(flags), ...extra];

  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHATD_')) env[k] = v;
  Object.assign(env, options.env || {});

  const proc = spawn(BIN, args, { env, cwd: options.cwd || srv.dataDir, stdio: ['ignore', 'pipe', 'pipe'] });
  srv.proc = proc;
  srv.args = args;
  srv.exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      srv.exitInfo = { code, signal };
      resolve(srv.exitInfo);
    });
  });
  proc.on('error', (e) => {
    srv.stderr += `spawn error: ${e.message}\n`;
  });
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (d) => {
    srv.stderr += d;
    if (process.env.CHATD_E2E_VERBOSE) process.stderr.write(d);
  });
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (d) => {
    srv.stdout += d;
  });

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (srv.exitInfo) {
      const e = new Error(
        `chatd exited during start (code ${srv.exitInfo.code}, signal ${srv.exitInfo.signal})\n${srv.tail()}`,
      );
      e.retryable = /cannot listen/.test(srv.stderr) && !options.port;
      throw e;
    }
    if ((await httpGetStatus(port, '/readyz', 1000)) === 200) break;
    if (Date.now() > deadline) throw new Error(`chatd not ready within ${readyTimeoutMs} ms\n${srv.tail()}`);
    await sleep(50);
  }
  // chatd listens with SO_REUSEPORT: make sure no other process (say, a concurrent test run)
  // shares this port, or our connections could land on someone else's server.
  const mine = processSocketInodes(proc.pid);
  for (const inode of listeningInodes(port)) {
    if (!mine.has(inode)) {
      const e = new Error(`port ${port} is shared with another process`);
      e.retryable = !options.port;
      throw e;
    }
  }
  return srv;
}

/** Run chatd to completion (for --help, --version, bad flags). Resolves {code, signal, stdout, stderr}. */
function runOnce(args, { env = {}, timeoutMs = 10000, cwd } = {}) {
  return new Promise((resolve, reject) => {
    const e = {};
    for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHATD_')) e[k] = v;
    Object.assign(e, env);
    const proc = spawn(BIN, args, { env: e, cwd: cwd || os.tmpdir(), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d) => (stdout += d));
    proc.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`chatd ${args.join(' ')} did not exit within ${timeoutMs} ms`));
    }, timeoutMs);
    proc.on('error', reject);
    proc.on('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}

module.exports = { startServer, runOnce, freePort, sleep, BIN, ChatdServer, PG_BASE, pgStoreUrl, pgSchemaOf };
