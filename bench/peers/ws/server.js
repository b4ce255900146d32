// Node `ws` broadcast server for bench/: every message from any client goes to every client
// that did not connect to /pub. The smallest idiomatic server; no per-message processing.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 9002);
const room = new Set();
const wss = new WebSocketServer({ host: '127.0.0.1', port, perMessageDeflate: false, clientTracking: false, maxPayload: 1 << 20 });
wss.on('connection', (ws, req) => {
  if (!req.url.startsWith('/pub')) {
    room.add(ws);
    ws.on('close', () => room.delete(ws));
  }
  ws.on('error', () => {});
  ws.on('message', (data, isBinary) => {
    for (const c of room) c.send(data, { binary: isBinary });
  });
});
wss.on('listening', () => console.error(`ws peer listening on 127.0.0.1:${port}`));
