'use strict';
// GET /v1/users?username=NAME: find a user by name (the web client adds members and opens
// direct messages by username).
const { test } = require('node:test');
const assert = require('node:assert/strict');
const { startServer } = require('./lib/server');
const { request, registerUser, expectError } = require('./lib/http');

test('find a user by username', async () => {
  const srv = await startServer();
  try {
    const a = await registerUser(srv);
    const b = await registerUser(srv);
    const r = await request(srv, 'GET', `/v1/users?username=${b.username}`, { token: a.access_token });
    assert.equal(r.status, 200);
    assert.equal(r.body.user.id, b.user.id);
    assert.equal(r.body.user.username, b.username);
    assert.equal(typeof r.body.user.created_at, 'number');
    // presence only for users who share a room with the caller (or the caller)
    assert.equal(r.body.user.status, undefined);
    const self = await request(srv, 'GET', `/v1/users?username=${a.username}`, { token: a.access_token });
    assert.ok(['online', 'offline'].includes(self.body.user.status), 'the caller sees its own presence');
    expectError(assert, await request(srv, 'GET', '/v1/users?username=nobody_at_all', { token: a.access_token }), 404, 'not_found');
    expectError(assert, await request(srv, 'GET', '/v1/users', { token: a.access_token }), 400, 'invalid_field');
    expectError(assert, await request(srv, 'GET', `/v1/users?username=${'x'.repeat(40)}`, { token: a.access_token }), 400, 'invalid_field');
    expectError(assert, await request(srv, 'GET', `/v1/users?username=${b.username}`), 401, 'unauthorized');
  } finally {
    await srv.stop();
  }
});
