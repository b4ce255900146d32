'use strict';
// The data directory holds password hashes, messages and the JWT signing keys: whatever the
// umask chatd starts with, and even in an existing directory that others can enter, every file
// it creates is 0600 and the directory 0700; files and a directory left open by an older
// version are tightened at start (with a warning in the log).

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { startServer } = require('./lib/server');
const { registerUser } = require('./lib/http');

const FILES = ['chatd.db', 'chatd.db-wal', 'chatd.db-shm', 'jwt.keys', 'chatd.lock'];
const mode = (p) => fs.statSync(p).mode & 0o777;
const octal = (m) => '0' + m.toString(8);

function assertPrivate(dir) {
  assert.equal(octal(mode(dir)), '0700', `mode of ${dir}`);
  for (const f of FILES) {
    const p = path.join(dir, f);
    assert.ok(fs.existsSync(p), `${f} exists`);
    assert.equal(octal(mode(p)), '0600', `mode of ${f}`);
  }
}

test('umask 022 and an existing 0755 directory: files 0600, directory 0700', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-modes-'));
  const oldMask = process.umask(0o022); // inherited by the spawned chatd
  let srv;
  try {
    fs.chmodSync(dir, 0o755);
    srv = await startServer({ dataDir: dir });
    await registerUser(srv); // a commit: the WAL and its index exist now
    assertPrivate(dir);
    await srv.stop();

    // As an older chatd (or a copy) may have left them: readable by everyone.
    for (const f of FILES) fs.chmodSync(path.join(dir, f), 0o644);
    fs.chmodSync(dir, 0o755);
    srv = await startServer({ dataDir: dir });
    await registerUser(srv);
    assertPrivate(dir);
    const warned = srv.logs().filter((l) => l.level === 'warn' && /mode set to/.test(l.msg));
    assert.ok(warned.some((l) => l.dir === dir), JSON.stringify(warned));
    assert.ok(warned.some((l) => l.path === path.join(dir, 'chatd.db')), JSON.stringify(warned));
    await srv.stop();
  } catch (e) {
    if (srv) await srv.kill();
    throw e;
  } finally {
    process.umask(oldMask);
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
