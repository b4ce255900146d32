'use strict';
// The server API (/v1/server/...) from a test: API keys made with the real CLI (`chatd apikey`,
// on the server's own storage: its --data-dir, or its --store-url on PostgreSQL), and calls
// with a key.

const { execFileSync } = require('node:child_process');
const { BIN } = require('./server');
const { request } = require('./http');

/** Run `chatd apikey <args...>` on srv's storage: {code, stdout, stderr}. */
function apikeyCli(srv, args) {
  const storage = ['--data-dir', srv.dataDir];
  const i = srv.args.indexOf('--store-url');
  if (i >= 0) storage.push('--store-url', srv.args[i + 1]);
  const env = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('CHATD_')) env[k] = v;
  try {
    const stdout = execFileSync(BIN, ['apikey', ...args, ...storage], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    return { code: 0, stdout, stderr: '' };
  } catch (e) {
    return { code: e.status, stdout: e.stdout || '', stderr: e.stderr || '' };
  }
}

/** A new API key: {key, id} (id as `chatd apikey list` shows it). */
function createKey(srv, name) {
  const r = apikeyCli(srv, ['create', '--name', name]);
  if (r.code !== 0) throw new Error(`apikey create: ${r.code} ${r.stderr}`);
  const key = r.stdout.trim();
  const list = apikeyCli(srv, ['list']).stdout.trim().split('\n');
  const row = list.reverse().find((l) => l.split('\t')[1] === name);
  return { key, id: row.split('\t')[0] };
}

/** A server API client for key: get/post/patch/del. */
function serverApi(srv, key) {
  return {
    get: (p, opts = {}) => request(srv, 'GET', p, { token: key, ...opts }),
    post: (p, json) => request(srv, 'POST', p, { token: key, json }),
    patch: (p, json) => request(srv, 'PATCH', p, { token: key, json }),
    del: (p) => request(srv, 'DELETE', p, { token: key }),
  };
}

module.exports = { apikeyCli, createKey, serverApi };
