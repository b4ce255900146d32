// Types of @chatd/client (hand-written; the package is plain ESM JavaScript).

export type RoomId = string;
export type UserId = string;

export interface MessageEvent {
  type: 'message';
  room: RoomId;
  seq: number;
  msg_id: string;
  sender: UserId;
  body: string;
  ts: number;
  client_msg_id: string | null;
  /** seq of the message this one replies to / of its thread root. */
  reply_to?: number;
  thread?: number;
  /** The message's current state (history and sync replays; see docs/PROTOCOL.md). */
  edited_at?: number;
  deleted?: true;
  reactions?: Reaction[];
  reply_count?: number;
  last_reply_seq?: number;
  /** seq of the last edit/delete/reaction already applied to this copy. */
  state_seq?: number;
  /** Set on the sender's own messages, reported from their ack. */
  own?: true;
  /** The uploads the message carries (dropped once it is deleted). */
  attachments?: Attachment[];
}
/** An upload (POST /v1/uploads), as upload() resolves it and messages carry it. */
export interface Attachment {
  id: string;
  size: number;
  content_type: string;
  name: string;
  /** hex SHA-256 of the bytes (also the ETag). */
  sha256: string;
}
export interface Reaction {
  emoji: string;
  count: number;
  /** Whether the reader reacted with it. */
  me: boolean;
}
export interface MemberEvent {
  type: 'member';
  room: RoomId;
  seq: number;
  user: UserId;
  action: 'join' | 'leave' | 'kick' | 'role';
  role: 'owner' | 'admin' | 'member' | null;
  by: UserId;
  member_count: number;
  ts: number;
}
export interface RoomEvent {
  type: 'room';
  room: RoomId;
  seq: number;
  name: string;
  topic: string | null;
  by: UserId;
  ts: number;
}
/** Rich-messaging entries: delivered as the server sends them (de-duplicated by (room, seq)).
 * Apply one to the message at `target` unless that copy's state_seq >= the entry's seq.
 * On the author's own connection they are reported from the ack, with own: true. */
interface OpEntryBase {
  room: RoomId;
  seq: number;
  /** seq of the message the operation applies to. */
  target: number;
  user: UserId;
  ts: number;
  own?: true;
  client_msg_id?: string | null;
}
export interface EditEvent extends OpEntryBase {
  type: 'edit';
  body: string;
  edited_at: number;
}
export interface DeleteEvent extends OpEntryBase {
  type: 'delete';
}
export interface ReactionEvent extends OpEntryBase {
  type: 'reaction';
  emoji: string;
  on: boolean;
}
export type EntryEvent = EditEvent | DeleteEvent | ReactionEvent;
export interface TypingEvent {
  type: 'typing';
  room: RoomId;
  user: UserId;
  typing: boolean;
  expires_ms?: number;
}
export interface ReadEvent {
  room: RoomId;
  seq: number;
  unread: number;
}
/** Another member's read marker moved (rooms of at most 100 members, when they share it). */
export interface ReceiptEvent {
  type: 'receipt';
  room: RoomId;
  user: UserId;
  seq: number;
}
export interface Receipts {
  room: RoomId;
  last_seq: number;
  /** read_seq is null when the member does not share it; delivered_seq null when no device acknowledged. */
  receipts: { user: UserId; read_seq: number | null; delivered_seq: number | null }[];
  delivered_all: number;
  read_all: number | null;
}
export interface PresenceEvent {
  type: 'presence';
  user: UserId;
  status: 'online' | 'offline';
  last_seen: number | null;
}
export type ConnectionState = 'idle' | 'connecting' | 'syncing' | 'online' | 'offline' | 'closed' | 'ended';
export interface StateEvent {
  state: ConnectionState;
  prev: ConnectionState;
  /** Why the connection went offline or ended ('session_ended', 'auth', 'token expired', ...). */
  reason?: string;
  error?: ChatdError;
  /** offline: milliseconds until the next attempt. */
  delay?: number;
  attempt?: number;
  code?: number;
}
export interface SyncedEvent {
  rooms: Record<RoomId, { last_seq: number; has_more: boolean } | { error: string }>;
  /** 0 for the first sync of a connection, then one more per page (has_more). */
  page: number;
}

export interface EventMap {
  message: MessageEvent;
  member: MemberEvent;
  room: RoomEvent;
  edit: EditEvent;
  delete: DeleteEvent;
  reaction: ReactionEvent;
  typing: TypingEvent;
  read: ReadEvent;
  receipt: ReceiptEvent;
  presence: PresenceEvent;
  state: StateEvent;
  synced: SyncedEvent;
  error: ChatdError;
}

export interface Ack {
  room: RoomId;
  seq: number;
  msg_id: string;
  ts: number;
  client_msg_id: string;
  /** true when the server already had this client_msg_id (a resend): the original ack. */
  duplicate: boolean;
}
/** The ack of edit / delete / react. */
export interface OpAck {
  op: 'edit' | 'delete' | 'react';
  room: RoomId;
  /** The new entry's seq; null when a reaction changed nothing. */
  seq: number | null;
  /** The message the operation applied to. */
  target: number;
  ts: number;
  client_msg_id: string;
  duplicate: boolean;
  /** false: a reaction that already was so (no entry appended). */
  changed: boolean;
}

export interface Room {
  id: RoomId;
  kind: 'group' | 'direct';
  name: string | null;
  topic: string | null;
  created_by: UserId;
  created_at: number;
  last_seq: number;
  member_count: number;
  role?: 'owner' | 'admin' | 'member';
  read_seq?: number;
  unread?: number;
  /** Direct rooms in listings: the other user. */
  peer?: UserId;
  members?: { user_id: UserId; role: string }[];
}

export interface User {
  id: UserId;
  username: string;
  created_at?: number;
  status?: 'online' | 'offline';
  last_seen?: number | null;
}

export interface HistoryPage {
  messages: Array<MessageEvent | MemberEvent | RoomEvent>;
  has_more: boolean;
}

/** Where positions (and the password flow's session) persist. Methods may return promises. */
export interface Storage {
  get(key: string): string | null | Promise<string | null>;
  set(key: string, value: string | null): void | Promise<void>;
}

export type GetToken = (opts: { force?: boolean }) => string | Promise<string>;

export interface ChatdClientOptions {
  /** Server base URL, http(s)://host:port; the WebSocket URL is derived from it. */
  url: string;
  /** Returns an access token; force: the previous one was refused, bring a new one. */
  getToken?: GetToken;
  /** Or the password flow, which provides getToken. */
  auth?: { getToken: GetToken };
  /** WebSocket constructor (default: globalThis.WebSocket, else the `ws` package). */
  WebSocket?: unknown;
  /** Send the token as ?access_token= even with a WebSocket that can set headers. */
  tokenInQuery?: boolean;
  storage?: Storage;
  fetch?: typeof fetch;
  reconnectMinMs?: number;
  reconnectMaxMs?: number;
  connectTimeoutMs?: number;
  pingIntervalMs?: number;
  pongTimeoutMs?: number;
  requestTimeoutMs?: number;
  refreshBeforeS?: number;
  typingIntervalMs?: number;
  maxSendRetries?: number;
}

export class ChatdError extends Error {
  /** The protocol's snake_case code, or 'network', 'disconnected', 'timeout', 'closed',
   * 'ended', 'session_ended', 'not_logged_in'. */
  code: string;
  /** HTTP status for REST errors, else 0. */
  status: number;
  retryAfterMs?: number;
}

export class ChatdClient {
  constructor(options: ChatdClientOptions);
  readonly state: ConnectionState;
  /** The connected user (from the server's hello), or null before the first connect. */
  readonly userId: UserId | null;
  on<K extends keyof EventMap>(event: K, fn: (ev: EventMap[K]) => void): () => void;
  off<K extends keyof EventMap>(event: K, fn: (ev: EventMap[K]) => void): void;
  /** Resolves once the first sync is done; keeps reconnecting until close(). Rejects only when
   * the client ends (session ended, login needed) or is closed first. */
  connect(): Promise<void>;
  close(): void;
  /** Resolves the ack once stored; offline sends wait and are resent with the same client_msg_id. */
  send(
    room: RoomId,
    body: string,
    opts?: { clientMsgId?: string; replyTo?: number; thread?: number; attachments?: (string | Attachment)[] },
  ): Promise<Ack>;
  /** POST /v1/uploads with the raw bytes; name defaults to the File's name, contentType to the
   * Blob's type. Rejects ChatdError (413 payload_too_large, 415 unsupported_media_type...). */
  upload(
    data: Blob | ArrayBuffer | ArrayBufferView,
    opts?: { name?: string; contentType?: string },
  ): Promise<Attachment>;
  /** GET /v1/attachments/{id}'s URL (it needs the Bearer token: use fetchAttachment in a page). */
  attachmentUrl(id: string): string;
  /** GET an attachment with the access token: a Blob, or the Response with {response:true}. */
  fetchAttachment(id: string): Promise<Blob>;
  fetchAttachment(id: string, opts: { response: true; headers?: Record<string, string> }): Promise<Response>;
  fetchAttachment(id: string, opts: { response?: false; headers?: Record<string, string> }): Promise<Blob>;
  /** Edit my message at seq; queued and resent like send. */
  edit(room: RoomId, seq: number, body: string, opts?: { clientMsgId?: string }): Promise<OpAck>;
  /** Delete the message at seq (mine, or any as an admin); queued and resent like send. */
  delete(room: RoomId, seq: number, opts?: { clientMsgId?: string }): Promise<OpAck>;
  /** Add (on, the default) or remove my reaction; queued and resent like send. */
  react(room: RoomId, seq: number, emoji: string, on?: boolean, opts?: { clientMsgId?: string }): Promise<OpAck>;
  /** Requests not yet acknowledged (the offline queue included); edits, deletes and reactions
   * carry op and target. */
  pending(): {
    room: RoomId;
    body?: string;
    client_msg_id: string;
    /** A send's attachments (as given to send). */
    attachments?: (Attachment | { id: string })[];
    op?: 'edit' | 'delete' | 'react';
    target?: number;
    emoji?: string;
    on?: boolean;
  }[];
  typing(room: RoomId): void;
  read(room: RoomId, seq: number): Promise<ReadEvent>;
  lastSeq(room: RoomId): number;
  history(room: RoomId, opts?: { before?: number; after?: number; limit?: number }): Promise<HistoryPage>;
  /** The replies in the thread of root (paged like history; the root is not among them). */
  threadHistory(room: RoomId, root: number, opts?: { before?: number; after?: number; limit?: number }): Promise<HistoryPage>;
  /** Read and delivered positions of the members; 403 'forbidden' in rooms of over 100 members. */
  receipts(room: RoomId): Promise<Receipts>;
  rooms(): Promise<Room[]>;
  room(id: RoomId): Promise<Room>;
  me(): Promise<User>;
  user(id: UserId): Promise<User>;
  /** GET /v1/users?username=: the user with that name. */
  findUser(username: string): Promise<User>;
  createRoom(opts: { name: string; topic?: string; members?: UserId[] }): Promise<Room>;
  updateRoom(id: RoomId, fields: { name?: string; topic?: string }): Promise<Room>;
  addMember(room: RoomId, userId: UserId, role?: 'admin' | 'member' | 'owner'): Promise<{ user_id: UserId; role: string }>;
  removeMember(room: RoomId, userId: UserId): Promise<void>;
  dm(userId: UserId): Promise<Room>;
  request<T = unknown>(method: string, path: string, json?: unknown): Promise<T>;
}

export interface PasswordAuthOptions {
  url: string;
  /** Default: memory (a reload logs out); localStorageAdapter() keeps the login. */
  storage?: Storage;
  fetch?: typeof fetch;
  refreshBefore?: number;
}

export class PasswordAuth {
  constructor(options: PasswordAuthOptions);
  readonly user: { id: UserId; username: string } | null;
  register(username: string, password: string): Promise<{ user: { id: UserId; username: string } }>;
  login(username: string, password: string): Promise<{ user: { id: UserId; username: string } }>;
  logout(): Promise<void>;
  /** Load a stored session; true when there was one. */
  restore(): Promise<boolean>;
  getToken(opts?: { force?: boolean }): Promise<string>;
}

export function memoryStorage(): Storage;
export function localStorageAdapter(prefix?: string, ls?: unknown): Storage;
export function indexedDBStorage(name?: string, idb?: unknown): Storage;
