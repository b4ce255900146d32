'use strict';
// Forge JWTs with node:crypto to test chatd's verifier from the outside. The tests start chatd
// with a known --jwt-keys secret, so a token signed here is indistinguishable from chatd's own.

const crypto = require('node:crypto');

const b64url = (buf) => Buffer.from(buf).toString('base64url');

/** A random key spec for --jwt-keys: {kid, hex, spec: 'kid:hex'}. */
function makeKey(kid = 'k1') {
  const hex = crypto.randomBytes(32).toString('hex');
  return { kid, hex, spec: `${kid}:${hex}` };
}

/**
 * Sign header.payload. alg decides the signature: 'HS256' (default) / 'HS512' with the key,
 * 'none' with an empty signature. header/payload objects are used as given.
 */
function forge(header, payload, keyHex, { alg = header.alg } = {}) {
  const signingInput = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(payload))}`;
  let sig = '';
  if (alg === 'HS256' || alg === 'HS512') {
    const h = alg === 'HS256' ? 'sha256' : 'sha512';
    sig = b64url(crypto.createHmac(h, Buffer.from(keyHex, 'hex')).update(signingInput).digest());
  }
  return `${signingInput}.${sig}`;
}

/** Claims for user number `sub` (as chatd's "u_<n>" id minus the prefix). */
function claims(sub, { iat, exp, sid = 1 } = {}) {
  const now = Math.floor(Date.now() / 1000);
  return { sub: String(sub), iat: iat ?? now, exp: exp ?? now + 600, sid };
}

/** Decode a JWT's header and payload (no verification). */
function decode(token) {
  const [h, p] = token.split('.');
  return {
    header: JSON.parse(Buffer.from(h, 'base64url').toString('utf8')),
    payload: JSON.parse(Buffer.from(p, 'base64url').toString('utf8')),
  };
}

module.exports = { makeKey, forge, claims, decode, b64url };
