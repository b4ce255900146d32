'use strict';
// Attachments (docs/PROTOCOL.md, "Attachments"): POST /v1/uploads limits (size, type, name),
// the download authorization matrix, range requests, ETag / If-None-Match, attachments on a
// send (REST and WebSocket), and the expiry of unreferenced uploads.

const { describe, it, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const { startChat, newUser, api, createRoom, connect, withClients, nextId } = require('./lib/chat');
const { request, expectError } = require('./lib/http');
const { sleep } = require('./lib/server');
const path_ = require('node:path').join;

const T = { timeout: 60000 };

/** POST /v1/uploads with a raw body. opts: {type, name, chunked, headers}. */
function upload(srv, u, body, { type = 'text/plain', name, chunked = false, headers = {} } = {}) {
  const h = { ...headers };
  if (type !== null) h['Content-Type'] = type;
  if (u) h.Authorization = `Bearer ${u.token}`;
  const q = name === undefined ? '' : `?name=${encodeURIComponent(name)}`;
  if (!chunked) return request(srv, 'POST', `/v1/uploads${q}`, { body, headers: h });
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'POST', path: `/v1/uploads${q}`, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json;
        try { json = JSON.parse(text); } catch { json = undefined; }
        resolve({ status: res.statusCode, headers: res.headers, text, body: json });
      });
    });
    req.on('error', (e) => (e.code === 'ECONNRESET' || e.code === 'EPIPE' ? resolve({ status: 0, reset: true }) : reject(e)));
    // several writes: Transfer-Encoding: chunked, no Content-Length
    for (let off = 0; off < body.length; off += 65536) req.write(body.subarray(off, off + 65536));
    req.end();
  });
}

/** GET /v1/attachments/{id} with the raw bytes. */
function download(srv, u, id, headers = {}) {
  return new Promise((resolve, reject) => {
    const h = { ...headers };
    if (u) h.Authorization = `Bearer ${u.token}`;
    const req = http.request({ host: '127.0.0.1', port: srv.port, method: 'GET', path: `/v1/attachments/${id}`, headers: h, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, bytes: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const sha256 = (b) => crypto.createHash('sha256').update(b).digest('hex');

describe('attachments', () => {
  let srv;
  before(async () => {
    srv = await startChat({ 'max-upload': 8 * 1024 * 1024, 'upload-rate': 1000 });
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  describe('upload', () => {
    it('returns the attachment (id, size, content_type, name, sha256) and the uploader can read it back', T, async () => {
      const u = await newUser(srv, 'up');
      const data = Buffer.from('hello attachments\n');
      const r = await upload(srv, u, data, { type: 'text/plain; charset=utf-8', name: 'notes.txt' });
      assert.equal(r.status, 201, r.text);
      const a = r.body.attachment;
      assert.match(a.id, /^att_[0-9a-f]{32}$/);
      assert.equal(a.size, data.length);
      assert.equal(a.content_type, 'text/plain');
      assert.equal(a.name, 'notes.txt');
      assert.equal(a.sha256, sha256(data));
      const d = await download(srv, u, a.id);
      assert.equal(d.status, 200);
      assert.deepEqual(d.bytes, data);
      assert.equal(d.headers['content-type'], 'text/plain');
      assert.equal(d.headers.etag, `"${a.sha256}"`);
      assert.equal(d.headers['accept-ranges'], 'bytes');
      assert.match(d.headers['content-disposition'], /^attachment; filename="notes.txt"; filename\*=UTF-8''notes.txt$/);
    });

    it('streams a large body (chunked, 6 MiB) and serves it whole', T, async () => {
      const u = await newUser(srv, 'up');
      const data = crypto.randomBytes(6 * 1024 * 1024);
      const r = await upload(srv, u, data, { type: 'image/png', name: 'big.png', chunked: true });
      assert.equal(r.status, 201, r.text);
      assert.equal(r.body.attachment.size, data.length);
      assert.equal(r.body.attachment.sha256, sha256(data));
      const d = await download(srv, u, r.body.attachment.id);
      assert.equal(d.status, 200);
      assert.equal(Number(d.headers['content-length']), data.length);
      assert.equal(sha256(d.bytes), sha256(data));
    });

    it('size: a Content-Length over --max-upload is refused at once (413); a streamed body is cut at the limit (413)', T, async () => {
      const small = await startChat({ 'max-upload': 1000 });
      try {
        const u = await newUser(small, 'up');
        const r = await upload(small, u, Buffer.alloc(1001, 1));
        expectError(assert, r, 413, 'payload_too_large');
        const ok = await upload(small, u, Buffer.alloc(1000, 1));
        assert.equal(ok.status, 201, ok.text);
        const c = await upload(small, u, Buffer.alloc(200000, 1), { chunked: true });
        if (!c.reset) expectError(assert, c, 413, 'payload_too_large');
      } finally {
        await small.stop();
      }
    });

    it('type: only --upload-types (default images, PDF, plain text); a missing type is refused too (415)', T, async () => {
      const u = await newUser(srv, 'up');
      for (const t of ['application/x-msdownload', 'text/html', 'image/svg+xml', null]) {
        const r = await upload(srv, u, Buffer.from('x'), { type: t });
        expectError(assert, r, 415, 'unsupported_media_type');
      }
      for (const t of ['image/png', 'IMAGE/JPEG', 'image/gif', 'image/webp', 'application/pdf']) {
        const r = await upload(srv, u, Buffer.from('x'), { type: t });
        assert.equal(r.status, 201, `${t}: ${r.text}`);
        assert.equal(r.body.attachment.content_type, t.toLowerCase());
      }
    });

    it('name: path, control characters, quotes and surrounding dots removed; long names cut; none = "file"', T, async () => {
      const u = await newUser(srv, 'up');
      const cases = [
        ['../../etc/passwd', 'passwd'],
        ['C:\\Users\\x\\report.pdf', 'report.pdf'],
        ['a\u0001b\u007fc\r\n"d".txt', 'abcd.txt'],
        ['  ..hidden.. ', 'hidden'],
        ['résumé ✓.txt', 'résumé ✓.txt'],
        ['/', 'file'],
      ];
      for (const [given, want] of cases) {
        const r = await upload(srv, u, Buffer.from('x'), { name: given });
        assert.equal(r.status, 201, r.text);
        assert.equal(r.body.attachment.name, want, `name ${JSON.stringify(given)}`);
      }
      const none = await upload(srv, u, Buffer.from('x'));
      assert.equal(none.body.attachment.name, 'file');
      const long = await upload(srv, u, Buffer.from('x'), { name: 'é'.repeat(300) });
      assert.equal(Buffer.byteLength(long.body.attachment.name), 254); // 127 two-byte characters
      const tooLong = await upload(srv, u, Buffer.from('x'), { name: 'x'.repeat(1025) });
      expectError(assert, tooLong, 400, 'invalid_field');
      const d = await download(srv, u, (await upload(srv, u, Buffer.from('x'), { name: 'résumé "1".txt' })).body.attachment.id);
      assert.equal(d.headers['content-disposition'], `attachment; filename="r__sum__ 1.txt"; filename*=UTF-8''r%C3%A9sum%C3%A9%201.txt`);
    });

    it('needs a valid token (401) and a body (400)', T, async () => {
      const r = await upload(srv, null, Buffer.from('x'));
      expectError(assert, r, 401, 'unauthorized');
      const bad = await upload(srv, { token: 'nope' }, Buffer.from('x'));
      expectError(assert, bad, 401, 'unauthorized');
      const u = await newUser(srv, 'up');
      const empty = await request(srv, 'POST', '/v1/uploads', { token: u.token, headers: { 'Content-Type': 'text/plain' } });
      expectError(assert, empty, 400, 'invalid_field');
    });
  });

  describe('download authorization', () => {
    it('uploader, member of the room where it was posted, non-member, kicked member, member added after the post', T, async () => {
      const [owner, member, outsider, kicked, late] = await Promise.all(Array.from({ length: 5 }, () => newUser(srv, 'dl')));
      const room = await createRoom(srv, owner, [member, kicked]);
      const up = await upload(srv, owner, Buffer.from('secret plan'), { name: 'plan.txt' });
      const id = up.body.attachment.id;
      // before it is posted: only the uploader
      assert.equal((await download(srv, owner, id)).status, 200);
      assert.equal((await download(srv, member, id)).status, 404);
      const sent = await api(srv, owner).post(`/v1/rooms/${room.id}/messages`, { body: 'see attached', client_msg_id: nextId('a'), attachments: [id] });
      assert.equal(sent.status, 201, sent.text);
      assert.equal((await download(srv, member, id)).status, 200);
      assert.equal((await download(srv, kicked, id)).status, 200);
      assert.equal((await download(srv, outsider, id)).status, 404);
      // kicked: no longer
      const k = await api(srv, owner).del(`/v1/rooms/${room.id}/members/${kicked.id}`);
      assert.ok(k.status === 200 || k.status === 204, k.text);
      assert.equal((await download(srv, kicked, id)).status, 404);
      // added after the post: the same window as history (seq > joined_seq)
      const add = await api(srv, owner).post(`/v1/rooms/${room.id}/members`, { user_id: late.id });
      assert.ok(add.status === 200 || add.status === 201, add.text);
      assert.equal((await download(srv, late, id)).status, 404);
      // a malformed or unknown id
      assert.equal((await download(srv, owner, 'att_nothex')).status, 404);
      assert.equal((await download(srv, owner, `att_${'0'.repeat(32)}`)).status, 404);
      assert.equal((await download(srv, null, id)).status, 401);
    });
  });

  describe('ranges and caching', () => {
    let u;
    let id;
    const data = Buffer.from('0123456789abcdefghijklmnopqrstuvwxyz');
    before(async () => {
      u = await newUser(srv, 'rg');
      id = (await upload(srv, u, data)).body.attachment.id;
    });

    it('a single range: 206 with Content-Range; suffix and open ranges; unsatisfiable: 416', T, async () => {
      let d = await download(srv, u, id, { Range: 'bytes=0-9' });
      assert.equal(d.status, 206);
      assert.equal(d.bytes.toString(), '0123456789');
      assert.equal(d.headers['content-range'], `bytes 0-9/${data.length}`);
      d = await download(srv, u, id, { Range: 'bytes=-6' });
      assert.equal(d.status, 206);
      assert.equal(d.bytes.toString(), 'uvwxyz');
      d = await download(srv, u, id, { Range: 'bytes=30-' });
      assert.equal(d.bytes.toString(), 'uvwxyz');
      d = await download(srv, u, id, { Range: 'bytes=30-1000' });
      assert.equal(d.headers['content-range'], `bytes 30-35/${data.length}`);
      d = await download(srv, u, id, { Range: `bytes=${data.length}-` });
      assert.equal(d.status, 416);
      assert.equal(d.headers['content-range'], `bytes */${data.length}`);
      // several ranges or junk: the whole file
      d = await download(srv, u, id, { Range: 'bytes=0-1,4-5' });
      assert.equal(d.status, 200);
      assert.deepEqual(d.bytes, data);
      d = await download(srv, u, id, { Range: 'lines=1-2' });
      assert.equal(d.status, 200);
    });

    it('ETag is the sha256; If-None-Match with it answers 304 without a body', T, async () => {
      const d = await download(srv, u, id);
      const etag = d.headers.etag;
      assert.equal(etag, `"${sha256(data)}"`);
      const nm = await download(srv, u, id, { 'If-None-Match': etag });
      assert.equal(nm.status, 304);
      assert.equal(nm.bytes.length, 0);
      const other = await download(srv, u, id, { 'If-None-Match': '"abc"' });
      assert.equal(other.status, 200);
    });
  });

  describe('on messages', () => {
    it('send (REST and WebSocket) carries the metadata in the entry, live and in history; only your own uploads', T, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'am'), newUser(srv, 'am')]);
      const room = await createRoom(srv, a, [b]);
      const mine = (await upload(srv, a, Buffer.from('img'), { type: 'image/png', name: 'cat.png' })).body.attachment;
      const theirs = (await upload(srv, b, Buffer.from('x'))).body.attachment;
      const ca = await connect(srv, a);
      const cb = await connect(srv, b);
      await withClients([ca, cb], async () => {
        const ack = await ca.req({ type: 'send', room: room.id, body: 'look', client_msg_id: nextId('w'), attachments: [mine.id] });
        assert.equal(ack.type, 'ack', JSON.stringify(ack));
        const live = await cb.next((m) => m.type === 'message' && m.seq === ack.seq);
        assert.deepEqual(live.attachments, [mine]);
        const err = await ca.req({ type: 'send', room: room.id, body: 'x', client_msg_id: nextId('w'), attachments: [theirs.id] });
        assert.equal(err.type, 'error');
        assert.equal(err.code, 'forbidden');
        const unknown = await ca.req({ type: 'send', room: room.id, body: 'x', client_msg_id: nextId('w'), attachments: [`att_${'1'.repeat(32)}`] });
        assert.equal(unknown.code, 'not_found');
        const bad = await ca.req({ type: 'send', room: room.id, body: 'x', client_msg_id: nextId('w'), attachments: ['x'] });
        assert.equal(bad.code, 'invalid_field');
        const many = await ca.req({ type: 'send', room: room.id, body: 'x', client_msg_id: nextId('w'), attachments: Array(11).fill(mine.id) });
        assert.equal(many.code, 'invalid_field');
      });
      const rest = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'again', client_msg_id: nextId('r'), attachments: [mine.id] });
      assert.equal(rest.status, 201, rest.text);
      const h = await api(srv, b).get(`/v1/rooms/${room.id}/messages?limit=10`);
      const withAtt = h.body.messages.filter((m) => m.attachments);
      assert.equal(withAtt.length, 2);
      for (const m of withAtt) assert.deepEqual(m.attachments, [mine]);
      const plain = h.body.messages.find((m) => m.type === 'message' && !m.attachments);
      assert.equal(plain, undefined, 'every message here had attachments');
    });
  });

  describe('with message operations', () => {
    it('replies in a thread carry them; an edit keeps them; after a delete they are gone for members', T, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'mo'), newUser(srv, 'mo')]);
      const room = await createRoom(srv, a, [b]);
      const att = (await upload(srv, a, Buffer.from('thread file'), { name: 't.txt' })).body.attachment;
      const root = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, { body: 'root', client_msg_id: nextId('t') });
      assert.equal(root.status, 201, root.text);
      const reply = await api(srv, a).post(`/v1/rooms/${room.id}/messages`, {
        body: 'reply with a file', client_msg_id: nextId('t'), thread: root.body.seq, reply_to: root.body.seq, attachments: [att.id],
      });
      assert.equal(reply.status, 201, reply.text);
      const seq = reply.body.seq;
      const find = (page) => page.body.messages.find((m) => m.seq === seq);
      let t = await api(srv, b).get(`/v1/rooms/${room.id}/threads/${root.body.seq}/messages`);
      assert.equal(t.status, 200, t.text);
      assert.deepEqual(find(t).attachments, [att]);
      assert.equal(find(t).thread, root.body.seq);
      assert.equal(find(t).reply_to, root.body.seq);
      // an edit changes the text, not the attachments
      const e = await api(srv, a).patch(`/v1/rooms/${room.id}/messages/${seq}`, { body: 'reply, edited' });
      assert.equal(e.status, 200, e.text);
      let h = await api(srv, b).get(`/v1/rooms/${room.id}/messages?after=${seq - 1}&limit=1`);
      assert.equal(find(h).body, 'reply, edited');
      assert.deepEqual(find(h).attachments, [att]);
      assert.equal((await download(srv, b, att.id)).status, 200);
      // a device that syncs sees them too (sync reads the same pages)
      const cb = await connect(srv, b);
      await withClients([cb], async () => {
        const mark = cb.messages.length;
        const ack = await cb.req({ type: 'sync', rooms: { [room.id]: seq - 1 } });
        assert.equal(ack.type, 'synced', JSON.stringify(ack));
        const m = cb.since(mark, (x) => x && x.type === 'message' && x.room === room.id && x.seq === seq);
        assert.equal(m.length, 1, JSON.stringify(cb.since(mark)));
        assert.deepEqual(m[0].attachments, [att]);
      });
      // deleted: no longer shown, no longer served to a member (the uploader still owns it)
      const d = await api(srv, a).del(`/v1/rooms/${room.id}/messages/${seq}`);
      assert.equal(d.status, 200, d.text);
      assert.equal((await download(srv, b, att.id)).status, 404);
      h = await api(srv, b).get(`/v1/rooms/${room.id}/messages?limit=50`);
      assert.equal(find(h).deleted, true);
      assert.equal(h.body.messages.some((m) => m.attachments), false, JSON.stringify(h.body.messages));
      t = await api(srv, b).get(`/v1/rooms/${room.id}/threads/${root.body.seq}/messages`);
      assert.equal(find(t).attachments, undefined);
    });

    it('a deleted room no longer serves its attachments to its members (the uploader keeps them)', T, async () => {
      const [a, b] = await Promise.all([newUser(srv, 'rd'), newUser(srv, 'rd')]);
      const room = await createRoom(srv, a, [b]);
      const att = (await upload(srv, b, Buffer.from('room file'))).body.attachment;
      const sent = await api(srv, b).post(`/v1/rooms/${room.id}/messages`, { body: 'f', client_msg_id: nextId('d'), attachments: [att.id] });
      assert.equal(sent.status, 201, sent.text);
      assert.equal((await download(srv, a, att.id)).status, 200);
      const d = await api(srv, a).del(`/v1/rooms/${room.id}`);
      assert.equal(d.status, 204, d.text);
      assert.equal((await download(srv, a, att.id)).status, 404);
      assert.equal((await download(srv, b, att.id)).status, 200); // the uploader
    });
  });

  describe('expiry', () => {
    it('an upload no message references is deleted after --upload-ttl; a referenced one stays', T, async () => {
      const s = await startChat({ 'upload-ttl': 1, 'upload-sweep': 1 });
      try {
        const u = await newUser(s, 'ex');
        const room = await createRoom(s, u, []);
        const lone = (await upload(s, u, Buffer.from('lone'))).body.attachment;
        const kept = (await upload(s, u, Buffer.from('kept'))).body.attachment;
        const sent = await api(s, u).post(`/v1/rooms/${room.id}/messages`, { body: 'k', client_msg_id: nextId('e'), attachments: [kept.id] });
        assert.equal(sent.status, 201, sent.text);
        let gone = false;
        for (let i = 0; i < 40 && !gone; i++) {
          await sleep(250);
          gone = (await download(s, u, lone.id)).status === 404;
        }
        assert.ok(gone, 'the unreferenced upload expired');
        assert.equal((await download(s, u, kept.id)).status, 200);
        // and a send can no longer reference the expired one
        const late = await api(s, u).post(`/v1/rooms/${room.id}/messages`, { body: 'late', client_msg_id: nextId('e'), attachments: [lone.id] });
        expectError(assert, late, 404, 'not_found');
      } finally {
        await s.stop();
      }
    });
  });

  // s3rver stores objects but does not check Signature Version 4; a proxy in front of it does,
  // with its own SigV4 written here on node:crypto (an implementation independent of chatd's):
  // a request whose signature or payload hash is wrong gets S3's 403 SignatureDoesNotMatch.
  function sigv4Proxy(target, secrets) {
    const hmac = (k, m) => crypto.createHmac('sha256', k).update(m).digest();
    const stats = { verified: 0, refused: 0 };
    const server = http.createServer((req, res) => {
      const chunks = [];
      req.on('data', (c) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const m = /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, SignedHeaders=([^,]+), Signature=([0-9a-f]{64})$/.exec(req.headers.authorization || '');
        let ok = false;
        if (m) {
          const [, ak, date, region, signed, sig] = m;
          const names = signed.split(';');
          const canon = [req.method, req.url.split('?')[0], '',
            ...names.map((n) => `${n}:${String(req.headers[n]).trim()}`), '', signed,
            req.headers['x-amz-content-sha256']].join('\n');
          const sts = ['AWS4-HMAC-SHA256', req.headers['x-amz-date'], `${date}/${region}/s3/aws4_request`,
            crypto.createHash('sha256').update(canon).digest('hex')].join('\n');
          let k = hmac(`AWS4${secrets[ak] || ''}`, date);
          k = hmac(hmac(hmac(k, region), 's3'), 'aws4_request');
          ok = hmac(k, sts).toString('hex') === sig && req.headers['x-amz-content-sha256'] === sha256(body);
        }
        if (!ok) {
          stats.refused++;
          res.writeHead(403, { 'Content-Type': 'application/xml' });
          res.end('<Error><Code>SignatureDoesNotMatch</Code></Error>');
          return;
        }
        stats.verified++;
        const up = http.request({ ...target, method: req.method, path: req.url, headers: req.headers }, (r) => {
          res.writeHead(r.statusCode, r.headers);
          r.pipe(res);
        });
        up.on('error', () => res.destroy());
        up.end(body);
      });
    });
    return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({ server, stats, port: server.address().port })));
  }

  describe('S3 backend (s3rver from npm behind a SigV4-checking proxy)', () => {
    let s3;
    let s3dir;
    let endpoint;
    let proxy;
    before(async () => {
      const S3rver = require('s3rver');
      const fs = require('node:fs');
      const os = require('node:os');
      const path = require('node:path');
      s3dir = fs.mkdtempSync(path.join(os.tmpdir(), 'chatd-s3-'));
      s3 = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: s3dir, configureBuckets: [{ name: 'chatd-e2e' }] });
      const addr = await s3.run();
      proxy = await sigv4Proxy({ host: '127.0.0.1', port: addr.port }, { S3RVER: 'S3RVER' });
      endpoint = `http://127.0.0.1:${proxy.port}`;
    });
    after(async () => {
      if (proxy) await new Promise((r) => proxy.server.close(r));
      if (s3) await s3.close();
      if (s3dir) require('node:fs').rmSync(s3dir, { recursive: true, force: true });
    });

    const s3Server = (secret = 'S3RVER', extra = {}) =>
      startChat(
        { 'blob-url': `s3://chatd-e2e?endpoint=${endpoint}&region=us-east-1`, 'upload-rate': 1000, ...extra },
        { env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: secret } },
      );

    it('uploads, ranges, authorization and expiry work the same on S3', T, async () => {
      const s = await s3Server('S3RVER', { 'upload-ttl': 1, 'upload-sweep': 1 });
      try {
        const [a, b] = await Promise.all([newUser(s, 's3'), newUser(s, 's3')]);
        const room = await createRoom(s, a, [b]);
        const data = crypto.randomBytes(700 * 1024); // several download pieces
        const r = await upload(s, a, data, { type: 'application/pdf', name: 'doc.pdf', chunked: true });
        assert.equal(r.status, 201, r.text);
        const att = r.body.attachment;
        assert.equal(att.sha256, sha256(data));
        const whole = await download(s, a, att.id);
        assert.equal(whole.status, 200);
        assert.equal(sha256(whole.bytes), sha256(data));
        const part = await download(s, a, att.id, { Range: 'bytes=300000-300009' });
        assert.equal(part.status, 206);
        assert.deepEqual(part.bytes, data.subarray(300000, 300010));
        assert.equal((await download(s, b, att.id)).status, 404);
        const sent = await api(s, a).post(`/v1/rooms/${room.id}/messages`, { body: 'pdf', client_msg_id: nextId('s3'), attachments: [att.id] });
        assert.equal(sent.status, 201, sent.text);
        assert.equal((await download(s, b, att.id)).status, 200);
        // the object is in the bucket under the attachment's id; an unreferenced one is deleted
        const lone = (await upload(s, a, Buffer.from('lone'))).body.attachment;
        const key = lone.id.slice(4);
        const objects = () => require('node:fs').readdirSync(path_(s3dir, 'chatd-e2e'));
        assert.ok(objects().some((f) => f.startsWith(key)), objects().join(','));
        let gone = false;
        for (let i = 0; i < 40 && !gone; i++) {
          await sleep(250);
          gone = (await download(s, a, lone.id)).status === 404 && !objects().some((f) => f.startsWith(key));
        }
        assert.ok(gone, 'the unreferenced upload expired from the bucket');
        assert.equal((await download(s, a, att.id)).status, 200);
        assert.ok(proxy.stats.verified >= 6, `signed requests: ${JSON.stringify(proxy.stats)}`);
        assert.equal(proxy.stats.refused, 0);
      } finally {
        await s.stop();
      }
    });

    it('a wrong secret is refused by the server: the upload fails cleanly (no attachment)', T, async () => {
      const s = await s3Server('not-the-secret');
      try {
        const a = await newUser(s, 's3');
        const r = await upload(s, a, Buffer.from('x'));
        assert.ok(r.status >= 500, `${r.status} ${r.text}`);
        assert.ok(s.stderr.includes('SignatureDoesNotMatch'), 'the server refused the signature');
        assert.ok(proxy.stats.refused >= 1);
      } finally {
        await s.stop();
      }
    });
  });
});
