// The password flow: register / login / logout and access tokens kept fresh with chatd's
// refresh-token rotation. `auth.getToken` is what ChatdClient calls (pass `auth` or
// `getToken: auth.getToken`).
//
// Rotation spends a refresh token on every use and treats a second use as theft (the whole
// session is revoked). So refreshes are single-flight in this object and, in browsers with the
// Web Locks API, across tabs: the refresh runs under a lock and first re-reads the stored pair,
// adopting what another tab already obtained instead of spending the same token twice.

import { ChatdError, baseUrl, defaultFetch, jwtClaims, restCall } from './http.js';
import { memoryStorage } from './storage.js';

const KEY = 'session';

export class PasswordAuth {
  /**
   * options: url (http(s)://host:port), storage (see storage.js; default: memory, so a reload
   * logs out; use localStorageAdapter() to stay logged in), fetch, refreshBefore (seconds before
   * `exp` at which a token counts as stale, default 60, at most a quarter of its lifetime).
   */
  constructor({ url, storage, fetch, refreshBefore = 60 } = {}) {
    this.base = baseUrl(url);
    this.storage = storage || memoryStorage();
    this.fetch = fetch || defaultFetch();
    this.refreshBefore = refreshBefore;
    this.session = null; // {user, access_token, refresh_token}
    this.inflight = null;
    this.lockName = `chatd-refresh:${this.base}`;
    this.getToken = this.getToken.bind(this);
  }

  /** The logged-in user {id, username}, or null. */
  get user() {
    return this.session ? this.session.user : null;
  }

  /** Load a stored session (after a reload). Resolves true when one was found. */
  async restore() {
    const s = await this.load();
    this.session = s;
    return !!s;
  }

  async register(username, password) {
    return this.start(await restCall(this.fetch, this.base, 'POST', '/v1/auth/register', { json: { username, password } }));
  }

  async login(username, password) {
    return this.start(await restCall(this.fetch, this.base, 'POST', '/v1/auth/login', { json: { username, password } }));
  }

  /** End the session on the server (its WebSockets close with 4001) and forget it here. */
  async logout() {
    const s = this.session || (await this.load());
    this.session = null;
    await this.storage.set(KEY, null);
    if (s && s.refresh_token) {
      try {
        await restCall(this.fetch, this.base, 'POST', '/v1/auth/logout', { json: { refresh_token: s.refresh_token } });
      } catch (e) {
        if (e.code !== 'invalid_refresh_token') throw e;
      }
    }
  }

  /**
   * A valid access token: the current one while it is fresh, else a refreshed one. force: the
   * current token was refused (or is about to be replaced): refresh unless another tab already
   * did. Throws ChatdError 'invalid_refresh_token' when the session is gone (log in again),
   * 'network' when the server cannot be reached.
   */
  async getToken({ force = false } = {}) {
    if (!this.session) this.session = await this.load();
    if (!this.session) throw new ChatdError('not_logged_in', 'log in first');
    const current = this.session.access_token;
    if (!force && this.fresh(current)) return current;
    if (!this.inflight) {
      const run = () => this.refresh(force ? current : null);
      const locks = typeof navigator !== 'undefined' && navigator.locks;
      this.inflight = (locks ? locks.request(this.lockName, run) : run()).finally(() => {
        this.inflight = null;
      });
    }
    return this.inflight;
  }

  fresh(token) {
    const c = jwtClaims(token);
    if (!c || typeof c.exp !== 'number') return false;
    const life = typeof c.iat === 'number' ? c.exp - c.iat : 900;
    const lead = Math.min(this.refreshBefore, life / 4);
    return c.exp - lead > Date.now() / 1000;
  }

  async refresh(rejected) {
    // Another tab may have rotated meanwhile: its pair is in storage.
    const stored = await this.load();
    if (stored && this.session && stored.refresh_token !== this.session.refresh_token) {
      this.session = stored;
      if (stored.access_token !== rejected && this.fresh(stored.access_token)) return stored.access_token;
    }
    if (!this.session) throw new ChatdError('not_logged_in', 'log in first');
    let r;
    try {
      r = await restCall(this.fetch, this.base, 'POST', '/v1/auth/refresh', { json: { refresh_token: this.session.refresh_token } });
    } catch (e) {
      if (e.code === 'invalid_refresh_token') {
        this.session = null;
        await this.storage.set(KEY, null);
      }
      throw e;
    }
    await this.start(r);
    return this.session.access_token;
  }

  async start(r) {
    this.session = { user: r.user, access_token: r.access_token, refresh_token: r.refresh_token };
    await this.storage.set(KEY, JSON.stringify(this.session));
    return { user: r.user };
  }

  async load() {
    try {
      const v = await this.storage.get(KEY);
      return v ? JSON.parse(v) : null;
    } catch {
      return null;
    }
  }
}
