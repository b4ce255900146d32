// chatd's web client: everything goes through the SDK (./sdk/, the same files as sdk/js/src).
import { ChatdClient, PasswordAuth, localStorageAdapter } from './sdk/index.js';

const $ = (id) => document.getElementById(id);
const url = location.origin;
const storage = localStorageAdapter('chatd:');
const auth = new PasswordAuth({ url, storage });

let client = null;
let me = null; // {id, username}
const rooms = new Map(); // id -> room (from rooms(), kept current by events)
const users = new Map(); // id -> {id, username, status, last_seen}
const userLoads = new Map();
let current = null; // open room id
let view = null; // {room, entries: Map seq->entry, oldest, hasMore, loading, divider}
const typingBy = new Map(); // room -> Map user -> timer
const OPS = new Set(['edit', 'delete', 'reaction']); // log entries that change a message
const EMOJI = ['👍', '❤️', '😂', '🎉', '😮', '😢'];
let thread = null; // the open thread panel: {room, root, rootCopy, entries: Map seq->reply, loaded}
let composing = null; // {kind: 'edit'|'reply', room, seq}: what the composer does on submit
let uploads = []; // the composer's files: {file, state: 'uploading'|'ready'|'failed', att, error, done}
const thumbs = new Map(); // attachment id -> {url (data: URL) | null, failed, promise}: image thumbnails
const IMAGE_TYPES = new Set(['image/png', 'image/jpeg', 'image/gif', 'image/webp']);

// ---------- helpers ----------

function el(tag, attrs = {}, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k === 'text') e.textContent = v;
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) e.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids) if (k) e.append(k);
  return e;
}

const COLORS = ['#6366f1', '#0ea5e9', '#10b981', '#f59e0b', '#ef4444', '#8b5cf6', '#ec4899', '#14b8a6'];
function colorOf(id) {
  let h = 0;
  for (const ch of String(id)) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  return COLORS[h % COLORS.length];
}

function avatar(userId) {
  const u = users.get(userId);
  const a = el('span', { class: 'avatar', text: ((u && (u.display_name || u.username)) || '?').slice(0, 1).toUpperCase() });
  a.style.background = colorOf(userId);
  return a;
}

function nameOf(userId) {
  const u = users.get(userId);
  if (!u) return userId;
  if (u.deleted) return 'deleted user';
  return u.display_name || u.username || userId;
}

function loadUser(id) {
  if (users.has(id)) return Promise.resolve(users.get(id));
  if (!userLoads.has(id)) {
    userLoads.set(
      id,
      client.user(id).then(
        (u) => {
          users.set(id, u);
          renderRooms();
          if (view) rerenderMessages();
          return u;
        },
        () => null,
      ),
    );
  }
  return userLoads.get(id);
}

function timeOf(ts) {
  const d = new Date(ts);
  const today = new Date();
  const t = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  return d.toDateString() === today.toDateString() ? t : `${d.toLocaleDateString()} ${t}`;
}

function roomTitle(r) {
  if (r.kind === 'direct') return r.peer ? nameOf(r.peer) : 'direct';
  return r.name || r.id;
}

// ---------- auth screen ----------

let signup = false;
function setTab(s) {
  signup = s;
  $('tab-login').setAttribute('aria-selected', String(!s));
  $('tab-signup').setAttribute('aria-selected', String(s));
  $('auth-submit').textContent = s ? 'Create account' : 'Log in';
  $('password').autocomplete = s ? 'new-password' : 'current-password';
  $('auth-error').textContent = '';
}
$('tab-login').onclick = () => setTab(false);
$('tab-signup').onclick = () => setTab(true);
$('auth-form').onsubmit = async (e) => {
  e.preventDefault();
  const username = $('username').value.trim().toLowerCase();
  const password = $('password').value;
  $('auth-submit').disabled = true;
  $('auth-error').textContent = '';
  try {
    if (signup) await auth.register(username, password);
    else await auth.login(username, password);
    $('password').value = '';
    await start();
  } catch (err) {
    $('auth-error').textContent = err.message || String(err);
  } finally {
    $('auth-submit').disabled = false;
  }
};

function showAuth(message = '') {
  $('app').hidden = true;
  $('auth').hidden = false;
  $('auth-error').textContent = message;
  $('username').focus();
}

// ---------- session ----------

async function start() {
  me = auth.user;
  users.set(me.id, { id: me.id, username: me.username, status: 'online' });
  $('auth').hidden = true;
  $('app').hidden = false;
  $('me-name').textContent = me.username;
  $('me-id').textContent = me.id;
  $('empty-id').textContent = me.username;
  $('me-avatar').replaceWith(Object.assign(avatar(me.id), { id: 'me-avatar' }));

  client = new ChatdClient({ url, auth, storage });
  client.on('state', onState);
  client.on('message', onEntry);
  client.on('member', onEntry);
  client.on('room', onEntry);
  for (const ev of OPS) client.on(ev, onEntry);
  client.on('read', onRead);
  client.on('receipt', onReceipt);
  client.on('typing', onTyping);
  client.on('presence', onPresence);
  client.connect().catch(() => {});
  await refreshRooms();
  const last = sessionStorage.getItem('chatd:room');
  if (last && rooms.has(last)) openRoom(last);
}

async function stop(message) {
  dropThumbs();
  clearUploads();
  if (client) client.close();
  client = null;
  rooms.clear();
  users.clear();
  userLoads.clear();
  current = null;
  view = null;
  closeThread();
  showAuth(message);
}

$('logout').onclick = async () => {
  try {
    await auth.logout();
  } catch {
    /* the server may be unreachable: forget the session here anyway */
  }
  sessionStorage.removeItem('chatd:room');
  stop('');
};

$('me-id').onclick = () => navigator.clipboard && navigator.clipboard.writeText(me.id).catch(() => {});

function onState(s) {
  const c = $('conn-state');
  c.dataset.state = s.state;
  c.textContent = { online: 'online', syncing: 'syncing', connecting: 'connecting', offline: 'offline', ended: 'signed out', closed: 'closed' }[s.state] || s.state;
  if (s.state === 'online') {
    refreshRooms();
    loadReceipts(); // receipts are live only: what changed while offline comes from the list
  }
  if (s.state === 'ended') {
    auth.logout().catch(() => {}); // forget the revoked session here too
    stop('Your session ended: please log in again.');
  }
}

// ---------- rooms list ----------

let roomsTimer = null;
function refreshRoomsSoon() {
  clearTimeout(roomsTimer);
  roomsTimer = setTimeout(refreshRooms, 150);
}

async function refreshRooms() {
  if (!client) return;
  let list;
  try {
    list = await client.rooms();
  } catch {
    return;
  }
  const seen = new Set();
  for (const r of list) {
    seen.add(r.id);
    const old = rooms.get(r.id);
    rooms.set(r.id, { ...old, ...r, lastActivity: (old && old.lastActivity) || r.last_seq });
    if (r.peer) loadUser(r.peer);
  }
  for (const id of [...rooms.keys()]) if (!seen.has(id)) rooms.delete(id);
  if (current && !rooms.has(current)) closeRoom();
  if (current) markRead();
  renderRooms();
}

function renderRooms() {
  const groups = $('rooms');
  const dms = $('dms');
  groups.replaceChildren();
  dms.replaceChildren();
  const sorted = [...rooms.values()].sort((a, b) => (b.lastActivity || 0) - (a.lastActivity || 0) || a.id.localeCompare(b.id));
  for (const r of sorted) {
    const unread = r.id === current ? 0 : r.unread || 0;
    const li = el(
      'li',
      { class: `room-item${r.id === current ? ' active' : ''}${unread ? ' has-unread' : ''}`, 'data-room': r.id, onclick: () => openRoom(r.id) },
      r.kind === 'direct'
        ? el('span', { class: `dot${users.get(r.peer) && users.get(r.peer).status === 'online' ? ' online' : ''}` })
        : el('span', { class: 'hash', text: '#' }),
      el('span', { class: 'name', text: roomTitle(r) }),
      unread ? el('span', { class: 'badge', text: unread > 99 ? '99+' : String(unread) }) : null,
    );
    (r.kind === 'direct' ? dms : groups).append(li);
  }
  if (!groups.children.length) groups.append(el('li', { class: 'room-item', text: 'No rooms yet' }));
  if (!dms.children.length) dms.append(el('li', { class: 'room-item', text: 'No conversations yet' }));
}

// ---------- conversation ----------

async function openRoom(id) {
  const r = rooms.get(id);
  if (!r) return;
  if (composing) endCompose();
  if (thread && thread.room !== id) closeThread();
  current = id;
  sessionStorage.setItem('chatd:room', id);
  dropThumbs();
  clearUploads();
  // receipts: other members' read positions (user -> seq); null when the room has none to show
  view = { room: id, entries: new Map(), oldest: Infinity, hasMore: true, loading: false, divider: r.unread ? r.read_seq : null, receipts: new Map() };
  $('empty').hidden = true;
  $('conv-head').hidden = false;
  $('messages').hidden = false;
  $('composer').hidden = false;
  $('add-member').hidden = r.kind === 'direct' || !(r.role === 'owner' || r.role === 'admin');
  $('msg-list').replaceChildren();
  renderHeader();
  renderRooms();
  renderTyping();
  loadReceipts();
  await loadOlder();
  scrollToBottom();
  markRead();
  $('composer-input').focus();
  client.room(id).then((full) => {
    const r = rooms.get(id); // refreshRooms may have replaced the object meanwhile
    if (current !== id || !r) return;
    r.members = full.members;
    for (const m of full.members) loadUser(m.user_id);
    renderHeader();
  }, () => {});
}

function closeRoom() {
  endCompose();
  closeThread();
  dropThumbs();
  clearUploads();
  current = null;
  view = null;
  $('empty').hidden = false;
  $('conv-head').hidden = true;
  $('messages').hidden = true;
  $('composer').hidden = true;
  $('typing').textContent = '';
}

function renderHeader() {
  const r = rooms.get(current);
  if (!r) return;
  $('conv-title').textContent = r.kind === 'direct' ? roomTitle(r) : `# ${roomTitle(r)}`;
  let sub;
  if (r.kind === 'direct') {
    const u = users.get(r.peer);
    sub = u && u.status === 'online' ? 'online' : u && u.last_seen ? `last seen ${timeOf(u.last_seen)}` : 'offline';
  } else {
    const online = (r.members || []).filter((m) => users.get(m.user_id) && users.get(m.user_id).status === 'online').length;
    sub = `${r.member_count} member${r.member_count === 1 ? '' : 's'}${r.members ? `, ${online} online` : ''}${r.topic ? ' · ' + r.topic : ''}`;
  }
  $('conv-sub').textContent = sub;
}

async function loadOlder() {
  if (!view || view.loading || !view.hasMore) return;
  const v = view;
  v.loading = true;
  $('history-top').textContent = 'Loading…';
  const box = $('messages');
  const before = box.scrollHeight - box.scrollTop;
  try {
    const page = await client.history(v.room, v.oldest === Infinity ? { limit: 50 } : { before: v.oldest, limit: 50 });
    if (view !== v) return;
    for (const m of page.messages) addEntry(m, false);
    v.hasMore = page.has_more;
    rerenderMessages();
    box.scrollTop = box.scrollHeight - before;
  } catch (e) {
    $('history-top').textContent = `Could not load history: ${e.message}`;
    v.loading = false;
    return;
  }
  v.loading = false;
  $('history-top').textContent = v.hasMore ? '' : 'This is the beginning of the conversation.';
  // A first page that does not fill the pane cannot be scrolled: load more now.
  if (v.hasMore && box.scrollHeight <= box.clientHeight) loadOlder();
}

$('messages').addEventListener('scroll', () => {
  if ($('messages').scrollTop < 80) loadOlder();
  if (atBottom()) markRead();
});

function addEntry(m) {
  if (!view || m.room !== view.room) return false;
  if (view.entries.has(m.seq)) return false;
  view.entries.set(m.seq, m.type === 'message' ? { ...m } : m); // messages are folded into: own copies
  view.oldest = Math.min(view.oldest, m.seq);
  if (m.type === 'message') loadUser(m.sender);
  if (m.type === 'member') loadUser(m.user);
  if (OPS.has(m.type)) {
    // Kept by target too: a copy of the target that arrives later (a history page read just
    // before this entry was committed) still gets it.
    if (!view.opsByTarget) view.opsByTarget = new Map();
    const list = view.opsByTarget.get(m.target) || [];
    list.push(m);
    view.opsByTarget.set(m.target, list);
    fold(m);
  } else if (m.type === 'message' && view.opsByTarget && view.opsByTarget.has(m.seq)) {
    for (const op of [...view.opsByTarget.get(m.seq)].sort((x, y) => x.seq - y.seq)) fold(op);
  }
  if (m.type === 'message' && m.thread) {
    // A thread root counts its replies; a copy whose last_reply_seq is at or past this one
    // already includes it.
    const root = view.entries.get(m.thread);
    if (root && root.type === 'message' && (root.last_reply_seq || 0) < m.seq) {
      root.reply_count = (root.reply_count || 0) + 1;
      root.last_reply_seq = m.seq;
    }
  }
  return true;
}

// Apply an edit / delete / reaction entry to the copy of its target, unless that copy already
// includes it (its state_seq is at or past the entry: it came from history or a later replay).
function fold(op, entries = view.entries) {
  const t = entries.get(op.target);
  if (!t || t.type !== 'message' || (t.state_seq || 0) >= op.seq) return;
  t.state_seq = op.seq;
  if (op.type === 'edit') {
    if (t.deleted) return;
    t.body = op.body;
    t.edited_at = op.edited_at || op.ts;
  } else if (op.type === 'delete') {
    for (const a of t.attachments || []) thumbs.delete(a.id);
    t.deleted = true;
    t.body = '';
    t.reactions = [];
  } else if (op.type === 'reaction') {
    if (t.deleted) return;
    const list = (t.reactions = (t.reactions || []).map((r) => ({ ...r })));
    let r = list.find((x) => x.emoji === op.emoji);
    if (!r) {
      r = { emoji: op.emoji, count: 0, me: false };
      list.push(r);
    }
    r.count += op.on ? 1 : -1;
    if (op.user === me.id) r.me = !!op.on;
    if (r.count <= 0) list.splice(list.indexOf(r), 1);
  }
}

function entryNode(m, prev) {
  if (m.type === 'message') return messageNode(m, prev);
  let text = '';
  if (m.type === 'member') {
    const who = nameOf(m.user);
    const by = nameOf(m.by);
    text = { join: m.by && m.by !== m.user ? `${by} added ${who}` : `${who} joined`, leave: `${who} left`, kick: `${by} removed ${who}`, role: `${who} is now ${m.role}` }[m.action] || `${who}: ${m.action}`;
  } else if (m.type === 'room') {
    text = `${nameOf(m.by)} renamed the room to “${m.name}”`;
  }
  return el('li', { class: 'event', 'data-seq': m.seq, text });
}

// inThread: for the thread panel (no reply preview, reply count or tools).
function messageNode(m, prev, inThread = false) {
  const first = !prev || prev.type !== 'message' || prev.sender !== m.sender || m.ts - prev.ts > 5 * 60 * 1000 || (m.reply_to && !inThread);
  const mine = m.sender === me.id;
  const live = !m.pending && !m.deleted;
  const cls = `msg${first ? ' first' : ''}${mine ? ' mine' : ''}${m.pending ? ' pending' : ''}${m.deleted ? ' deleted' : ''}`;
  const edited = m.edited_at && !m.deleted ? el('span', { class: 'edited', title: `edited ${timeOf(m.edited_at)}`, text: '(edited)' }) : null;
  let reply = null;
  const ref = m.reply_to || m.thread; // what it answers: the message, else its thread's root
  if (ref && !inThread) {
    const t = view.entries.get(ref);
    const snippet = !t ? 'an earlier message' : t.deleted ? 'deleted message' : t.body;
    const how = m.reply_to ? 'In reply to' : 'In the thread of';
    reply = el(
      'button',
      { class: 'reply-preview', type: 'button', 'aria-label': `${how} ${t ? nameOf(t.sender) : 'a message'}: ${snippet}`, onclick: () => jumpTo(ref) },
      el('span', { class: 'reply-who', text: `${m.reply_to ? '' : '🧵 '}${t ? nameOf(t.sender) : '↩'}` }),
      el('span', { class: 'reply-text', text: snippet }),
    );
  }
  const files = m.attachments && m.attachments.length && !m.deleted ? attachmentsNode(m.attachments) : null;
  const count = `${m.reply_count} repl${m.reply_count === 1 ? 'y' : 'ies'}`;
  const replies = m.reply_count && !inThread ? el('button', { class: 'reply-count', type: 'button', 'aria-label': `${count}: open the thread`, text: `🧵 ${count}`, onclick: () => openThread(m) }) : null;
  const body = m.deleted
    ? el('div', { class: 'body tombstone', text: 'This message was deleted.' })
    : el('div', { class: 'body' }, document.createTextNode(m.body), edited && !first ? ' ' : null, !first ? edited : null);
  const chips =
    m.reactions && m.reactions.length && !m.deleted
      ? el(
          'div',
          { class: 'reactions' },
          ...m.reactions.map((r) =>
            el(
              'button',
              { class: `chip${r.me ? ' me' : ''}`, type: 'button', 'aria-pressed': String(!!r.me), 'aria-label': `${r.emoji} ${r.count}, ${r.me ? 'remove your reaction' : 'react'}`, onclick: () => react(m, r.emoji, !r.me) },
              el('span', { class: 'chip-emoji', text: r.emoji }),
              el('span', { class: 'chip-count', text: String(r.count) }),
            ),
          ),
        )
      : null;
  let tools = null;
  if (live && !inThread) {
    const picking = view.picker === m.seq;
    tools = el(
      'div',
      { class: `tools${picking ? ' open' : ''}` },
      picking
        ? el('div', { class: 'picker', role: 'group', 'aria-label': 'Pick a reaction' }, ...EMOJI.map((e) => el('button', { type: 'button', class: 'tool', 'aria-label': `React with ${e}`, text: e, onclick: () => react(m, e, true) })))
        : null,
      el('button', { type: 'button', class: 'tool', 'aria-label': 'Add reaction', 'aria-expanded': String(picking), title: 'React', text: '☺', onclick: () => togglePicker(m.seq) }),
      el('button', { type: 'button', class: 'tool', 'aria-label': 'Reply', title: 'Reply', text: '↩', onclick: () => startCompose('reply', m) }),
      m.thread ? null : el('button', { type: 'button', class: 'tool', 'aria-label': 'Open thread', title: 'Reply in thread', text: '🧵', onclick: () => openThread(m) }),
      mine ? el('button', { type: 'button', class: 'tool', 'aria-label': 'Edit message', title: 'Edit', text: '✎', onclick: () => startCompose('edit', m) }) : null,
      mine ? el('button', { type: 'button', class: 'tool danger', 'aria-label': 'Delete message', title: 'Delete', text: '🗑', onclick: () => removeMessage(m) }) : null,
    );
  }
  return el(
    'li',
    { class: cls, 'data-seq': m.seq },
    avatar(m.sender),
    el('div', { class: 'meta' }, el('strong', { text: nameOf(m.sender) }), el('time', { text: m.ts ? timeOf(m.ts) : '' }), first ? edited : null),
    el('div', { class: 'content' }, reply, body, files, chips, replies),
    tools,
  );
}

// ---------- attachments ----------

function sizeText(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

// Images as thumbnails (fetched with the token: an <img src> cannot carry it), others as a link.
function attachmentsNode(list) {
  return el(
    'div',
    { class: 'attachments' },
    ...list.map((a) => {
      const label = `${a.name || 'file'} (${sizeText(a.size || 0)})`;
      if (IMAGE_TYPES.has(a.content_type)) {
        const img = el('img', { alt: a.name || 'image', 'data-att': a.id });
        const t = thumb(a.id);
        if (t.url) img.src = t.url;
        return el('figure', { class: 'att-image' }, img, el('figcaption', { class: 'att-name', text: t.failed ? `${label}: not available` : label }));
      }
      return el('a', { class: 'att-file att-name', href: client ? client.attachmentUrl(a.id) : '#', 'data-att': a.id, text: `📄 ${label}`, onclick: (e) => download(e, a) });
    }),
  );
}

// An image attachment as a data: URL, fetched once per open room (dropped when it closes or
// the message is deleted). Not an object URL: the page's Content-Security-Policy (served by
// chatd, src/server/web.c) allows images from 'self' and data: only, not blob:.
function dataUrl(blob) {
  return new Promise((resolve, reject) => {
    const r = new FileReader();
    r.onload = () => resolve(r.result);
    r.onerror = () => reject(r.error);
    r.readAsDataURL(blob);
  });
}

function thumb(id) {
  let t = thumbs.get(id);
  if (t) return t;
  t = { url: null, failed: false };
  thumbs.set(id, t);
  const c = client;
  t.promise = c.fetchAttachment(id).then(dataUrl).then(
    (url) => {
      if (thumbs.get(id) !== t) return; // dropped meanwhile
      t.url = url;
      for (const img of document.querySelectorAll(`img[data-att="${id}"]`)) img.src = t.url;
    },
    () => {
      t.failed = true;
      if (thumbs.get(id) === t) rerenderMessages();
    },
  );
  return t;
}

function dropThumbs() {
  thumbs.clear();
}

// A download needs the token too: fetch, then save through a short-lived object URL.
async function download(e, a) {
  e.preventDefault();
  try {
    const blob = await client.fetchAttachment(a.id);
    const href = URL.createObjectURL(blob);
    const link = el('a', { href, download: a.name || 'file' });
    document.body.append(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(href), 10000);
  } catch (err) {
    opFailed(err);
  }
}

function uploadError(err) {
  if (err.status === 413 || err.code === 'payload_too_large') return 'too large';
  if (err.status === 415 || err.code === 'unsupported_media_type') return 'this file type is not allowed';
  if (err.code === 'rate_limited') return 'too many uploads, try again in a moment';
  return err.message || 'upload failed';
}

function renderUploads() {
  const failed = uploads.filter((u) => u.state === 'failed');
  $('attach-list').replaceChildren(
    ...uploads.map((u) =>
      el(
        'li',
        { class: `attach-item ${u.state}`, 'data-state': u.state },
        el('span', { class: 'att-name', text: `${u.file.name || 'file'} (${sizeText(u.file.size)})` }),
        u.state === 'uploading' ? el('progress', { 'aria-label': 'Uploading' }) : null,
        el('span', { class: 'att-state', text: u.state === 'uploading' ? 'uploading…' : u.state === 'ready' ? '✓' : `not sent: ${u.error}` }),
        el('button', { type: 'button', class: 'linkish', 'aria-label': `Remove ${u.file.name}`, text: '✕', onclick: () => removeUpload(u) }),
      ),
    ),
  );
  $('attach-error').textContent = failed.length ? `${failed.map((u) => `${u.file.name}: ${u.error}`).join('; ')}` : '';
  $('attach-bar').hidden = uploads.length === 0;
}

function removeUpload(u) {
  uploads = uploads.filter((x) => x !== u);
  renderUploads();
}

function clearUploads() {
  uploads = [];
  if ($('attach-bar')) renderUploads();
}

function addFiles(files) {
  for (const file of files) {
    const u = { file, state: 'uploading', att: null, error: null };
    uploads.push(u);
    const c = client;
    u.done = c.upload(file, { name: file.name, contentType: file.type || 'application/octet-stream' }).then(
      (att) => {
        u.att = att;
        u.state = 'ready';
      },
      (err) => {
        u.state = 'failed';
        u.error = uploadError(err);
      },
    ).then(() => {
      if (uploads.includes(u)) renderUploads();
    });
  }
  renderUploads();
}

$('attach').onclick = () => $('attach-input').click();
$('attach-input').onchange = () => {
  const files = [...$('attach-input').files];
  $('attach-input').value = '';
  if (files.length && client && current) addFiles(files);
};

function jumpTo(seq) {
  const n = $('msg-list').querySelector(`[data-seq="${seq}"]`);
  if (!n) return;
  n.scrollIntoView({ block: 'center', behavior: 'smooth' });
  n.classList.add('flash');
  setTimeout(() => n.classList.remove('flash'), 1200);
}

function togglePicker(seq) {
  view.picker = view.picker === seq ? null : seq;
  rerenderMessages();
}

function opFailed(err) {
  $('typing').textContent = `Failed: ${err.message}`;
}

function react(m, emoji, on) {
  if (view) view.picker = null;
  rerenderMessages();
  client.react(m.room, m.seq, emoji, on).catch(opFailed);
}

function removeMessage(m) {
  if (!confirm('Delete this message for everyone?')) return;
  if (composing && composing.seq === m.seq) endCompose();
  client.delete(m.room, m.seq).catch(opFailed);
}

function startCompose(kind, m) {
  composing = { kind, room: m.room, seq: m.seq };
  $('compose-mode-text').textContent = kind === 'edit' ? 'Editing your message' : `Replying to ${nameOf(m.sender)}: ${m.body}`;
  $('compose-mode').hidden = false;
  if (kind === 'edit') input.value = m.body;
  input.dispatchEvent(new Event('input'));
  input.focus();
}

function endCompose() {
  if (composing && composing.kind === 'edit') input.value = '';
  composing = null;
  $('compose-mode').hidden = true;
}

function rerenderMessages() {
  if (!view) return;
  const list = $('msg-list');
  const stick = atBottom();
  const entries = [...view.entries.values()].sort((a, b) => a.seq - b.seq);
  const nodes = [];
  let prev = null;
  let dividerShown = false;
  const seen = seenAt(entries);
  for (const m of entries) {
    if (OPS.has(m.type)) continue; // folded into their targets
    // The unread marker: before the first message from someone else after my read marker.
    if (!dividerShown && view.divider !== null && m.type === 'message' && m.sender !== me.id && m.seq > view.divider) {
      dividerShown = true;
      nodes.push(el('li', { class: 'divider', text: 'New messages' }));
      prev = null;
    }
    const node = entryNode(m, prev);
    if (seen.has(m.seq)) node.querySelector('.content').append(seenNode(seen.get(m.seq)));
    nodes.push(node);
    prev = m;
  }
  for (const p of client ? client.pending() : []) {
    if (p.room !== view.room || p.op) continue;
    nodes.push(entryNode({ type: 'message', pending: true, sender: me.id, body: p.body, attachments: p.attachments, seq: '', ts: 0 }, prev));
    prev = { type: 'message', sender: me.id, ts: Date.now() };
  }
  list.replaceChildren(...nodes);
  if (stick) scrollToBottom();
}

function atBottom() {
  const b = $('messages');
  return b.scrollHeight - b.scrollTop - b.clientHeight < 40;
}

function scrollToBottom() {
  const b = $('messages');
  b.scrollTop = b.scrollHeight;
}

function markRead() {
  if (!view || !client || document.visibilityState !== 'visible' || !atBottom()) return;
  const r = rooms.get(view.room);
  const last = Math.max(0, ...view.entries.keys());
  if (!r || last <= (r.read_seq || 0)) return;
  r.read_seq = last;
  client.read(view.room, last).then((res) => {
    r.unread = res.unread;
    renderRooms();
  }, () => {});
}
document.addEventListener('visibilitychange', markRead);

// ---------- read receipts ----------

// Other members' read positions in the open room. The server has none for rooms of over 100
// members (403): then nothing is shown, and no live receipts come either.
function loadReceipts() {
  const v = view;
  if (!v || !client || !v.receipts) return;
  client.receipts(v.room).then(
    (res) => {
      if (view !== v || !v.receipts) return;
      for (const r of res.receipts) {
        if (r.user === me.id || typeof r.read_seq !== 'number') continue; // null: not shared
        if (r.read_seq > (v.receipts.get(r.user) || 0)) v.receipts.set(r.user, r.read_seq);
        loadUser(r.user);
      }
      rerenderMessages();
    },
    (err) => {
      if (view !== v || err.status !== 403) return; // another failure: keep what is shown
      v.receipts = null;
      rerenderMessages();
    },
  );
}

// seq of a shown message -> the users whose read position is at it (the newest message at or
// before their read seq).
function seenAt(entries) {
  const out = new Map();
  if (!view.receipts || !view.receipts.size) return out;
  const msgs = entries.filter((m) => m.type === 'message');
  for (const [user, seq] of view.receipts) {
    let at = null;
    for (const m of msgs) {
      if (m.seq > seq) break;
      at = m.seq;
    }
    if (at === null) continue;
    if (!out.has(at)) out.set(at, []);
    out.get(at).push(user);
  }
  return out;
}

function seenNode(list) {
  const names = list.map(nameOf).sort().join(', ');
  return el(
    'div',
    { class: 'seen', title: `Seen by ${names}` },
    ...list.map((u) => Object.assign(avatar(u), { title: nameOf(u) })),
    el('span', { class: 'seen-names', text: `Seen by ${names}` }),
  );
}

// ---------- thread panel ----------

async function openThread(m) {
  const t = { room: m.room, root: m.seq, rootCopy: m, entries: new Map(), loaded: false };
  thread = t;
  $('app').classList.add('threaded');
  $('thread').hidden = false;
  $('thread-status').textContent = 'Loading…';
  // Replies the room view already holds: the same objects, so its folds show here too.
  if (view && view.room === m.room) for (const e of view.entries.values()) if (e.type === 'message' && e.thread === m.seq) t.entries.set(e.seq, e);
  renderThread();
  $('thread-input').focus();
  try {
    let before;
    for (let page = 0; page < 10; page++) {
      const res = await client.threadHistory(t.room, t.root, before === undefined ? { limit: 200 } : { before, limit: 200 });
      if (thread !== t) return;
      for (const r of res.messages) {
        if (!t.entries.has(r.seq)) t.entries.set(r.seq, (view && view.room === t.room && view.entries.get(r.seq)) || { ...r });
        loadUser(r.sender);
      }
      if (!res.has_more || !res.messages.length) break;
      before = res.messages[0].seq;
    }
    t.loaded = true;
    $('thread-status').textContent = '';
  } catch (err) {
    if (thread === t) $('thread-status').textContent = `Could not load the thread: ${err.message}`;
  }
  if (thread === t) renderThread();
}

function closeThread() {
  thread = null;
  $('app').classList.remove('threaded');
  $('thread').hidden = true;
  $('thread-root').replaceChildren();
  $('thread-list').replaceChildren();
  $('thread-input').value = '';
}
$('thread-close').onclick = closeThread;

// A live entry of the thread's room: a new reply, or an op on one of its messages.
function threadEntry(m) {
  const t = thread;
  if (m.type === 'message' && m.thread === t.root && !t.entries.has(m.seq)) {
    t.entries.set(m.seq, (view && view.room === m.room && view.entries.get(m.seq)) || { ...m });
  } else if (OPS.has(m.type)) {
    fold(m, t.entries);
    if (m.target === t.root) fold(m, new Map([[t.root, t.rootCopy]]));
  }
  renderThread();
}

function renderThread() {
  const t = thread;
  if (!t) return;
  const root = (view && view.room === t.room && view.entries.get(t.root)) || t.rootCopy;
  $('thread-root').replaceChildren(messageNode(root, null, true));
  const box = $('thread-body');
  const stick = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  let prev = null;
  const nodes = [];
  for (const m of [...t.entries.values()].sort((a, b) => a.seq - b.seq)) {
    nodes.push(messageNode(m, prev, true));
    prev = m;
  }
  $('thread-list').replaceChildren(...nodes);
  if (t.loaded && !nodes.length) $('thread-status').textContent = 'No replies yet.';
  else if (t.loaded) $('thread-status').textContent = `${nodes.length} repl${nodes.length === 1 ? 'y' : 'ies'}`;
  $('thread-composer').hidden = !!root.deleted; // a deleted root takes no more replies
  if (stick) box.scrollTop = box.scrollHeight;
}

const threadInput = $('thread-input');
threadInput.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('thread-composer').requestSubmit();
  } else if (e.key === 'Escape') {
    closeThread();
  }
});
$('thread-composer').onsubmit = (e) => {
  e.preventDefault();
  const body = threadInput.value.trim();
  const t = thread;
  if (!body || !t || !client) return;
  threadInput.value = '';
  client.send(t.room, body, { thread: t.root }).then(
    () => view && view.room === t.room && rerenderMessages(),
    (err) => {
      if (thread === t) $('thread-status').textContent = `Not sent: ${err.message}`;
      if (view && view.room === t.room) rerenderMessages();
    },
  );
  if (view && view.room === t.room) rerenderMessages(); // pending in the room until the ack
};

// ---------- live events ----------

function onEntry(m) {
  let r = rooms.get(m.room);
  if (m.type === 'member' && m.user === me.id && (m.action === 'leave' || m.action === 'kick')) {
    rooms.delete(m.room);
    if (current === m.room) closeRoom();
    renderRooms();
    return;
  }
  if (!r) {
    refreshRoomsSoon(); // a room we were just added to
    return;
  }
  r.last_seq = Math.max(r.last_seq || 0, m.seq);
  r.lastActivity = Date.now();
  if (m.type === 'message' && m.sender !== me.id && m.seq > (r.read_seq || 0)) r.unread = (r.unread || 0) + 1;
  if (m.type === 'member') {
    r.member_count = m.member_count;
    if (r.members && m.action === 'join') r.members.push({ user_id: m.user, role: m.role });
  }
  if (m.type === 'room') r.name = m.name;
  if (m.type === 'message') clearTyping(m.room, m.sender);
  if (OPS.has(m.type) && composing && composing.seq === m.target && m.type === 'delete') endCompose();
  if (addEntry(m)) {
    rerenderMessages();
    markRead();
  } else if (view && view.room === m.room) {
    rerenderMessages(); // the pending copy of an own message became the real one
  }
  if (thread && thread.room === m.room) threadEntry(m);
  if (current === m.room) renderHeader();
  renderRooms();
}

function onRead(ev) {
  const r = rooms.get(ev.room);
  if (!r) return;
  r.read_seq = Math.max(r.read_seq || 0, ev.seq);
  r.unread = ev.unread;
  renderRooms();
}

function onReceipt(ev) {
  if (!view || view.room !== ev.room || !view.receipts || ev.user === me.id) return;
  if (ev.seq <= (view.receipts.get(ev.user) || 0)) return;
  view.receipts.set(ev.user, ev.seq);
  loadUser(ev.user);
  rerenderMessages();
}

function onPresence(p) {
  const u = users.get(p.user) || { id: p.user, username: p.user };
  u.status = p.status;
  u.last_seen = p.last_seen;
  users.set(p.user, u);
  if (!users.get(p.user).username || users.get(p.user).username === p.user) loadUser(p.user);
  renderRooms();
  if (current) renderHeader();
}

function onTyping(t) {
  if (t.user === me.id) return;
  if (!typingBy.has(t.room)) typingBy.set(t.room, new Map());
  const m = typingBy.get(t.room);
  clearTimeout(m.get(t.user));
  if (t.typing) m.set(t.user, setTimeout(() => clearTyping(t.room, t.user), t.expires_ms || 5000));
  else m.delete(t.user);
  loadUser(t.user);
  renderTyping();
}

function clearTyping(room, user) {
  const m = typingBy.get(room);
  if (!m || !m.has(user)) return;
  clearTimeout(m.get(user));
  m.delete(user);
  renderTyping();
}

function renderTyping() {
  const m = current ? typingBy.get(current) : null;
  const names = m ? [...m.keys()].map(nameOf) : [];
  $('typing').textContent = names.length === 0 ? '' : names.length === 1 ? `${names[0]} is typing…` : `${names.join(', ')} are typing…`;
}

// ---------- composer ----------

const input = $('composer-input');
input.addEventListener('input', () => {
  input.style.height = 'auto';
  input.style.height = `${input.scrollHeight}px`;
  if (current && input.value) client.typing(current);
});
input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey) {
    e.preventDefault();
    $('composer').requestSubmit();
  } else if (e.key === 'Escape' && composing) {
    endCompose();
  }
});
$('compose-cancel').onclick = () => {
  endCompose();
  input.focus();
};
$('composer').onsubmit = async (e) => {
  e.preventDefault();
  let body = input.value.trim();
  const editing = composing && composing.kind === 'edit';
  const files = editing ? [] : uploads;
  if ((!body && !files.length) || !current) return;
  let atts = [];
  if (files.length) {
    // The message goes once its files are up; failed ones stay in the bar with their error.
    if (files.some((u) => u.state === 'uploading')) {
      const room0 = current;
      $('attach-error').textContent = 'Waiting for the upload to finish…';
      await Promise.all(files.map((u) => u.done));
      renderUploads();
      if (current !== room0 || uploads.some((u) => u.state === 'uploading')) return; // changed meanwhile
    }
    if (!uploads.length || uploads.some((u) => u.state === 'failed')) return;
    atts = uploads.map((u) => u.att);
    uploads = [];
    renderUploads();
    body = input.value.trim() || atts.map((a) => a.name).join(', '); // a message needs text
  }
  input.value = '';
  input.style.height = 'auto';
  const room = current;
  const mode = composing && composing.room === room ? composing : null;
  endCompose();
  if (mode && mode.kind === 'edit') {
    const old = view.entries.get(mode.seq);
    if (old && old.body !== body) client.edit(room, mode.seq, body).catch(opFailed);
    return;
  }
  const opts = mode ? { replyTo: mode.seq } : {};
  if (atts.length) opts.attachments = atts;
  client.send(room, body, opts).then(
    () => view && view.room === room && rerenderMessages(),
    (err) => {
      if (view && view.room === room) {
        rerenderMessages();
        $('typing').textContent = `Not sent: ${err.message}`;
      }
    },
  );
  rerenderMessages(); // shows it as pending until the ack
  scrollToBottom();
};

// ---------- dialogs: new room, new DM, add member ----------

// "alice, u_7" -> user ids (names are looked up; ids pass through).
async function resolveUsers(list) {
  const out = [];
  for (const x of list) {
    if (/^u_\d+$/.test(x)) {
      out.push(x);
      continue;
    }
    try {
      const u = await client.findUser(x.replace(/^@/, '').toLowerCase());
      users.set(u.id, { ...users.get(u.id), ...u });
      out.push(u.id);
    } catch (e) {
      throw e.code === 'not_found' || e.code === 'invalid_field' ? new Error(`No user named “${x}”.`) : e;
    }
  }
  return out;
}

// A small form in a modal dialog: run(values) does the work; an error stays in the dialog.
function ask({ title, name, ids, idsText, ok, run }) {
  const d = $('dialog');
  $('dialog-title').textContent = title;
  $('dialog-name-label').hidden = !name;
  $('dialog-ids-label').hidden = !ids;
  $('dialog-ids-text').textContent = idsText || 'Members (usernames, comma-separated)';
  $('dialog-name').value = '';
  $('dialog-ids').value = '';
  $('dialog-error').textContent = '';
  $('dialog-ok').textContent = ok;
  $('dialog-ok').disabled = false;
  $('dialog-form').onsubmit = async (e) => {
    if (e.submitter && e.submitter.value === 'cancel') return; // closes the dialog
    e.preventDefault();
    const values = { name: $('dialog-name').value.trim(), ids: $('dialog-ids').value.split(/[\s,]+/).filter(Boolean) };
    $('dialog-ok').disabled = true;
    try {
      await run(values);
      d.close();
    } catch (err) {
      $('dialog-error').textContent = err.message || String(err);
    } finally {
      $('dialog-ok').disabled = false;
    }
  };
  d.showModal();
  (name ? $('dialog-name') : $('dialog-ids')).focus();
}

$('new-room').onclick = () =>
  ask({
    title: 'New room',
    name: true,
    ids: true,
    ok: 'Create',
    run: async (a) => {
      if (!a.name) throw new Error('A room needs a name.');
      const room = await client.createRoom({ name: a.name, members: await resolveUsers(a.ids) });
      await refreshRooms();
      openRoom(room.id);
    },
  });

$('new-dm').onclick = () =>
  ask({
    title: 'New direct message',
    ids: true,
    idsText: 'Username',
    ok: 'Open',
    run: async (a) => {
      if (!a.ids.length) throw new Error('Whom to? Enter a username.');
      const [id] = await resolveUsers(a.ids.slice(0, 1));
      const room = await client.dm(id);
      await refreshRooms();
      openRoom(room.id);
    },
  });

$('add-member').onclick = () => {
  const room = current;
  ask({
    title: 'Add members',
    ids: true,
    idsText: 'Usernames (comma-separated)',
    ok: 'Add',
    run: async (a) => {
      if (!a.ids.length) throw new Error('Enter at least one username.');
      for (const id of await resolveUsers(a.ids)) await client.addMember(room, id);
    },
  });
};

// ---------- boot ----------

(async () => {
  if (await auth.restore()) {
    try {
      await auth.getToken();
      await start();
      return;
    } catch {
      /* refresh token gone: log in again */
    }
  }
  setTab(false);
  showAuth();
})();
