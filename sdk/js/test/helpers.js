// Test helpers: the real chatd binary (tests/e2e/lib/server.js), users through the SDK's own
// password flow, a TCP proxy that can cut or black-hole a connection, and waiting.
import { createRequire } from 'node:module';
import net from 'node:net';
import { ChatdClient, PasswordAuth } from '../src/index.js';

const require = createRequire(import.meta.url);
const lib = require('../../../tests/e2e/lib/server.js');
const { uniqueName } = require('../../../tests/e2e/lib/http.js');
export const { startServer, freePort, sleep } = lib;

// Chat servers for SDK tests: no rate limits in the way of message floods.
export const SDK_ARGS = { 'msg-rate': 100000, 'msg-burst': 100000, 'auth-rate': 100000 };

export function startChatd(args = {}, options = {}) {
  return startServer({ ...options, args: { ...SDK_ARGS, ...args } });
}

/** A registered user: {auth (PasswordAuth), id, username, password}. */
export async function newUser(url, prefix = 's') {
  const auth = new PasswordAuth({ url });
  const username = uniqueName(prefix);
  const password = 'correct horse battery';
  const { user } = await auth.register(username, password);
  return { auth, id: user.id, username, password };
}

/** A client for user u; collects every event in `seen`. */
export function client(url, u, opts = {}) {
  const c = new ChatdClient({ url, auth: u.auth, reconnectMinMs: 100, reconnectMaxMs: 1000, ...opts });
  c.seen = { message: [], member: [], state: [], synced: [], read: [], typing: [], receipt: [], presence: [] };
  for (const ev of Object.keys(c.seen)) c.on(ev, (m) => c.seen[ev].push(m));
  return c;
}

/** Poll cond() until truthy. */
export async function until(cond, timeoutMs = 15000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/**
 * A TCP proxy to port `target`. proxy.port; proxy.cut() destroys every connection;
 * proxy.blackhole = true drops the bytes from server to client (the client's frames still
 * reach the server: a lost answer); proxy.refuse = true refuses new connections.
 */
export async function tcpProxy(target) {
  const socks = new Set();
  const proxy = { blackhole: false, refuse: false, port: 0 };
  const server = net.createServer((down) => {
    if (proxy.refuse) return down.destroy();
    const up = net.connect({ host: '127.0.0.1', port: target });
    socks.add(down);
    socks.add(up);
    down.on('data', (d) => up.write(d));
    up.on('data', (d) => {
      if (!proxy.blackhole) down.write(d);
    });
    const end = () => {
      down.destroy();
      up.destroy();
      socks.delete(down);
      socks.delete(up);
    };
    down.on('close', end);
    up.on('close', end);
    down.on('error', end);
    up.on('error', end);
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  proxy.port = server.address().port;
  proxy.url = `http://127.0.0.1:${proxy.port}`;
  proxy.cut = () => {
    for (const s of socks) s.destroy();
    socks.clear();
  };
  proxy.close = () => {
    proxy.cut();
    return new Promise((r) => server.close(r));
  };
  return proxy;
}

/** Assert-friendly summary of a list of seqs. */
export function contiguous(seqs) {
  for (let i = 1; i < seqs.length; i++) if (seqs[i] !== seqs[i - 1] + 1) return false;
  return true;
}
