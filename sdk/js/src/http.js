// REST plumbing shared by the client and the password flow.

/** An error answered by chatd (`code` is the protocol's snake_case code) or a transport error
 * (`code` "network"). `status` is the HTTP status (0 for WebSocket and network errors). */
export class ChatdError extends Error {
  constructor(code, message, { status = 0, retryAfterMs, cause } = {}) {
    super(message || code, cause ? { cause } : undefined);
    this.name = 'ChatdError';
    this.code = code;
    this.status = status;
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs;
  }
}

/** "http://host:port/" -> "http://host:port" */
export function baseUrl(url) {
  if (typeof url !== 'string' || !/^https?:\/\//i.test(url))
    throw new TypeError('url must be the server base URL, http(s)://host:port');
  return url.replace(/\/+$/, '');
}

/** http(s)://host:port -> ws(s)://host:port/v1/ws */
export function wsUrl(url) {
  return baseUrl(url).replace(/^http/i, 'ws') + '/v1/ws';
}

/** JSON request; resolves the parsed body (undefined for 204) or throws ChatdError. */
export async function restCall(fetchImpl, base, method, path, { token, json } = {}) {
  const headers = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) headers['Content-Type'] = 'application/json';
  let res;
  try {
    res = await fetchImpl(base + path, {
      method,
      headers,
      body: json !== undefined ? JSON.stringify(json) : undefined,
    });
  } catch (e) {
    throw new ChatdError('network', `${method} ${path}: ${e.message}`, { cause: e });
  }
  return httpBody(res, `${method} ${path}`);
}

/** A fetch Response's JSON body (undefined when empty), or the ChatdError it answers. */
export async function httpBody(res, what) {
  const text = await res.text();
  let body;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    body = undefined;
  }
  if (!res.ok) {
    const err = body && body.error ? body.error : {};
    const ra = res.headers.get('retry-after');
    throw new ChatdError(err.code || `http_${res.status}`, err.message || `${what}: HTTP ${res.status}`, {
      status: res.status,
      retryAfterMs: ra ? Number(ra) * 1000 : undefined,
    });
  }
  return body;
}

/** The claims of a JWT (not verified: only to read `exp`/`iat`), or null. */
export function jwtClaims(token) {
  try {
    const part = String(token).split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/') + '==='.slice((part.length + 3) % 4);
    return JSON.parse(atob(b64));
  } catch {
    return null;
  }
}

export function defaultFetch() {
  if (typeof globalThis.fetch !== 'function') throw new Error('no fetch: pass options.fetch');
  return globalThis.fetch.bind(globalThis);
}
